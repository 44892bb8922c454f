"""Bad input gets a reason a person can act on, and never an exception."""

from __future__ import annotations

import pickle
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core import decoding, records
from stream_app.core.decoding import (
    COMMON,
    FIELDS,
    MAX_EVENT_BYTES,
    REASON_CODES,
    TS_PATTERN,
    BadTimestamp,
    Check,
    Decoded,
    Rejected,
    decode,
    parse_event_time,
    parse_ts,
)

from ..timestamps import timestamps

TS = re.compile(TS_PATTERN)

GOOD = {"event_id": "e1", "customer_id": "c1", "ts": "2025-03-01T10:00:00+02:00",
        "amount": 10}


def rejected(key: bytes | None, value: bytes | None) -> Rejected:
    result = decode("purchases", key, value)
    assert isinstance(result, Rejected), result
    return result


def reason(key: bytes | None, value: bytes | None) -> str:
    return rejected(key, value).reason


def frame(schema_id: int) -> bytes:
    """The Confluent Schema Registry wire-format header."""
    return b"\x00" + schema_id.to_bytes(4, "big")


@pytest.mark.parametrize("value, expected, code", [
    (b"not json", "not valid UTF-8 JSON", "not_json"),
    (b"\xff\xfe\x00", "not valid UTF-8 at byte 0 (0xff)", "not_utf8"),
    (b'{"event_id": "caf\xe9"}', "not valid UTF-8 at byte 17 (0xe9)", "not_utf8"),
    (b"\xef\xbb\xbf" + orjson.dumps(GOOD), "byte-order mark", "not_json"),
    (b"[1, 2]", "expected a JSON object, got list", "not_object"),
    (None, "empty message (no value)", "empty"),
    (b"", "empty message (zero bytes)", "empty"),
    (orjson.dumps({**GOOD, "ts": "2025-03-01 10:00"}), "has no UTC offset", "bad_ts"),
    (orjson.dumps({**GOOD, "ts": "1850-01-01T00:00:00Z"}), "outside the years 1990..2099",
     "bad_ts"),
    (orjson.dumps({**GOOD, "ts": "2025-02-29T10:00:00Z"}), "not an ISO-8601 timestamp",
     "bad_ts"),
    (orjson.dumps({**GOOD, "ts": "20250301T100000Z"}), "must be in RFC 3339 form", "bad_ts"),
    (orjson.dumps({**GOOD, "ts": 1740816000}), "field 'ts' must be a string", "bad_ts"),
    (orjson.dumps({**GOOD, "amount": "ten"}), "field 'amount' must be a number, got str",
     "bad_field"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "customer_id"}),
     "missing required field 'customer_id'", "missing_field"),
    (b"{" + b'"x":"' + b"a" * MAX_EVENT_BYTES + b'"}', "the limit is", "too_large"),
    (frame(1234) + b"\x02\x06abc", "framed (magic byte 0, schema id 1234)", "schema_registry"),
    (b"\x00\x01", "only 2 bytes", "schema_registry"),
])
def test_reasons(value: bytes | None, expected: str, code: str) -> None:
    result = rejected(b"c1", value)
    assert expected in result.reason and result.code == code, result


def test_the_key_must_be_the_customer_id() -> None:
    assert rejected(None, orjson.dumps(GOOD)).code == "no_key"
    mismatch = rejected(b"c2", orjson.dumps(GOOD))
    assert mismatch.code == "key_mismatch"
    assert "message key 'c2' does not match customer_id 'c1'" in mismatch.reason
    # A JSON-serialised key (quoted) is the same customer.
    assert isinstance(decode("purchases", b'"c1"', orjson.dumps(GOOD)), Decoded)


def test_a_huge_or_binary_key_is_quoted_bounded() -> None:
    long_id = "c" * 128
    event = orjson.dumps({**GOOD, "customer_id": long_id})
    huge = reason(b"k" * 100_000, event)
    assert len(huge) < 300 and "'kkkk" in huge and "…" in huge and "'cccc" in huge
    assert "message key '\ufffd' does not match" in reason(b"\xff", event)


def test_schema_registry_framed_json_is_decoded() -> None:
    plain = decode("purchases", b"c1", orjson.dumps(GOOD))
    framed = decode("purchases", b"c1", frame(7) + orjson.dumps(GOOD))
    assert isinstance(framed, Decoded) and framed == plain
    # The frame is only ever read off a value that is not JSON itself, and
    # what follows it is judged as any value is.
    assert rejected(b"c1", frame(7) + b"[1]").code == "not_object"
    assert reason(b"c1", frame(2**32 - 1) + b"{").count("schema id 4294967295") == 1


