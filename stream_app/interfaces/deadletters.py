"""``churnwatch dead-letters``: see what the worker refused, and send it again once fixed.

A dead letter says where its event came from (topic, partition, offset), why
it was refused, and keeps a copy of its bytes.  Two ways back, as an operator
works:

* the producer (or our policy) was wrong and is fixed: ``resend --reason
  CODE`` sends the originals again, byte for byte, to their source topic;
* the events themselves need fixing: ``export FILE`` writes them as JSON
  Lines (a JSON value as JSON, ready to edit), and ``resend FILE`` sends each
  line's ``value`` with its ``key`` to its ``topic``.

A dead letter may keep only a prefix of a large event (``value_truncated``).
Its original is then read from the source topic at its offset and checked
against ``value_sha256`` before it is sent; if retention has removed it, the
command says so rather than send a fragment.  Records from before those
fields existed are read with defaults, and their reason code is derived from
the reason text.

Re-sent events are processed like any other: those that still fail come back
as new dead letters.  Each carries a ``churnwatch-dead-letter`` header naming
the dead letter it came from.  A second resend of the same ones is dropped
by the worker as long as the customer's state still remembers the event's
id (its latest ``[history].event_ids_kept`` events).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

if TYPE_CHECKING:
    from kafka import KafkaConsumer, KafkaProducer

    from ..core.settings import Settings

#: The header a re-sent event carries: ``dead-letters:PARTITION:OFFSET``.
RESENT_HEADER = "churnwatch-dead-letter"
#: A poll that brings nothing for this long, once past the end offsets the
#: broker reported, ends a read.  Both are needed: some Kafka-compatible
#: brokers report end offsets short of the real end.
IDLE_MS = 1500


class DeadLetterError(RuntimeError):
    """The command cannot do what was asked; the message says what to do instead."""


# -- reading the records, with defaults for the fields older ones lack --------

#: Reason text (its start) -> code, for dead letters written before records
#: carried ``reason_code``.  The order matters: the first match wins.
_LEGACY_CODES = (
    ("empty message", "empty"),
    ("event is ", "too_large"),
    ("not valid UTF-8 JSON", "not_json"),
    ("expected a JSON object", "not_object"),
    ("message has no key", "no_key"),
    ("message key does not match", "key_mismatch"),
    ("too late", "too_late"),
    ("field ", "bad_field"),
    ("missing required field", "bad_field"),
)


def reason_code(record: dict[str, Any]) -> str:
    """The record's reason code, or one derived from its reason text."""
    code = record.get("reason_code")
    if code:
        return str(code)
    reason = str(record.get("reason", ""))
    return next((c for start, c in _LEGACY_CODES if reason.startswith(start)), "other")


def copy_bytes(record: dict[str, Any]) -> bytes:
    """The bytes the dead letter keeps (all of them, unless ``value_truncated``)."""
    value = record.get("value")
    encoding = record.get("value_encoding", "utf-8")
    if encoding == "json":  # an exported, edited file
        return orjson.dumps(value)
    if not isinstance(value, str):
        raise DeadLetterError(f"'value' must be a string with value_encoding {encoding!r}")
    if encoding == "base64":
        return base64.b64decode(value, validate=True)
    if encoding == "utf-8":
        return value.encode("utf-8")
    raise DeadLetterError(f"value_encoding {encoding!r}: expected utf-8, base64 or json")


@dataclass(frozen=True, slots=True)
class Entry:
    """One dead letter, and where it sits on the dead-letters topic."""

    record: dict[str, Any]
    #: The dead-letter message's key: the original event's key, byte for byte
    #: (the record's ``key`` field is text, lossy for a key that is not UTF-8).
    key: bytes | None
    partition: int
    offset: int

    @property
    def source(self) -> str:
        r = self.record
        return f"{r.get('topic')}/{r.get('partition')}@{r.get('offset')}"

    @property
    def truncated(self) -> bool:
        return bool(self.record.get("value_truncated", False))

    def as_json(self) -> dict[str, Any]:
        return {**self.record, "reason_code": reason_code(self.record),
                "dead_letter": {"partition": self.partition, "offset": self.offset}}


def _options() -> dict[str, Any]:
    """Wait for the broker only as long as the other tools (``churnwatch topics``) do."""
    from ..kafka import admin

    return {"bootstrap_timeout_ms": int(admin.TOOL_TIMEOUT * 1000)}


def _unreachable(s: Settings) -> Exception:
    from ..kafka import admin

    return admin.unreachable(s, admin.TOOL_TIMEOUT)


