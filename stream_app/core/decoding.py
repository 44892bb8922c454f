"""Raw Kafka bytes to typed records, or a reason why not.

Pure and broker-free: the agents hand every message here and send whatever
comes back as :class:`Rejected` to the dead-letters topic.  Nothing raises on
bad input, so one malformed event can never stop a worker, and every event
ends either applied or dead-lettered.

Hand-written checks rather than a JSON Schema validator on the hot path: they
are cheap enough for every event and produce reasons a person can act on.
The contract test proves they accept and reject what ``schemas/`` does.  A
valid event only meets each check's fast yes/no (:meth:`Check.ok`); the
reasons are worked out, by the plainer code that words them, only for an
event that is refused.

Every refusal carries a code from :data:`REASON_CODES`, a closed set: the
dead-letter metric is labelled by the code, never by the reason's text,
which quotes the input and so could grow a metric series per bad value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
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
_EPOCH_DAY = datetime(1970, 1, 1).toordinal()


@dataclass(slots=True)
class Decoded:
    """A valid event.  Not frozen: a frozen dataclass's ``__init__`` is a
    noticeable share of a decode, and nothing changes a Decoded after it is made."""

    record: Purchase | Contact | Complaint | Feedback
    #: Event time as epoch seconds (UTC), parsed once here.
    ts: float


#: Why an event was refused, as a metric label: a closed set, so no input can
#: add a series.  The last three are the processor's (after decoding).
REASON_CODES: tuple[str, ...] = (
    "empty",              # no value (a tombstone) or zero bytes
    "too_large",          # over MAX_EVENT_BYTES
    "not_utf8",           # the bytes are not UTF-8
    "not_json",           # UTF-8, but not JSON
    "schema_registry",    # Schema Registry framed, and what follows is not JSON
    "not_object",         # JSON, but not an object
    "missing_field",      # a required field is absent or null
    "bad_field",          # a field has the wrong type or value
    "bad_ts",             # the event time is not an RFC 3339 timestamp in range
    "no_key",             # the message has no key
    "key_mismatch",       # the key is not the event's customer_id
    "too_late",           # behind the partition's clock by more than the lateness
    "from_future",        # too far ahead of the clock to be believed
    "processing_failed",  # valid, but applying it failed
)
_CODES = frozenset(REASON_CODES)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused event: ``reason`` for the person who reads the dead letter,
    ``code`` (one of :data:`REASON_CODES`) for the metric that counts it."""

    reason: str
    code: str

    def __post_init__(self) -> None:
        # A code outside the set is a programming error, not bad input: it
        # would be a metric series nobody alerts on.
        if self.code not in _CODES:
            raise ValueError(f"unknown reason code {self.code!r}; add it to REASON_CODES")


#: How much of a value a reason quotes: enough to recognise it, never enough
#: to make one bad event's dead letter (or a log line) large.
SHOW_CHARS = 40


