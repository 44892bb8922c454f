"""Bad input gets a reason a person can act on, and never an exception."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from typing import Any

import faust
import orjson
import pytest

from stream_app import records
from stream_app.decoding import (
    _COMMON,
    FIELDS,
    MAX_EVENT_BYTES,
    Check,
    Decoded,
    Rejected,
    decode,
    parse_ts,
)

GOOD = {"event_id": "e1", "customer_id": "c1", "ts": "2025-03-01T10:00:00+02:00",
        "amount": 10}


def reason(key: bytes | None, value: bytes | None) -> str:
    result = decode("purchases", key, value)
    assert isinstance(result, Rejected)
    return result.reason


@pytest.mark.parametrize("value, expected", [
    (b"not json", "not valid UTF-8 JSON"),
    (b"\xff\xfe\x00", "not valid UTF-8 JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (None, "empty message"),
    (orjson.dumps({**GOOD, "ts": "2025-03-01 10:00"}), "has no UTC offset"),
    (orjson.dumps({**GOOD, "ts": "1850-01-01T00:00:00Z"}), "outside 1990..2100"),
    (orjson.dumps({**GOOD, "amount": "ten"}), "field 'amount' must be a number, got str"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "customer_id"}),
     "missing required field 'customer_id'"),
    (b"{" + b'"x":"' + b"a" * MAX_EVENT_BYTES + b'"}', "the limit is"),
])
def test_reasons(value: bytes | None, expected: str) -> None:
    assert expected in reason(b"c1", value)


def test_the_key_must_be_the_customer_id() -> None:
    assert "no key" in reason(None, orjson.dumps(GOOD))
    assert "does not match customer_id" in reason(b"c2", orjson.dumps(GOOD))
    # A JSON-serialised key (quoted) is the same customer.
    assert isinstance(decode("purchases", b'"c1"', orjson.dumps(GOOD)), Decoded)


def test_decoded_time_is_epoch_seconds_utc() -> None:
    result = decode("purchases", b"c1", orjson.dumps(GOOD))
    assert isinstance(result, Decoded)
    assert result.ts == 1740816000.0  # 2025-03-01T08:00:00Z


# The fast path (stream_app.decoding._passes, records.record_builder) must
# give exactly what the readable path gives.

ENVELOPE = {"event_id": "e1", "customer_id": "c1", "ts": "2025-03-01T10:00:00+02:00"}
RULES = [(name, check) for table in (_COMMON, *FIELDS.values())
         for name, (_, check) in table.items()]
ENUMS = (records.DIRECTIONS + records.CONTACT_CHANNELS + records.CONTACT_OUTCOMES
         + records.CONTACT_PURPOSES + records.PURCHASE_CHANNELS
         + records.COMPLAINT_CATEGORIES + records.FEEDBACK_OUTCOMES)
JSON_VALUES = [0, 1, 5, 6, -1, 0.5, -0.0, 1e9, 1e9 + 1, 1e300, 2**64 - 1, True, False,
               "", " ", "\u00a0\t", "x", "ILS", "ils", "IL", "EURO", "x" * 64, "x" * 65,
               "x" * 128, "x" * 129, "x" * 8000, "x" * 8001, [], ["a"], [1], ["a"] * 50,
               ["a"] * 51, {}, {"a": 1}, *ENUMS]


@pytest.mark.parametrize("name, check", RULES, ids=[name for name, _ in RULES])
def test_each_fast_check_agrees_with_its_reason(name: str, check: Check) -> None:
    for v in JSON_VALUES:
        v = orjson.loads(orjson.dumps(v))  # as decode sees it
        assert check.ok(v) == (check(name, v) is None), (name, v)


@pytest.mark.parametrize("kind, event", [
    ("purchases", {**ENVELOPE, "amount": 10}),  # Faust stores the int as 10.0
    ("purchases", {**ENVELOPE, "amount": 10.5, "currency": "ILS", "channel": "app",
                   "schema_version": 1}),
    ("purchases", {"amount": 0, "currency": None, "later_field": [1], **ENVELOPE}),
    ("contacts", {**ENVELOPE, "direction": "inbound", "channel": "sms"}),
    ("contacts", {**ENVELOPE, "tags": ["a"], "purpose": "sales", "outcome": "answered",
                  "channel": "phone", "direction": "outbound", "text": "hi"}),
    ("complaints", {**ENVELOPE, "category": "billing", "severity": 3,
                    "compensation_requested": 5, "resolved": False, "text": None}),
    ("feedback", {**ENVELOPE, "outcome": "retained", "alert_id": "a1", "note": "n"}),
])
def test_records_are_built_exactly_as_faust_builds_them(kind: str, event: dict[str, Any]) -> None:
    result = decode(kind, b"c1", orjson.dumps(event))
    assert isinstance(result, Decoded)
    cls = records.INPUT_RECORDS[kind]
    expected = cls(**{k: v for k, v in event.items()
                      if k in cls._options.fields and v is not None})
    got = result.record
    assert type(got) is cls
    assert list(vars(got).items()) == list(vars(expected).items())
    assert [type(v) for v in vars(got).values()] == [type(v) for v in vars(expected).values()]
    assert got == expected and repr(got) == repr(expected)
    assert got.asdict() == expected.asdict() and got.dumps() == expected.dumps()
    assert pickle.dumps(got) == pickle.dumps(expected)


def test_record_builder_refuses_fields_it_cannot_build_exactly() -> None:
    class Stamped(faust.Record, validation=False):
        when: datetime

    with pytest.raises(TypeError, match="DatetimeField"):
        records.record_builder(Stamped)


@pytest.mark.parametrize("text", [
    "2025-03-01T10:00:00Z", "2025-03-01T10:00:00-05:30", "2025-03-01T10:00:00.5+02:00",
    "1999-12-31T23:59:59.999999+00:00", "2024-02-29T00:00:00+05:30:15",
    "2024-02-29T00:00:00+05:30:15.25", "1990-01-01T00:30:00+01:00",
    "2099-12-31T23:59:59-23:59", "20250301T100000+0200",
])
def test_epoch_seconds_are_exactly_datetimes(text: str) -> None:
    ts = parse_ts(text)
    assert type(ts) is float and ts == datetime.fromisoformat(text).timestamp()


def test_epoch_seconds_agree_across_offsets_and_dates() -> None:
    for minutes in range(-(24 * 60 - 1), 24 * 60, 7):
        tz = timezone(timedelta(minutes=minutes))
        for day in range(0, 40_000, 997):
            dt = datetime(1990, 1, 2, 13, 7, 59, tzinfo=tz) + timedelta(days=day, seconds=day)
            assert parse_ts(dt.isoformat()) == dt.timestamp(), dt.isoformat()


def test_the_first_bad_field_in_the_event_is_the_reason() -> None:
    assert "'amount'" in reason(b"c1", b'{"amount": "x", "currency": "ils", "ts": 1}')
    assert "'currency'" in reason(b"c1", b'{"currency": "ils", "amount": "x", "ts": 1}')
    assert reason(b"c1", b'{"amount": 1}') == "missing required field 'event_id'"