def _consumer(s: Settings) -> KafkaConsumer:
    from kafka.errors import KafkaError

    from ..kafka import clients

    try:
        return clients.consumer(s, **_options(), enable_auto_commit=False,
                                client_id=f"{s.app_id}-dead-letters")
    except KafkaError as exc:
        raise _unreachable(s) from exc


def _producer(s: Settings) -> KafkaProducer:
    from kafka.errors import KafkaError

    from ..kafka import clients

    try:
        return clients.producer(s, **_options(), acks="all",
                                client_id=f"{s.app_id}-dead-letters")
    except KafkaError as exc:
        raise _unreachable(s) from exc


def _read_all(consumer: KafkaConsumer, topic: str) -> Iterator[Any]:
    """Every message of ``topic`` from the beginning to its end, as of now."""
    from kafka import TopicPartition

    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise DeadLetterError(f"there is no topic {topic!r} on the broker: no worker has run "
                              "here yet, or CHURNWATCH_TOPIC_DEAD_LETTERS names another")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    while True:
        batch = consumer.poll(timeout_ms=IDLE_MS)
        for messages in batch.values():
            yield from messages
        if not batch and all(consumer.position(tp) >= ends[tp] for tp in tps):
            return


def read(s: Settings, reason: str | None = None, topic: str | None = None) -> list[Entry]:
    """The dead letters on the broker, oldest first per partition, optionally filtered."""
    consumer = _consumer(s)
    try:
        out = []
        for m in _read_all(consumer, s.topic_dead_letters):
            try:
                record = orjson.loads(m.value)
            except orjson.JSONDecodeError:
                continue  # not ours: nothing on this topic should be, but do not stop on it
            if not isinstance(record, dict):
                continue
            if reason and reason_code(record) != reason:
                continue
            if topic and record.get("topic") != topic:
                continue
            out.append(Entry(record, m.key, m.partition, m.offset))
        return out
    finally:
        consumer.close()


# -- the originals of truncated dead letters ----------------------------------

def _fetch(consumer: KafkaConsumer, topic: str, partition: int, offset: int
           ) -> tuple[bytes | None, bytes | None] | None:
    """(key, value) of the message at ``topic/partition@offset``, or None if it is gone."""
    from kafka import TopicPartition

    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, offset)
    deadline = time.monotonic() + IDLE_MS / 1000 * 2
    while time.monotonic() < deadline:
        for messages in consumer.poll(timeout_ms=IDLE_MS).values():
            for m in messages:
                if m.offset == offset:
                    return m.key, m.value
                if m.offset > offset:  # retention or compaction removed it
                    return None
    return None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event to send again, or why it cannot be."""

    topic: str
    key: bytes | None
    value: bytes | None
    origin: str
    refused: str | None = None


def originals(s: Settings, entries: Iterable[Entry]) -> list[Outgoing]:
    """The events the dead letters came from, as they were, checked by sha256."""
    out: list[Outgoing] = []
    consumer: KafkaConsumer | None = None
    try:
        for e in entries:
            r = e.record
            origin = f"{s.topic_dead_letters}:{e.partition}:{e.offset}"
            sha = r.get("value_sha256")
            if not e.truncated:
                value = copy_bytes(r)
                if sha and hashlib.sha256(value).hexdigest() != sha:
                    out.append(Outgoing(r["topic"], e.key, None, origin,
                                        f"{e.source}: the dead letter's copy does not match "
                                        "its value_sha256; not sent"))
                    continue
                out.append(Outgoing(r["topic"], e.key, value, origin))
                continue
            consumer = consumer or _consumer(s)
            got = _fetch(consumer, str(r["topic"]), int(r["partition"]), int(r["offset"]))
            copy = copy_bytes(r)
            kept = len(copy)
            if got is None:
                out.append(Outgoing(r["topic"], e.key, None, origin, (
                    f"{e.source}: the original is no longer on the broker (retention removed "
                    f"it, or the topic was recreated) and the dead letter keeps only the "
                    f"first {kept:,} of its {r.get('value_size', 'many')} bytes; send a "
                    "fixed copy from your own records")))
            elif (hashlib.sha256(got[1] or b"").hexdigest() != sha if sha
                  else not (got[1] or b"").startswith(copy)):  # no checksum: the prefix
                out.append(Outgoing(r["topic"], e.key, None, origin, (
                    f"{e.source}: the message there is not the one dead-lettered (its sha256 "
                    "differs: was the topic recreated?); not sent")))
            else:
                out.append(Outgoing(r["topic"], got[0], got[1], origin))
        return out
    finally:
        if consumer is not None:
            consumer.close()


# -- export, the edited file, sending ------------------------------------------

def export_line(entry: Entry, original: Outgoing) -> dict[str, Any]:
    """One line of an export: the dead letter with its whole value, ready to edit.

    A value that is a JSON document is written as JSON (``value_encoding``
    ``json``), so fixing a field is editing it, not un-escaping a string.
    """
    line = entry.as_json()
    if original.refused is None and original.value is not None:
        raw = original.value
        line.update(value_truncated=False, value_size=len(raw),
                    value_sha256=hashlib.sha256(raw).hexdigest())
        try:
            line.update(value=orjson.loads(raw), value_encoding="json")
        except orjson.JSONDecodeError:
            try:
                line.update(value=raw.decode("utf-8"), value_encoding="utf-8")
            except UnicodeDecodeError:
                line.update(value=base64.b64encode(raw).decode("ascii"),
                            value_encoding="base64")
    elif original.refused:
        line["not_resendable"] = original.refused
    return line


def from_file(path: Path) -> list[Outgoing]:
    """The events in an (edited) export: each line's value with its key to its topic."""
    out: list[Outgoing] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeadLetterError(f"{path}: cannot read it ({exc.strerror})") from None
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DeadLetterError(f"{where}: not a JSON line ({exc})") from None
        if not isinstance(line, dict) or not isinstance(line.get("topic"), str):
            raise DeadLetterError(f"{where}: expected an object with 'topic', 'key' and "
                                  "'value' (as churnwatch dead-letters export writes)")
        key = line.get("key")
        if key is not None and not isinstance(key, str):
            raise DeadLetterError(f"{where}: 'key' must be a string or null")
        dl = line.get("dead_letter") or {}
        origin = f"file:{path.name}:{n}" + (
            f" (dead letter {dl.get('partition')}:{dl.get('offset')})" if dl else "")
        if line.get("value_truncated"):
            out.append(Outgoing(line["topic"], None, None, origin, (
                f"{where}: holds only the start of the event (value_truncated); "
                + str(line.get("not_resendable", "replace the value with the whole event "
                                                 "and set value_truncated to false")))))
            continue
        try:
            value = copy_bytes(line)
        except (DeadLetterError, ValueError) as exc:
            raise DeadLetterError(f"{where}: {exc}") from None
        out.append(Outgoing(line["topic"], key.encode("utf-8") if key is not None else None,
                            value, origin))
    return out


