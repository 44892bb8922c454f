"""Historical files to topic records: column mapping, time parsing, validation, ordering.

Replay and evaluation read files that were never written for Churnwatch (a
shop's transaction log, a CRM export), so every row goes through three steps:

1. *map*: pick each schema field from a column (``--map ts=date``), or from a
   constant (``--set channel=store``), converting text to the field's type;
   an ``event_id`` that the file lacks is derived from the file name and line
   number, so a second replay of the same file produces the same ids;
2. *validate*: the mapped record is judged by :func:`stream_app.decoding.decode`,
   the very function the worker uses, so a row accepted here is a row the
   worker applies.  Rows that fail are reported with ``file:line`` and the
   reason and are **not sent**: replay knows the file and the line, which
   makes a better report than a dead letter with a topic offset;
3. *order*: each file is read into memory, sorted by event time if it was not
   already (and the caller is told), and the files are merged with a heap, so
   the topics receive events in event-time order as the signals expect.

A naive time (no UTC offset, e.g. ``19970101``) is read in ``tz`` (UTC by
default).  The topics' contract refuses naive times so that live producers
never have a zone guessed for them; here the operator states the zone once.
"""

from __future__ import annotations

import csv
import functools
import heapq
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from .decoding import _COMMON, FIELDS, Decoded, decode

#: The topics a replay can feed (feedback is an operational topic, not history).
KINDS = ("purchases", "contacts", "complaints")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
DELIMITERS = {"comma": ",", "tab": "\t", "semicolon": ";", "pipe": "|", "whitespace": None}
_NUMBERS = frozenset({"amount", "compensation_requested"})
_INTEGERS = frozenset({"severity", "schema_version"})
_BOOLEANS = frozenset({"resolved"})
_LISTS = frozenset({"tags"})
_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f"})


class MappingError(ValueError):
    """The mapping or a file cannot be used at all; the message says what to change."""


def schema_fields(kind: str) -> tuple[str, ...]:
    return (*_COMMON, *FIELDS[kind])


def all_fields() -> set[str]:
    return {f for k in KINDS for f in schema_fields(k)}


def parse_pairs(text: str | None, what: str) -> dict[str, str]:
    """``a=b,c=d`` to ``{a: b, c: d}``; field names are checked against the schemas."""
    if not text:
        return {}
    pairs: dict[str, str] = {}
    known = all_fields()
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise MappingError(f"{what} {part!r}: expected FIELD=VALUE, e.g. "
                               "customer_id=cust,ts=date,amount=spend")
        if name not in known:
            raise MappingError(f"{what} {name!r} is not a field of our topics; fields are: "
                               + ", ".join(sorted(known)))
        pairs[name] = value
    return pairs


def parse_tz(text: str) -> tzinfo:
    """``UTC``, ``+02:00`` or an IANA zone name such as ``Asia/Jerusalem``."""
    if text.upper() in ("UTC", "Z"):
        return UTC
    if text[:1] in "+-" and ":" in text:
        sign = 1 if text[0] == "+" else -1
        hours, _, minutes = text[1:].partition(":")
        try:
            return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
        except ValueError:
            pass
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"--tz {text!r}: give UTC, an offset such as +02:00, or a zone "
                           "name such as Europe/London") from None


@dataclass(frozen=True, slots=True)
class Mapping:
    """How to read rows of files that are not in our schema."""

    #: schema field -> column name in the file (unmapped fields use their own name).
    columns: dict[str, str] = field(default_factory=dict)
    #: schema field -> constant text value for every row.
    constants: dict[str, str] = field(default_factory=dict)
    #: ``strptime`` format for ``ts``, ``epoch`` / ``epoch_ms``, or None for ISO-8601.
    date_format: str | None = None
    tz: tzinfo = UTC
    #: Delimiter name (see DELIMITERS) or None to detect it from the header line.
    delimiter: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    kind: str
    path: Path


@dataclass(frozen=True, slots=True)
class MappedEvent:
    ts: float
    kind: str
    customer_id: str
    #: The validated record as JSON, exactly as it will be sent.
    value: bytes
    #: ``file:line`` the event came from.
    origin: str


