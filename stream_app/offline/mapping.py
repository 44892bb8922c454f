"""Historical files to topic records: column mapping, time parsing, validation, ordering.

Replay and evaluation read files that were never written for Churnwatch (a
shop's transaction log, a CRM export), so every row goes through three steps:

1. *map*: pick each schema field from a column (``--map ts=date``), or from a
   constant (``--set channel=store``), converting text to the field's type;
   an ``event_id`` that the file lacks is derived from the file name and line
   number, so a second replay of the same file produces the same ids;
2. *validate*: the mapped record is judged by :func:`stream_app.core.decoding.decode`,
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

Text files come from spreadsheets and shop systems all over the world, so two
things are not assumed:

* the *column separator* is sniffed from the header and the first rows, and
  only a separator that splits them all into the same number of columns is
  used (a header such as ``id;full, name;amount`` is a semicolon file);
* the *decimal mark*: ``12,50`` is twelve and a half in Israeli and European
  exports, and ``1.234,56`` has a dot grouping the thousands.  Unless the
  operator states it (``decimal``), a file's convention is the one every
  amount in it fits; an amount that fits both (``1,234``) in a file that never
  settles the question is refused with its ``file:line`` rather than guessed,
  because a wrong guess is a silent factor of a thousand.
"""

from __future__ import annotations

import csv
import functools
import heapq
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from ..core.decoding import COMMON, FIELDS, Decoded, decode

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


#: The fields every topic shares -> required (the decoder's table; a test
#: holds it to the schemas).
COMMON_FIELDS: dict[str, bool] = {name: required for name, (required, _) in COMMON.items()}
#: Decimal marks: what ``decimal`` may be, with the word used in messages.
DECIMAL_MARKS = {".": "decimal point", ",": "decimal comma"}


class MappingError(ValueError):
    """The mapping or a file cannot be used at all; the message says what to change."""


def schema_fields(kind: str) -> tuple[str, ...]:
    return (*COMMON_FIELDS, *FIELDS[kind])


def required_fields(kind: str) -> tuple[str, ...]:
    return (*(f for f, req in COMMON_FIELDS.items() if req),
            *(f for f, (req, _) in FIELDS[kind].items() if req))


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


def parse_decimal(text: str | None) -> str | None:
    """``,`` / ``comma`` or ``.`` / ``point`` to the mark; None (detect) stays None."""
    if text is None:
        return None
    word = text.strip().lower()
    for mark, name in DECIMAL_MARKS.items():
        if word in (mark, name.split()[1], name) or (mark == "." and word == "dot"):
            return mark
    raise MappingError(f"--decimal {text!r}: give , for a decimal comma (12,50) or . for a "
                       "decimal point (12.50)")


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
    #: Delimiter name (see DELIMITERS) or None to detect it from the header and first rows.
    delimiter: str | None = None
    #: Decimal mark of amounts in text (``.`` or ``,``), or None to detect it per file.
    decimal: str | None = None

    def __post_init__(self) -> None:
        if self.delimiter is not None and self.delimiter not in DELIMITERS:
            raise MappingError(f"--delimiter {self.delimiter!r}: use one of "
                               + ", ".join(DELIMITERS))
        if self.decimal is not None and self.decimal not in DECIMAL_MARKS:
            raise MappingError(f"--decimal {self.decimal!r}: give , for a decimal comma "
                               "(12,50) or . for a decimal point (12.50)")


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
    #: The decimal mark the file's amounts were read with, when it was detected
    #: (not stated), or None when the file never settled it.
    decimal_detected: str | None = None


MAX_REPORTED_REJECTS = 20


#: How much of a text file the separator is sniffed from, and how many data rows
#: must split like the header.  A handful of rows is enough to tell, and a row
#: further down that does not fit is reported by its line like any bad row.
_SAMPLE_CHARS = 64 * 1024
_SAMPLE_ROWS = 5


def _split_sample(sample: str, delim: str | None, complete: bool) -> list[list[str]]:
    """The header and first data rows of ``sample`` as split by ``delim``."""
    if delim is None:
        rows = [line.split() for line in sample.splitlines()]
        if not complete:
            rows = rows[:-1] or rows
    else:
        rows = list(csv.reader(io.StringIO(sample), delimiter=delim))
        if not complete:  # the last record may be cut off mid-way
            rows = rows[:-1] or rows
    rows = [r for r in rows if any(c.strip() for c in r)]
    return rows[:1 + _SAMPLE_ROWS]