def send(s: Settings, events: Sequence[Outgoing]) -> Counter[str]:
    """Send the events (none refused); waits for the broker to take each. Topic -> count."""
    # Dead letters come from the input topics only; any other name is a typo,
    # on which the producer would wait a minute for the topic to appear.
    for topic in sorted({e.topic for e in events} - set(s.input_topics)):
        raise DeadLetterError(f"topic {topic!r} is not one of churnwatch's input topics "
                              f"({', '.join(s.input_topics)}); fix the entries naming it")
    producer = _producer(s)
    try:
        futures = [(e, producer.send(e.topic, key=e.key, value=e.value,
                                     headers=[(RESENT_HEADER, e.origin.encode())]))
                   for e in events]
        sent: Counter[str] = Counter()
        for e, fut in futures:
            fut.get(timeout=60)
            sent[e.topic] += 1
        return sent
    finally:
        producer.close()


# -- the command -----------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dl = sub.add_parser(
        "dead-letters", help="list the events the worker refused, and send them again",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read the dead-letters topic on CHURNWATCH_BROKER_URL: each refused "
        "event's source\n(topic/partition@offset), reason code, reason and key.  Send them "
        "back to their\nsource topic once fixed: as they were (after fixing the producer or "
        "the policy),\nor edited (export, edit, resend FILE).",
        epilog="examples:\n"
        "  churnwatch dead-letters list --reason bad_field\n"
        "  churnwatch dead-letters resend --reason too_late --dry-run\n"
        "  churnwatch dead-letters export fix.jsonl --topic purchases\n"
        "  $EDITOR fix.jsonl && churnwatch dead-letters resend fix.jsonl")
    actions = dl.add_subparsers(dest="dl_command", metavar="ACTION", required=True)

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reason", metavar="CODE",
                       help="only this reason code (e.g. not_json, bad_field, too_late)")
        p.add_argument("--topic", metavar="TOPIC", help="only events from this topic")

    ls = actions.add_parser("list", help="the dead letters, with source, reason code and key")
    filters(ls)
    ls.add_argument("--json", action="store_true",
                    help="as a JSON array of the records (with reason_code and where each "
                    "dead letter sits)")
    ex = actions.add_parser("export", help="write the dead letters as JSON Lines to edit",
                            description="Write the dead letters to FILE, one JSON object a "
                            "line, each with its whole original value (fetched from the "
                            "source topic when the dead letter keeps only a prefix); a JSON "
                            "value is written as JSON.  Edit 'value' or 'key', delete the "
                            "lines not to send, then: churnwatch dead-letters resend FILE.")
    ex.add_argument("file", metavar="FILE")
    filters(ex)
    rs = actions.add_parser("resend", help="send events again to their source topic",
                            description="With FILE: send each line's value with its key to "
                            "its topic (an edited export).  With --reason and/or --topic: "
                            "send the matching dead letters' original events as they were, "
                            "checked by their sha256.  A second copy of an event is dropped "
                            "while the customer's state remembers its id (the latest 32 "
                            "events).")
    rs.add_argument("file", metavar="FILE", nargs="?", help="an (edited) export")
    filters(rs)
    rs.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")