@dataclass
class FileReport:
    path: Path
    kind: str
    rows: int = 0
    accepted: int = 0
    #: (file:line, reason) of the first rows that could not be mapped.
    rejected: list[tuple[str, str]] = field(default_factory=list)
    rejected_count: int = 0
    #: The file was not in event-time order and was sorted in memory.
    sorted_in_memory: bool = False


MAX_REPORTED_REJECTS = 20


def _rows(path: Path, m: Mapping) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, row or None, problem) for every data line of the file."""
    if not path.is_file():
        raise MappingError(f"{path}: no such file")
    if path.suffix.lower() in JSON_SUFFIXES:
        with path.open("rb") as f:
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    yield n, None, f"not valid JSON: {exc}"
                    continue
                if isinstance(obj, dict):
                    yield n, obj, None
                else:
                    yield n, None, f"expected a JSON object, got {type(obj).__name__}"
        return
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        header = f.readline()
        if not header.strip():
            raise MappingError(f"{path}: empty file, or no header line naming the columns")
        name = m.delimiter
        if name is None:
            name = next((k for k, d in DELIMITERS.items() if d and d in header), "whitespace")
        if name not in DELIMITERS:
            raise MappingError(f"--delimiter {name!r}: use one of {', '.join(DELIMITERS)}")
        delim = DELIMITERS[name]
        if delim is None:
            columns = header.split()
            for n, line in enumerate(f, 2):
                if not line.strip():
                    continue
                cells = line.split()
                if len(cells) != len(columns):
                    yield n, None, (f"{len(cells)} values for {len(columns)} columns "
                                    f"({' '.join(columns)})")
                    continue
                yield n, dict(zip(columns, cells, strict=True)), None
            return
        columns = next(csv.reader(io.StringIO(header), delimiter=delim))
        columns = [c.strip() for c in columns]
        reader = csv.reader(f, delimiter=delim)
        for cells in reader:
            n = reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(columns):
                yield n, None, f"{len(cells)} values for {len(columns)} columns"
                continue
            yield n, dict(zip(columns, cells, strict=True)), None


def check_columns(path: Path, kind: str, m: Mapping) -> None:
    """Fail early, naming the file's columns, when a required field has no column.

    One wrong column name would otherwise reject every row, one by one.
    """
    if path.suffix.lower() in JSON_SUFFIXES:
        return
    for _, row, _ in _rows(path, m):
        if row is None:
            continue
        for name, (required, _) in {**_COMMON, **FIELDS[kind]}.items():
            col = m.columns.get(name, name)
            if required and name != "event_id" and name not in m.constants and col not in row:
                raise MappingError(
                    f"{path}: no column {col!r} for the required field {name!r} of "
                    f"{kind}; the file's columns are: {', '.join(row)}. Map one with "
                    f"--map {name}=COLUMN")
        return


@functools.lru_cache(maxsize=8192)
def _strptime(text: str, fmt: str) -> datetime:
    # Logs repeat the same few hundred dates; strptime is most of a row's cost.
    return datetime.strptime(text, fmt)


def parse_time(raw: Any, m: Mapping) -> datetime:
    if m.date_format in ("epoch", "epoch_ms") or (m.date_format is None and
                                                   isinstance(raw, int | float)
                                                   and not isinstance(raw, bool)):
        value = float(raw)
        return datetime.fromtimestamp(value / 1000 if m.date_format == "epoch_ms" else value,
                                      UTC)
    text = str(raw).strip()
    dt = _strptime(text, m.date_format) if m.date_format else datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=m.tz)
    return dt


def _convert(name: str, raw: Any, m: Mapping) -> Any:
    """Text from a file to the type the schema wants (JSON values pass through)."""
    if name == "ts":
        return parse_time(raw, m).isoformat()
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if name in _NUMBERS:
        return float(text.replace(",", "")) if text.count(".") <= 1 else float(text)
    if name in _INTEGERS:
        number = float(text)
        if not number.is_integer():
            raise ValueError(f"expected a whole number, got {text!r}")
        return int(number)
    if name in _BOOLEANS:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if name in _LISTS:
        sep = next((s for s in "|;," if s in text), None)
        return [t.strip() for t in (text.split(sep) if sep else [text]) if t.strip()]
    return text


def map_row(kind: str, row: dict[str, Any], m: Mapping, origin: str) -> tuple[float, bytes] | str:
    """One file row to (event time, validated JSON record), or the reason it cannot be."""
    record: dict[str, Any] = {}
    for name in schema_fields(kind):
        if name in m.constants:
            raw: Any = m.constants[name]
        else:
            raw = row.get(m.columns.get(name, name))
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        try:
            record[name] = _convert(name, raw, m)
        except (ValueError, TypeError, OverflowError, OSError) as exc:
            col = "constant" if name in m.constants else f"column {m.columns.get(name, name)!r}"
            return f"field {name!r} ({col}): cannot read {raw!r}: {exc}"
    if "event_id" not in record:
        record["event_id"] = origin
    value = orjson.dumps(record)
    cid = record.get("customer_id")
    result = decode(kind, cid.encode() if isinstance(cid, str) else b"", value)
    if not isinstance(result, Decoded):
        return result.reason
    return result.ts, value



def load_file(source: Source, m: Mapping, report: FileReport) -> list[MappedEvent]:
    """Every acceptable row of one file, in event-time order."""
    check_columns(source.path, source.kind, m)
    events: list[MappedEvent] = []
    previous = float("-inf")
    in_order = True
    name = source.path.name
    for n, row, problem in _rows(source.path, m):
        report.rows += 1
        origin = f"{name}:{n}"
        mapped = (problem or "unreadable") if row is None else map_row(source.kind, row, m,
                                                                         origin)
        if isinstance(mapped, str):
            report.rejected_count += 1
            if len(report.rejected) < MAX_REPORTED_REJECTS:
                report.rejected.append((f"{source.path}:{n}", mapped))
            continue
        ts, value = mapped
        if ts < previous:
            in_order = False
        previous = max(previous, ts)
        cid = orjson.loads(value)["customer_id"]
        events.append(MappedEvent(ts, source.kind, cid, value, origin))
    report.accepted = len(events)
    if not in_order:
        events.sort(key=lambda e: e.ts)  # stable: equal times keep the file's order
        report.sorted_in_memory = True
    return events


def merge(streams: Iterable[list[MappedEvent]]) -> Iterator[MappedEvent]:
    """Heap merge of time-ordered lists; equal times keep the order of the sources."""
    keyed = ([(e.ts, i, j, e) for j, e in enumerate(s)] for i, s in enumerate(streams))
    for _, _, _, e in heapq.merge(*keyed):
        yield e


@dataclass
class Loaded:
    events: list[MappedEvent]
    reports: list[FileReport]

    @property
    def rejected(self) -> int:
        return sum(r.rejected_count for r in self.reports)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.reports)


def load(sources: Iterable[Source], m: Mapping,
         keep: Callable[[str], bool] | None = None) -> Loaded:
    """All files mapped, validated and merged in event-time order.

    ``keep(customer_id) -> bool`` drops customers before anything is kept
    (a sample of a large data set).
    """
    reports: list[FileReport] = []
    streams: list[list[MappedEvent]] = []
    for src in sources:
        if src.kind not in KINDS:
            raise MappingError(f"cannot replay into {src.kind!r}; use one of {', '.join(KINDS)}")
        rep = FileReport(src.path, src.kind)
        events = load_file(src, m, rep)
        if keep is not None:
            events = [e for e in events if keep(e.customer_id)]
        reports.append(rep)
        streams.append(events)
    return Loaded(list(merge(streams)), reports)


def describe_reports(loaded: Loaded) -> list[str]:
    """Lines for people: per file, rows read, accepted, rejected (with file:line), sorting."""
    lines = []
    for r in loaded.reports:
        line = (f"{r.path} ({r.kind}): {r.rows:,} rows, {r.accepted:,} accepted, "
                f"{r.rejected_count:,} rejected (not sent)")
        if r.sorted_in_memory:
            line += "; not in time order, sorted in memory"
        lines.append(line)
        for where, why in r.rejected:
            lines.append(f"  {where}: {why}")
        if r.rejected_count > len(r.rejected):
            lines.append(f"  ... and {r.rejected_count - len(r.rejected):,} more")
    return lines


def to_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Write records as JSON Lines (the format replay reads without any mapping)."""
    n = 0
    with path.open("wb") as f:
        for r in records:
            f.write(orjson.dumps(r) + b"\n")
            n += 1
    return n

