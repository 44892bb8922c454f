"""Raw Kafka bytes to typed records, or a reason why not.

Pure and broker-free: the agents hand every message here and send whatever
comes back as :class:`Rejected` to the dead-letters topic.  Nothing raises on
bad input, so one malformed event can never stop a worker, and every event
ends either applied or dead-lettered.

Hand-written checks rather than a JSON Schema validator on the hot path: they
cost a few microseconds per event and produce reasons a person can act on.
The contract test proves they accept and reject what ``schemas/`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from .records import (
    COMPLAINT_CATEGORIES,
    CONTACT_CHANNELS,
    CONTACT_OUTCOMES,
    CONTACT_PURPOSES,
    DIRECTIONS,
    FEEDBACK_OUTCOMES,
    INPUT_RECORDS,
    PURCHASE_CHANNELS,
    Complaint,
    Contact,
    Feedback,
    Purchase,
)

#: Events larger than this are not customer events; refuse before parsing.
MAX_EVENT_BYTES = 64 * 1024
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 8000
#: Event times outside these years are typos or clock faults, not history.
MIN_YEAR, MAX_YEAR = 1990, 2100
MIN_TS = datetime(MIN_YEAR, 1, 1).timestamp() - 86400
MAX_TS = datetime(MAX_YEAR, 1, 1).timestamp()


@dataclass(frozen=True, slots=True)
class Decoded:
    record: Purchase | Contact | Complaint | Feedback
    #: Event time as epoch seconds (UTC), parsed once here.
    ts: float


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


Check = Callable[[str, Any], str | None]


def _string(max_len: int) -> Check:
    def check(name: str, v: Any) -> str | None:
        if not isinstance(v, str):
            return f"field '{name}' must be a string, got {type(v).__name__}"
        if not v.strip():
            return f"field '{name}' must not be empty"
        if len(v) > max_len:
            return f"field '{name}' is longer than {max_len} characters"
        return None
    return check


def _enum(values: tuple[str, ...]) -> Check:
    def check(name: str, v: Any) -> str | None:
        if v not in values:
            return f"field '{name}' must be one of {', '.join(values)}; got {v!r}"
        return None
    return check


def _number(lo: float, hi: float | None = None) -> Check:
    def check(name: str, v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return f"field '{name}' must be a number, got {type(v).__name__}"
        if v < lo or (hi is not None and v > hi):
            bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            return f"field '{name}' must be {bound}, got {v}"
        return None
    return check


def _integer(lo: int, hi: int) -> Check:
    def check(name: str, v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"field '{name}' must be a whole number, got {type(v).__name__}"
        if not lo <= v <= hi:
            return f"field '{name}' must be {lo}..{hi}, got {v}"
        return None
    return check


def _boolean(name: str, v: Any) -> str | None:
    return None if isinstance(v, bool) else f"field '{name}' must be true or false"


def _tags(name: str, v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        return f"field '{name}' must be a list of strings"
    if len(v) > 50:
        return f"field '{name}' has more than 50 tags"
    return None


def _currency(name: str, v: Any) -> str | None:
    if not (isinstance(v, str) and len(v) == 3 and v.isascii() and v.isupper()):
        return f"field '{name}' must be an ISO-4217 code such as ILS or EUR, got {v!r}"
    return None


_ID = _string(MAX_ID_LENGTH)
_TEXT = _string(MAX_TEXT_LENGTH)

#: kind -> field -> (required, check).  Mirrors schemas/<kind>.json.
FIELDS: dict[str, dict[str, tuple[bool, Check]]] = {
    "purchases": {
        "amount": (True, _number(0, 1e9)),
        "currency": (False, _currency),
        "channel": (False, _enum(PURCHASE_CHANNELS)),
    },
    "contacts": {
        "direction": (True, _enum(DIRECTIONS)),
        "channel": (True, _enum(CONTACT_CHANNELS)),
        "outcome": (False, _enum(CONTACT_OUTCOMES)),
        "purpose": (False, _enum(CONTACT_PURPOSES)),
        "text": (False, _TEXT),
        "tags": (False, _tags),
    },
    "complaints": {
        "category": (True, _enum(COMPLAINT_CATEGORIES)),
        "severity": (True, _integer(1, 5)),
        "compensation_requested": (False, _number(0, 1e9)),
        "text": (False, _TEXT),
        "resolved": (False, _boolean),
    },
    "feedback": {
        "outcome": (True, _enum(FEEDBACK_OUTCOMES)),
        "alert_id": (False, _ID),
        "note": (False, _TEXT),
    },
}
_COMMON: dict[str, tuple[bool, Check]] = {
    "event_id": (True, _ID),
    "customer_id": (True, _ID),
    "ts": (True, _string(64)),
    "schema_version": (False, _integer(1, 1)),
}


def parse_ts(value: str) -> float | str:
    """ISO-8601 with an explicit offset to epoch seconds, or the reason it is not.

    A timestamp without an offset is refused: guessing the zone would shift a
    customer's history by hours and make replays disagree with live runs.
    """
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return f"field 'ts' is not an ISO-8601 timestamp: {value!r}"
    if dt.tzinfo is None or dt.utcoffset() is None:
        return f"field 'ts' has no UTC offset (add 'Z' or '+02:00'): {value!r}"
    if not MIN_YEAR <= dt.year < MAX_YEAR:
        return f"field 'ts' is outside {MIN_YEAR}..{MAX_YEAR}: {value!r}"
    return dt.timestamp()


def decode(kind: str, key: bytes | None, value: bytes | None) -> Decoded | Rejected:
    """Validate one message of input topic ``kind`` (purchases|contacts|complaints|feedback)."""
    if value is None:
        return Rejected("empty message (no value)")
    if len(value) > MAX_EVENT_BYTES:
        return Rejected(f"event is {len(value)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejected(f"not valid UTF-8 JSON: {exc}")
    if not isinstance(data, dict):
        return Rejected(f"expected a JSON object, got {type(data).__name__}")
    spec = FIELDS[kind]
    known: dict[str, Any] = {}
    # Unknown fields are ignored, not refused: producers may add fields
    # (schema evolution) without every event being dead-lettered.
    for name, v in data.items():
        rule = _COMMON.get(name) or spec.get(name)
        if rule is None or (v is None and not rule[0]):
            continue
        problem = rule[1](name, v)
        if problem:
            return Rejected(problem)
        known[name] = v
    data = known
    for table in (_COMMON, spec):
        for name, (required, _) in table.items():
            if required and name not in data:
                return Rejected(f"missing required field '{name}'")
    ts = parse_ts(data["ts"])
    if isinstance(ts, str):
        return Rejected(ts)
    if key is None:
        return Rejected("message has no key; key every event by its customer_id")
    cid = data["customer_id"].encode()
    if key != cid and key != b'"' + cid + b'"':
        return Rejected(
            "message key does not match customer_id; key every event by its customer_id "
            "so that one customer's events share a partition"
        )
    data.pop("schema_version", None)
    return Decoded(INPUT_RECORDS[kind](**data), ts)