def run(args: argparse.Namespace, s: Settings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    def fail(message: str, code: int = 1) -> int:
        print(f"churnwatch dead-letters: {message}", file=sys.stderr)
        return code

    try:
        if args.dl_command == "resend" and args.file:
            if args.reason or args.topic:
                return fail("give FILE or --reason/--topic, not both", 2)
            return _resend(s, from_file(Path(args.file)), args.dry_run, out, fail)
        if args.dl_command == "resend" and not (args.reason or args.topic):
            return fail("give FILE (an edited export), or --reason CODE and/or --topic TOPIC "
                        "to send the originals as they were", 2)
        entries = read(s, args.reason, args.topic)
        if not entries and (args.reason or args.topic):
            present = Counter(reason_code(e.record) for e in read(s))
            what = " and ".join(f"{k} {v!r}" for k, v in
                                (("reason", args.reason), ("topic", args.topic)) if v)
            return fail(f"no dead letters with {what}; present: "
                        + (", ".join(f"{c} ({n})" for c, n in present.most_common()) or
                           "none"), 1)
        if args.dl_command == "list":
            _list(entries, args.json, out)
            return 0
        if args.dl_command == "export":
            return _export(s, entries, Path(args.file), out)
        return _resend(s, originals(s, entries), args.dry_run, out, fail)
    except DeadLetterError as exc:
        return fail(str(exc))


def _plural(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _events(n: int) -> str:
    return _plural(n, "event")


def _list(entries: list[Entry], as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(orjson.dumps([e.as_json() for e in entries], option=orjson.OPT_INDENT_2)
                  .decode() + "\n")
        return
    if not entries:
        out.write("no dead letters\n")
        return
    width = max(len(e.source) for e in entries)
    codes = max(len(reason_code(e.record)) for e in entries)
    for e in entries:
        r = e.record
        size = f" [{r.get('value_size'):,} bytes, kept in part]" if e.truncated else ""
        out.write(f"{e.source:<{width}}  {reason_code(r):<{codes}}  key "
                  f"{r.get('key')!r}  {r.get('reason')}{size}\n")
    counts = Counter(reason_code(e.record) for e in entries)
    out.write(f"{_plural(len(entries), 'dead letter')}: "
              + ", ".join(f"{c} {n:,}" for c, n in counts.most_common()) + "\n")


def _export(s: Settings, entries: list[Entry], path: Path, out: TextIO) -> int:
    lines = [export_line(e, o) for e, o in zip(entries, originals(s, entries), strict=True)]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    gone = sum(1 for line in lines if "not_resendable" in line)
    out.write(f"wrote {_plural(len(lines), 'dead letter')} to {path}"
              + (f"; {gone:,} of them only in part (their originals are gone)" if gone else "")
              + f"; edit it, then: churnwatch dead-letters resend {path}\n")
    return 0


def _resend(s: Settings, events: list[Outgoing], dry_run: bool, out: TextIO,
            fail: Callable[[str], int]) -> int:
    refused = [e for e in events if e.refused]
    ready = [e for e in events if not e.refused]
    for e in refused:
        print(f"churnwatch dead-letters: not sent: {e.refused}", file=sys.stderr)
    by_topic = Counter(e.topic for e in ready)
    summary = ", ".join(f"{t} {n:,}" for t, n in sorted(by_topic.items())) or "nothing"
    if dry_run:
        out.write(f"dry run: would send {_events(len(ready))} ({summary}); nothing was sent\n")
    elif ready:
        sent = send(s, ready)
        out.write(f"sent {_events(sum(sent.values()))} again ({summary}) to "
                  f"{s.broker_url}; any that still fail come back as new dead letters\n")
    if refused:
        return fail(f"{len(refused):,} could not be sent (above)")
    if not ready:
        return fail("nothing to send")
    return 0