def test_a_reason_quotes_the_input_bounded() -> None:
    huge = reason(b"c1", orjson.dumps({**GOOD, "currency": "x" * 60_000}))
    assert len(huge) < 200 and "'xxx" in huge
    # Deeper than Python's repr can go: named by its type, not quoted.
    deep = b"[" * 1000 + b'"inbound"' + b"]" * 1000
    event = orjson.dumps({**GOOD, "direction": "D", "channel": "sms"})
    result = decode("contacts", b"c1", event.replace(b'"D"', deep))
    assert isinstance(result, Rejected) and result.reason.endswith("got a list")


def test_reason_codes_are_a_closed_set() -> None:
    assert len(set(REASON_CODES)) == len(REASON_CODES)
    with pytest.raises(ValueError, match="unknown reason code"):
        Rejected("whatever the sender wrote", "whatever the sender wrote")


# Random input of every kind the decoder refuses: garbage bytes, framed
# garbage, and valid events with fields replaced by arbitrary JSON.
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)


@st.composite
def _bad_value(draw: st.DrawFn) -> bytes | None:
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return draw(st.none() | st.binary(max_size=300))
    if choice == 1:
        return frame(draw(st.integers(0, 2**32 - 1))) + draw(st.binary(max_size=50))
    event: dict[str, Any] = dict(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*GOOD, "currency", "channel", "schema_version"]))
        if draw(st.booleans()):
            event.pop(name, None)
        else:
            event[name] = draw(_json | st.text(max_size=70_000 if choice == 4 else 60))
    raw = orjson.dumps(event)
    return frame(1) + raw if choice == 3 else raw


@settings(max_examples=500, deadline=None)
@given(kind=st.sampled_from(sorted(FIELDS)), key=st.none() | st.binary(max_size=200),
       value=_bad_value())
def test_every_refusal_has_a_code_and_a_bounded_reason(
        kind: str, key: bytes | None, value: bytes | None) -> None:
    result = decode(kind, key, value)
    if isinstance(result, Rejected):
        assert result.code in REASON_CODES
        assert 0 < len(result.reason) <= 400, result.reason


def test_decoded_time_is_epoch_seconds_utc() -> None:
    result = decode("purchases", b"c1", orjson.dumps(GOOD))
    assert isinstance(result, Decoded)
    assert result.ts == 1740816000.0  # 2025-03-01T08:00:00Z


# The fast path (stream_app.core.decoding._passes, records.record_builder) must
# give exactly what the readable path gives.