def _even(rows: list[list[str]]) -> bool:
    return bool(rows) and len(rows[0]) > 1 and all(len(r) == len(rows[0]) for r in rows)


def detect_delimiter(path: Path, sample: str, complete: bool) -> str:
    """The name (see DELIMITERS) of the separator of a text file starting with ``sample``.

    ``csv.Sniffer`` alone guesses: on ``id;full, name;amount`` it may well
    answer a comma.  So a separator is only taken when the header and the
    first rows all split by it into the same number of columns, and the
    sniffer only breaks a tie between separators that pass.  ``complete``
    says the sample is the whole file (its last line is not cut off).
    """
    passing = [name for name, d in DELIMITERS.items()
               if d is not None and _even(_split_sample(sample, d, complete))]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(
            d for d in DELIMITERS.values() if d)).delimiter
    except csv.Error:
        sniffed = None
    by_char = {d: name for name, d in DELIMITERS.items() if d}
    if sniffed in by_char and by_char[sniffed] in passing:
        return by_char[sniffed]
    if len(passing) == 1:
        return passing[0]
    if passing:
        raise MappingError(f"{path}: cannot tell the column separator: the header and the "
                           f"first rows split evenly by {' and by '.join(passing)}; give "
                           f"--delimiter {passing[0]} (or another)")
    if _even(_split_sample(sample, None, complete)):
        return "whitespace"
    header = sample.splitlines()[0] if sample else ""
    if not any(d in header for d in by_char) and len(header.split()) <= 1:
        return "comma"  # a single column: check_columns names what is missing
    raise MappingError(f"{path}: cannot tell the column separator: the header and the first "
                       f"rows do not split into the same number of columns by any of "
                       f"{', '.join(DELIMITERS)}; give --delimiter NAME, and rows that "
                       "do not fit are then listed by line")


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
    try:
        yield from _text_rows(path, m)
    except UnicodeDecodeError as exc:
        raise MappingError(f"{path}: not UTF-8 text (byte {exc.start} of a chunk is "
                           f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8, "
                           "e.g. 'CSV UTF-8' in a spreadsheet") from None


def _text_rows(path: Path, m: Mapping) -> Iterator[tuple[int, dict[str, Any] | None,
                                                         str | None]]:
    # utf-8-sig: a spreadsheet's byte-order mark must not become part of the
    # first column's name.  newline="": the csv module handles CRLF and line
    # breaks inside quoted fields itself.
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        sample = f.read(_SAMPLE_CHARS)
        if not sample.strip():
            raise MappingError(f"{path}: empty file, or no header line naming the columns")
        name = m.delimiter or detect_delimiter(path, sample, len(sample) < _SAMPLE_CHARS)
        f.seek(0)
        delim = DELIMITERS[name]
        if delim is None:
            columns: list[str] = []
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                cells = line.split()
                if not columns:
                    columns = cells
                    continue
                if len(cells) != len(columns):
                    yield n, None, (f"{len(cells)} values for {len(columns)} columns "
                                    f"({' '.join(columns)})")
                    continue
                yield n, dict(zip(columns, cells, strict=True)), None
            return
        reader = csv.reader(f, delimiter=delim)
        header: list[str] | None = None
        start = 1
        for cells in reader:
            n, start = start, reader.line_num + 1  # a quoted field may span lines
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                continue
            if len(cells) != len(header):
                yield n, None, (f"{len(cells)} values for {len(header)} columns "
                                f"(separator {name})")
                continue
            yield n, dict(zip(header, cells, strict=True)), None


def check_columns(path: Path, kind: str, m: Mapping) -> None:
    """Fail early, naming the file's columns, when a required field has no column.

    One wrong column name would otherwise reject every row, one by one.
    """
    if path.suffix.lower() in JSON_SUFFIXES:
        return
    for _, row, _ in _rows(path, m):
        if row is None:
            continue
        for name in required_fields(kind):
            col = m.columns.get(name, name)
            if name != "event_id" and name not in m.constants and col not in row:
                raise MappingError(
                    f"{path}: no column {col!r} for the required field {name!r} of "
                    f"{kind}; the file's columns are: {', '.join(row)}. Map one with "
                    f"--map {name}=COLUMN")
        return


