"""Raw Kafka bytes to typed records, or a reason why not.

Pure and broker-free: the agents hand every message here and send whatever
comes back as :class:`Rejected` to the dead-letters topic.  Nothing raises on
bad input, so one malformed event can never stop a worker, and every event
ends either applied or dead-lettered.

Hand-written checks rather than a JSON Schema validator on the hot path: they
cost a few microseconds per event and produce reasons a person can act on.
The contract test proves they accept and reject what ``schemas/`` does.  A
valid event only meets each check's fast yes/no (:meth:`Check.ok`); the
reasons are worked out, by the plainer code that words them, only for an
event that is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
    record_builder,
)

#: Events larger than this are not customer events; refuse before parsing.
MAX_EVENT_BYTES = 64 * 1024
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 8000
#: Event times outside these years are typos or clock faults, not history.
MIN_YEAR, MAX_YEAR = 1990, 2100
MIN_TS = datetime(MIN_YEAR, 1, 1).timestamp() - 86400
MAX_TS = datetime(MAX_YEAR, 1, 1).timestamp()
_EPOCH_DAY = datetime(1970, 1, 1).toordinal()


@dataclass(slots=True)
class Decoded:
    """A valid event.  Not frozen: a frozen dataclass's ``__init__`` costs a
    tenth of a decode, and nothing changes a Decoded after it is made."""

    record: Purchase | Contact | Complaint | Feedback
    #: Event time as epoch seconds (UTC), parsed once here.
    ts: float


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


class Check:
    """One field's rule: ``ok(v)`` answers fast, calling it says why not.

    Every event on the hot path is asked only ``ok``: a plain yes/no with no
    message to format.  The reasons are worded only for an event that failed,
    by the original, readable message code, so the two halves of a rule sit
    side by side and ``ok(v)`` is ``check(name, v) is None`` for every value
    JSON can produce (a unit test holds them to that).  ``ok`` may demand
    exact built-in types (orjson produces nothing else); anything it doubts
    goes to the message code, which has the last word.
    """

    __slots__ = ()

    def __call__(self, name: str, v: Any) -> str | None:
        """The reason ``v`` is not acceptable for field ``name``, or ``None``."""
        raise NotImplementedError

    def ok(self, v: Any) -> bool:
        """Whether ``v`` is acceptable (``v`` is never ``None`` here)."""
        raise NotImplementedError


class _String(Check):
    __slots__ = ("max_len",)

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len

    def __call__(self, name: str, v: Any) -> str | None:
        if not isinstance(v, str):
            return f"field '{name}' must be a string, got {type(v).__name__}"
        if not v.strip():
            return f"field '{name}' must not be empty"
        if len(v) > self.max_len:
            return f"field '{name}' is longer than {self.max_len} characters"
        return None

    def ok(self, v: Any) -> bool:
        return type(v) is str and len(v) <= self.max_len and v.strip() != ""


class _Enum(Check):
    __slots__ = ("members", "values")

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values
        self.members = frozenset(values)

    def __call__(self, name: str, v: Any) -> str | None:
        if v not in self.values:
            return f"field '{name}' must be one of {', '.join(self.values)}; got {v!r}"
        return None

    def ok(self, v: Any) -> bool:
        return type(v) is str and v in self.members


class _Number(Check):
    """A finite number in ``lo..hi``; ``hi`` is finite, so the range excludes inf and NaN."""

    __slots__ = ("hi", "lo")

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, name: str, v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return f"field '{name}' must be a number, got {type(v).__name__}"
        if v < self.lo or v > self.hi:
            return f"field '{name}' must be {self.lo}..{self.hi}, got {v}"
        return None

    def ok(self, v: Any) -> bool:
        t = type(v)
        return (t is float or t is int) and self.lo <= v <= self.hi


class _Integer(Check):
    __slots__ = ("hi", "lo")

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, name: str, v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"field '{name}' must be a whole number, got {type(v).__name__}"
        if not self.lo <= v <= self.hi:
            return f"field '{name}' must be {self.lo}..{self.hi}, got {v}"
        return None

    def ok(self, v: Any) -> bool:
        return type(v) is int and self.lo <= v <= self.hi


class _Boolean(Check):
    __slots__ = ()

    def __call__(self, name: str, v: Any) -> str | None:
        return None if isinstance(v, bool) else f"field '{name}' must be true or false"

    def ok(self, v: Any) -> bool:
        return v is True or v is False


class _Tags(Check):
    __slots__ = ()

    def __call__(self, name: str, v: Any) -> str | None:
        if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
            return f"field '{name}' must be a list of strings"
        if len(v) > 50:
            return f"field '{name}' has more than 50 tags"
        return None

    def ok(self, v: Any) -> bool:
        return type(v) is list and len(v) <= 50 and all(type(t) is str for t in v)


class _Currency(Check):
    __slots__ = ()

    def __call__(self, name: str, v: Any) -> str | None:
        if not self.ok(v):
            return f"field '{name}' must be an ISO-4217 code such as ILS or EUR, got {v!r}"
        return None

    def ok(self, v: Any) -> bool:
        return isinstance(v, str) and len(v) == 3 and v.isascii() and v.isupper()


_ID = _String(MAX_ID_LENGTH)
_TEXT = _String(MAX_TEXT_LENGTH)

#: kind -> field -> (required, check).  Mirrors schemas/<kind>.json.
FIELDS: dict[str, dict[str, tuple[bool, Check]]] = {
    "purchases": {
        "amount": (True, _Number(0, 1e9)),
        "currency": (False, _Currency()),
        "channel": (False, _Enum(PURCHASE_CHANNELS)),
    },
    "contacts": {
        "direction": (True, _Enum(DIRECTIONS)),
        "channel": (True, _Enum(CONTACT_CHANNELS)),
        "outcome": (False, _Enum(CONTACT_OUTCOMES)),
        "purpose": (False, _Enum(CONTACT_PURPOSES)),
        "text": (False, _TEXT),
        "tags": (False, _Tags()),
    },
    "complaints": {
        "category": (True, _Enum(COMPLAINT_CATEGORIES)),
        "severity": (True, _Integer(1, 5)),
        "compensation_requested": (False, _Number(0, 1e9)),
        "text": (False, _TEXT),
        "resolved": (False, _Boolean()),
    },
    "feedback": {
        "outcome": (True, _Enum(FEEDBACK_OUTCOMES)),
        "alert_id": (False, _ID),
        "note": (False, _TEXT),
    },
}
_COMMON: dict[str, tuple[bool, Check]] = {
    "event_id": (True, _ID),
    "customer_id": (True, _ID),
    "ts": (True, _String(64)),
    "schema_version": (False, _Integer(1, 1)),
}


_Ok = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class _Kind:
    """What :func:`decode` needs for one input kind, worked out once at import."""

    spec: dict[str, tuple[bool, Check]]
    #: (field, ok) for the required and the optional fields, common ones first.
    required: tuple[tuple[str, _Ok], ...]
    optional: tuple[tuple[str, _Ok], ...]
    build: Callable[[Mapping[str, Any]], Purchase | Contact | Complaint | Feedback]


def _kind(kind: str) -> _Kind:
    spec = FIELDS[kind]
    rules = {**_COMMON, **spec}
    return _Kind(
        spec=spec,
        required=tuple((name, check.ok) for name, (required, check) in rules.items() if required),
        optional=tuple((name, check.ok) for name, (required, check) in rules.items()
                       if not required),
        build=record_builder(INPUT_RECORDS[kind]),
    )


_KINDS = {kind: _kind(kind) for kind in FIELDS}


def parse_ts(value: str) -> float | str:
    """ISO-8601 with an explicit offset to epoch seconds, or the reason it is not.

    A timestamp without an offset is refused: guessing the zone would shift a
    customer's history by hours and make replays disagree with live runs.
    """
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return f"field 'ts' is not an ISO-8601 timestamp: {value!r}"
    tz = dt.tzinfo
    offset: timedelta | None
    if type(tz) is timezone:
        # What fromisoformat gives for any offset: fixed, so asked directly;
        # ``dt.utcoffset()`` goes the long way round (a method call by name).
        offset = tz.utcoffset(None)
    elif tz is None or (offset := dt.utcoffset()) is None:
        return f"field 'ts' has no UTC offset (add 'Z' or '+02:00'): {value!r}"
    if not MIN_YEAR <= dt.year < MAX_YEAR:
        return f"field 'ts' is outside {MIN_YEAR}..{MAX_YEAR}: {value!r}"
    if dt.microsecond or offset.microseconds:
        return dt.timestamp()
    # Whole seconds: exactly what dt.timestamp() returns (it divides the same
    # whole number of microseconds by 10**6), without the aware-datetime
    # subtraction and big-integer arithmetic that were a third of this call.
    return float((dt.toordinal() - _EPOCH_DAY) * 86400 + dt.hour * 3600 + dt.minute * 60
                 + dt.second - offset.days * 86400 - offset.seconds)


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
    k = _KINDS[kind]
    if not _passes(k, data):
        # For what orjson produces the two always agree, so this returns; were
        # a check ever laxer than its fast test, the event would go on as valid.
        problem = _first_problem(k.spec, data)
        if problem is not None:
            return problem
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
    # The builder reads the record's fields and ignores the rest (unknown
    # fields, schema_version); a null optional field gets its default.
    return Decoded(k.build(data), ts)


def _passes(k: _Kind, data: dict[str, Any]) -> bool:
    """Whether every field is acceptable: the fast yes for the common, valid event.

    A null optional field counts as absent; unknown fields are ignored, not
    refused: producers may add fields (schema evolution) without every event
    being dead-lettered.
    """
    for name, ok in k.required:
        v = data.get(name)
        if v is None or not ok(v):
            return False
    for name, ok in k.optional:
        v = data.get(name)
        if v is not None and not ok(v):
            return False
    return True


def _first_problem(spec: dict[str, tuple[bool, Check]], data: dict[str, Any]) -> Rejected | None:
    """The reason an event is refused: the first bad field in the event's own order,
    else the first missing required field (common fields first).

    Only asked once :func:`_passes` said no, so its wording (the contract
    people read in dead letters) costs nothing on valid events.
    """
    for name, v in data.items():
        rule = _COMMON.get(name) or spec.get(name)
        if rule is None or (v is None and not rule[0]):
            continue
        problem = rule[1](name, v)
        if problem:
            return Rejected(problem)
    for table in (_COMMON, spec):
        for name, (required, _) in table.items():
            if required and data.get(name) is None:
                return Rejected(f"missing required field '{name}'")
    return None