ENVELOPE = {"event_id": "e1", "customer_id": "c1", "ts": "2025-03-01T10:00:00+02:00"}
RULES = [(name, check) for table in (COMMON, *FIELDS.values())
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
def test_records_are_built_as_the_constructor_builds_them(kind: str, event: dict[str, Any]) -> None:
    result = decode(kind, b"c1", orjson.dumps(event))
    assert isinstance(result, Decoded)
    cls = records.INPUT_RECORDS[kind]
    fields = records.record_fields(cls)
    # What the constructor makes of the validated event, floats widened.
    expected = cls(**{k: float(v) if k in ("amount", "compensation_requested") else v
                      for k, v in event.items() if k in fields and v is not None})
    got = result.record
    assert type(got) is cls
    assert records.asdict(got) == records.asdict(expected)
    assert [type(v) for v in records.asdict(got).values()] == [
        type(v) for v in records.asdict(expected).values()]
    assert got == expected and repr(got) == repr(expected)
    assert orjson.dumps(got) == orjson.dumps(expected)
    assert pickle.loads(pickle.dumps(got)) == expected
    # Every field the schema has, and nothing else, in the order of the schema's record.
    assert list(records.asdict(got)) == list(fields)


@pytest.mark.parametrize("text", [
    "2025-03-01T10:00:00Z", "2025-03-01T10:00:00-05:30", "2025-03-01T10:00:00.5+02:00",
    "1999-12-31T23:59:59.999999+00:00", "2024-02-29T00:00:00+05:30",
    "2024-02-29T00:00:00.25-00:00", "1990-01-01T00:30:00+01:00",
    "2099-12-31T23:59:59-23:59", "2025-03-01t10:00:00z", "2025-03-01T10:00:00.5z",
    "2025-03-01T10:00:00.1234567+02:00",
])
def test_epoch_seconds_are_exactly_datetimes(text: str) -> None:
    ts = parse_ts(text)
    expected = datetime.fromisoformat(text.replace("z", "Z")).timestamp()
    assert type(ts) is float and ts == expected


@pytest.mark.parametrize("text", [
    "20250301T100000Z", "2025-W49-2T10:00Z", "2025-060T10:00:00Z", "2025-03-01T10:00Z",
    "2025-03-01 10:00:00Z", "2025-03-01T10:00:00+0200", "2025-03-01T10:00:00+02",
    "2024-02-29T00:00:00+05:30:15", "2025-03-01T10:00:00,5Z", "2025-03-01T10:00:00.Z",
    "2025-03-01T10:00:00+02:60", "2025-03-01T10:00:60Z", "2025-03-01T24:00:00Z",
    "2025-03-01T10:00:00Z\n", "2025-03-01T10:00:00Z ", "2100-01-01T00:30:00+01:00",
    "1989-12-31T23:59:59Z", "2025-03-01T10:00:00", "٢٠٢٥-03-01T10:00:00Z", "",
])
def test_iso_8601_forms_outside_rfc_3339_are_refused(text: str) -> None:
    assert isinstance(parse_ts(text), str), text


@pytest.mark.parametrize("text", ["2025-03-01T10:00:00", "yesterday", "2100-01-01T00:30:00Z",
                                  "2025-02-30T10:00:00Z"])
def test_parse_event_time_raises_the_reason_the_decoder_gives(text: str) -> None:
    with pytest.raises(BadTimestamp) as caught:
        parse_event_time(text)
    assert isinstance(caught.value, ValueError)
    raw = orjson.dumps({**GOOD, "ts": text})
    assert rejected(b"c1", raw) == Rejected(str(caught.value), "bad_ts")


def test_parse_event_time_of_a_good_time_is_parse_ts() -> None:
    for text in ("2025-03-01T10:00:00Z", "2025-03-01t10:00:00.5z", "2025-03-01T10:00:00+02:00"):
        assert parse_event_time(text) == parse_ts(text) == datetime.fromisoformat(
            text.upper()).timestamp()


def test_the_common_forms_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(value: str) -> str:
        raise AssertionError(f"{value} took the slow path")

    monkeypatch.setattr(decoding, "_parse_ts_exactly", slow)
    for text in ("2025-03-01T10:00:00Z", "2025-03-01T10:00:00+02:00",
                 "2025-03-01T10:00:00.250-05:30", "2025-03-01T10:00:00.5Z"):
        assert isinstance(parse_ts(text), float)


# The fast path of parse_ts must accept exactly what the pattern does (the
# schemas' pattern; tests/unit/test_contracts.py holds the schemas to it).

@settings(max_examples=3000, deadline=None)
@given(text=timestamps())
def test_parse_ts_accepts_exactly_the_pattern(text: str) -> None:
    ts = parse_ts(text)
    assert isinstance(ts, float) == (TS.match(text) is not None), (text, ts)
    if isinstance(ts, float):
        assert ts == datetime.fromisoformat(text.replace("z", "Z")).timestamp()


def test_epoch_seconds_agree_across_offsets_and_dates() -> None:
    for minutes in range(-(24 * 60 - 1), 24 * 60, 7):
        tz = timezone(timedelta(minutes=minutes))
        for day in range(0, 40_000, 997):
            dt = datetime(1990, 1, 2, 13, 7, 59, tzinfo=tz) + timedelta(days=day, seconds=day)
            assert parse_ts(dt.isoformat()) == dt.timestamp(), dt.isoformat()


def test_the_first_bad_field_in_the_event_is_the_reason() -> None:
    assert "'amount'" in reason(b"c1", b'{"amount": "x", "currency": "ils", "ts": 1}')
    assert "'currency'" in reason(b"c1", b'{"currency": "ils", "amount": "x", "ts": 1}')
    assert reason(b"c1", b'{"amount": 1}') == "missing required field 'event_id' (it is missing)"
    # A null required field is missing, not of the wrong type.
    nulled = decode("purchases", b"c1", b'{"event_id": null, "amount": 1}')
    assert isinstance(nulled, Rejected) and nulled.code == "missing_field"
    assert nulled.reason == "missing required field 'event_id' (it is null)"
