"""Bad input gets a reason a person can act on, and never an exception."""

from __future__ import annotations

import orjson
import pytest

from stream_app.decoding import MAX_EVENT_BYTES, Decoded, Rejected, decode

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