def show(v: Any) -> str:
    """``v`` as a reason quotes it: the repr of a scalar, a string cut short
    (marked with an ellipsis), a container by its type alone.

    A container's repr could be the whole event, or recurse past Python's
    limit for the 1,000-deep nesting orjson reads.
    """
    if isinstance(v, str):
        text = repr(v[:SHOW_CHARS])
        cut = len(v) > SHOW_CHARS
        if len(text) > 2 * SHOW_CHARS:  # control characters, each repr'd as \xNN
            text, cut = text[:2 * SHOW_CHARS], True
        return text + "…" if cut else text
    if v is None or isinstance(v, bool | int | float):  # orjson's ints fit in 64 bits
        return repr(v)
    return f"a {type(v).__name__}"


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
            return f"field '{name}' must be one of {', '.join(self.values)}; got {show(v)}"
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
            return f"field '{name}' must be {self.lo}..{self.hi}, got {show(v)}"
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
            return f"field '{name}' must be {self.lo}..{self.hi}, got {show(v)}"
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
            return f"field '{name}' must be an ISO-4217 code such as ILS or EUR, got {show(v)}"
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
#: The fields every input kind has: field -> (required, check).
COMMON: dict[str, tuple[bool, Check]] = {
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
    rules = {**COMMON, **spec}
    return _Kind(
        spec=spec,
        required=tuple((name, check.ok) for name, (required, check) in rules.items() if required),
        optional=tuple((name, check.ok) for name, (required, check) in rules.items()
                       if not required),
        build=record_builder(INPUT_RECORDS[kind]),
    )


_KINDS = {kind: _kind(kind) for kind in FIELDS}


# The event-time contract: an RFC 3339 date-time (section 5.6) with an offset,
# in the years MIN_YEAR..MAX_YEAR-1: ``2025-03-01T10:00:00Z`` or
# ``2025-03-01T10:00:00.250+02:00``.  'T' and 'Z' may be lowercase, as RFC 3339
# allows.  Refused although ISO 8601 has them, because not every consumer of
# the topics reads them: basic (``20250301T100000Z``), week and ordinal dates,
# a time without seconds, an offset without its colon or with seconds, a space
# for the 'T', and the leap second :60 (Python's datetime cannot hold it).
#
# The schemas' ``ts`` pattern is this very string (a contract test compares
# them), so a schema validator and the decoder accept exactly the same
# strings.  It checks the calendar itself (days per month, leap years), so a
# validator that skips ``format: date-time`` still agrees; it uses only
# syntax that means the same in ECMA-262 and in Python (``[0-9]``, not
# ``\d``, which is any Unicode digit in Python), and ``$(?!\n)`` because
# Python's ``$`` also matches before a final newline.
_YEAR = "(?:199[0-9]|20[0-9]{2})"
_LEAP_YEAR = "(?:199[26]|20[02468][048]|20[13579][26])"
_DATE = (f"(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
         "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
         "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
         f"|{_LEAP_YEAR}-02-29)")
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
TS_PATTERN = f"^{_DATE}[Tt]{_TIME}{_OFFSET}$(?!\\n)"
_TS = re.compile(TS_PATTERN)
_TS_FORM = "RFC 3339 form (2025-03-01T10:00:00Z or 2025-03-01T10:00:00.5+02:00)"


class BadTimestamp(ValueError):
    """An event time outside the contract; the message is the reason a dead letter gives."""


def parse_event_time(value: str) -> float:
    """An RFC 3339 timestamp (see :data:`TS_PATTERN`) to epoch seconds.

    Raises :class:`BadTimestamp`, whose message is exactly the reason the
    decoder dead-letters such a time with (:func:`parse_ts`).
    """
    ts = parse_ts(value)
    if isinstance(ts, str):
        raise BadTimestamp(ts)
    return ts


def parse_ts(value: str) -> float | str:
    """An RFC 3339 timestamp (see :data:`TS_PATTERN`) to epoch seconds, or the reason not.

    The reason is returned, not raised, for the decoder, which must never
    raise on bad input and words a refusal only once; other callers want
    :func:`parse_event_time`.

    A timestamp without an offset is refused: guessing the zone would shift a
    customer's history by hours and make replays disagree with live runs.

    Split as :class:`Check` is: the common forms get a fast yes from a few
    character tests and :meth:`datetime.fromisoformat`, which checks the
    calendar; it accepts only what the pattern does (a unit test holds it to
    that), and anything it doubts goes to the pattern, which has the last
    word.  The pattern alone would cost more than all of this.
    """
    try:
        # fromisoformat reads more than RFC 3339 (basic and week forms, any
        # separator, "+0200", "+02:60", an empty fraction, a fraction with
        # junk after its sixth digit): the separators in place, 'Z' or an
        # offset +HH:MM with minutes under 60, and nothing but ASCII digits
        # between the seconds and the offset leave only what the pattern allows.
        if value[-1] == "Z":
            end = len(value) - 1
        elif value[-6] in "+-" and value[-3] == ":" and value[-2] <= "5":
            end = len(value) - 6
        else:
            return _parse_ts_exactly(value)
        if (value[4] != "-" or value[7] != "-" or value[10] != "T" or value[13] != ":"
                or value[16] != ":" or (end != 19 and (
                    value[19] != "." or not (frac := value[20:end]).isdigit()
                    or not frac.isascii()))):
            return _parse_ts_exactly(value)
        dt = datetime.fromisoformat(value)
    except (IndexError, ValueError):
        return _parse_ts_exactly(value)
    tz = dt.tzinfo
    if type(tz) is not timezone or not MIN_YEAR <= dt.year < MAX_YEAR:
        return _parse_ts_exactly(value)
    if dt.microsecond:
        return dt.timestamp()
    # Whole seconds: exactly what dt.timestamp() returns (it divides the same
    # whole number of microseconds by 10**6), without the aware-datetime
    # subtraction and big-integer arithmetic that dominated this call.
    # The offset is asked of the fixed timezone directly: ``dt.utcoffset()``
    # goes the long way round (a method call by name).
    offset = tz.utcoffset(None)
    return float((dt.toordinal() - _EPOCH_DAY) * 86400 + dt.hour * 3600 + dt.minute * 60
                 + dt.second - offset.days * 86400 - offset.seconds)


def _parse_ts_exactly(value: str) -> float | str:
    """:func:`parse_ts` by the pattern: lowercase 't'/'z', and every refusal."""
    if _TS.match(value) is None:
        return _ts_problem(value)
    try:  # fromisoformat takes a lowercase 't' but not a 'z'
        return datetime.fromisoformat(value[:-1] + "Z" if value[-1] == "z" else value).timestamp()
    except ValueError:  # the pattern checked the calendar; kept so that nothing raises
        return _ts_problem(value)


def _ts_problem(value: str) -> str:
    """Why ``value`` is not an acceptable event time: the most useful of the reasons.

    Python's own ISO 8601 reader is more lenient than the contract, which
    lets it tell "no offset" and "out of range" apart from "not a time".
    """
    shown = show(value)
    try:
        dt = datetime.fromisoformat(value[:-1] + "Z" if value[-1:] == "z" else value)
    except ValueError as exc:
        # Python's own words when they say what is wrong ("day is out of
        # range for month"); not "Invalid isoformat string", which quotes
        # the whole value again.
        detail = "" if str(exc).startswith("Invalid isoformat") else f" ({exc})"
        return (f"field 'ts' is not an ISO-8601 timestamp{detail}, got {shown}; "
                f"write it in {_TS_FORM}")
    if dt.tzinfo is None:
        return f"field 'ts' has no UTC offset (add 'Z' or '+02:00'): {shown}"
    if not MIN_YEAR <= dt.year < MAX_YEAR:
        return f"field 'ts' is outside the years {MIN_YEAR}..{MAX_YEAR - 1}: {shown}"
    return f"field 'ts' must be in {_TS_FORM}, got {shown}"


def decode(kind: str, key: bytes | None, value: bytes | None) -> Decoded | Rejected:
    """Validate one message of input topic ``kind`` (purchases|contacts|complaints|feedback)."""
    if not value:
        return Rejected("empty message (no value)" if value is None
                        else "empty message (zero bytes)", "empty")
    if len(value) > MAX_EVENT_BYTES:
        return Rejected(f"event is {len(value)} bytes; the limit is {MAX_EVENT_BYTES}",
                        "too_large")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        # Schema Registry framing is recognised here, off the hot path: a
        # framed value is never valid JSON, as JSON never starts with byte 0.
        data = _unwrap(value, exc)
        if isinstance(data, Rejected):
            return data
    if not isinstance(data, dict):
        return Rejected(f"expected a JSON object, got {type(data).__name__}", "not_object")
    k = _KINDS[kind]
    if not _passes(k, data):
        # For what orjson produces the two always agree, so this returns; were
        # a check ever laxer than its fast test, the event would go on as valid.
        problem = _first_problem(k.spec, data)
        if problem is not None:
            return problem
    ts = parse_ts(data["ts"])
    if isinstance(ts, str):
        return Rejected(ts, "bad_ts")
    if key is None:
        return Rejected("message has no key; key every event by its customer_id", "no_key")
    cid = data["customer_id"].encode()
    if key != cid and key != b'"' + cid + b'"':
        return Rejected(
            f"message key {show(key.decode('utf-8', 'replace'))} does not match "
            f"customer_id {show(data['customer_id'])}; key every event by its customer_id "
            "so that one customer's events share a partition", "key_mismatch")
    # The builder reads the record's fields and ignores the rest (unknown
    # fields, schema_version); a null optional field gets its default.
    return Decoded(k.build(data), ts)


#: Confluent Schema Registry wire format: magic byte 0, then the schema id as
#: 4 bytes big-endian, then the serialized value.
_FRAME = 5


def _unwrap(value: bytes, exc: orjson.JSONDecodeError) -> Any:
    """The JSON inside a Schema Registry frame, or why ``value`` cannot be read.

    JSON-Schema-framed values are plain JSON after the frame, so they are
    decoded; Avro and Protobuf values are not, and the reason says which
    schema id the producer used, so it can be looked up in the registry.
    """
    if value[0] == 0:
        if len(value) < _FRAME:
            return Rejected(f"starts with byte 0 as Schema Registry framing does, but is only "
                            f"{len(value)} bytes; the frame alone is {_FRAME}", "schema_registry")
        schema_id = int.from_bytes(value[1:_FRAME], "big")
        try:
            return orjson.loads(value[_FRAME:])
        except orjson.JSONDecodeError:
            return Rejected(
                f"value is Confluent Schema Registry framed (magic byte 0, schema id "
                f"{schema_id}) and what follows is not valid UTF-8 JSON; only JSON Schema-framed "
                "values are decoded (Avro and Protobuf are not supported)", "schema_registry")
    try:
        value.decode()
    except UnicodeDecodeError as bad:
        return Rejected(f"not valid UTF-8 at byte {bad.start} (0x{value[bad.start]:02x}); "
                        "events must be UTF-8 JSON", "not_utf8")
    if value.startswith(b"\xef\xbb\xbf"):
        return Rejected("not valid UTF-8 JSON: it starts with a byte-order mark; "
                        "send the JSON without one", "not_json")
    return Rejected(f"not valid UTF-8 JSON: {exc}", "not_json")


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
        rule = COMMON.get(name) or spec.get(name)
        if rule is None or v is None:
            continue  # null is absent: optional, or missing (reported below)
        problem = rule[1](name, v)
        if problem:
            return Rejected(problem, "bad_ts" if name == "ts" else "bad_field")
    for table in (COMMON, spec):
        for name, (required, _) in table.items():
            if required and data.get(name) is None:
                said = "is null" if name in data else "is missing"
                return Rejected(f"missing required field '{name}' (it {said})",
                                "missing_field")
    return None