# -- amounts: the decimal mark ------------------------------------------------

def _number_pattern(mark: str) -> re.Pattern[str]:
    """A number written with ``mark`` as decimal mark and the other one grouping thousands.

    A group leader never starts with 0 (nobody writes 0,123 for 123), so
    ``0,5`` and ``0,123`` can only be decimals.
    """
    d, g = re.escape(mark), re.escape("," if mark == "." else ".")
    return re.compile(rf"[+-]?(?:(?:[1-9]\d{{0,2}}(?:{g}\d{{3}})+|\d+)(?:{d}\d*)?|{d}\d+)"
                      r"(?:[eE][+-]?\d+)?")


_NUMBER = {mark: _number_pattern(mark) for mark in DECIMAL_MARKS}


def decimal_marks(text: str) -> frozenset[str]:
    """The decimal marks under which ``text`` is a number (empty: it is not one).

    ``12,50`` -> {","}; ``1.234,56`` -> {","}; ``12.50`` -> {"."};
    ``1,234`` -> {".", ","} (1234 or 1.234); ``1234`` -> {".", ","} (the same either way).
    """
    text = text.strip()
    return frozenset(mark for mark, rx in _NUMBER.items() if rx.fullmatch(text))


def parse_number(text: str, decimal: str | None) -> float:
    """A number from text written with the decimal mark ``decimal`` (None: not known).

    Raises ValueError with the reason when the text is no number under that
    mark, or, when the mark is not known, when it reads as two different
    numbers.
    """
    text = text.strip()
    marks = decimal_marks(text)
    if not marks:
        raise ValueError("not a number (digits with at most one decimal mark, such as 12.50, "
                         "12,50 or 1.234,56)")
    if decimal is None:
        if len(marks) > 1 and ("," in text or "." in text):
            sep = "," if "," in text else "."
            as_point = float(text.replace(",", "")) if sep == "," else float(text)
            as_comma = float(text.replace(".", "").replace(",", ".")) if sep == "," else \
                float(text.replace(".", ""))
            raise ValueError(f"ambiguous: {as_point:g} with a decimal point or {as_comma:g} "
                             "with a decimal comma, and no amount in the file tells which; "
                             "give --decimal . or --decimal ,")
        decimal = min(marks)  # one mark, or none in the text: both read the same
    elif decimal not in marks:
        raise ValueError(f"not a number with a {DECIMAL_MARKS[decimal]} (--decimal {decimal}); "
                         f"it is one with --decimal {next(iter(marks))}")
    group = "," if decimal == "." else "."
    return float(text.replace(group, "").replace(decimal, "."))


def detect_decimal(path: Path, kind: str, m: Mapping) -> str | None:
    """The one decimal mark every amount of the file fits, or None if both fit all.

    Raises MappingError naming a line of each when some amounts fit only a
    decimal comma and others only a decimal point: reading either way would
    corrupt part of the file.
    """
    columns = [m.columns.get(f, f) for f in FIELDS[kind] if f in _NUMBERS
               and f not in m.constants]
    if not columns:
        return None
    fits = frozenset(DECIMAL_MARKS)
    only: dict[str, tuple[int, str]] = {}
    for n, row, _ in _rows(path, m):
        if row is None:
            continue
        for col in columns:
            raw = row.get(col)
            if not isinstance(raw, str):
                continue
            marks = decimal_marks(raw)
            if not marks:
                continue  # not a number at all: that row is refused on its own
            if len(marks) == 1:
                only.setdefault(next(iter(marks)), (n, raw.strip()))
            fits &= marks
    if not fits:
        (ln, lv), (pn, pv) = only[","], only["."]
        raise MappingError(f"{path}: amounts are written both with a decimal comma (line {ln}: "
                           f"{lv!r}) and with a decimal point (line {pn}: {pv!r}); give "
                           "--decimal , or --decimal . and the rows that do not fit are "
                           "listed by line")
    return next(iter(fits)) if len(fits) == 1 else None


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
        return parse_number(text, m.decimal)
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
    if m.decimal is None:
        found = detect_decimal(source.path, source.kind, m)
        if found is not None:
            m = replace(m, decimal=found)
            report.decimal_detected = found
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
        if r.decimal_detected == ",":
            line += "; amounts read with a decimal comma (detected)"
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

