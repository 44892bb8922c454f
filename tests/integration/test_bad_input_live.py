"""Every message of a hostile stream is accounted for, and the worker stays up.

Over ten thousand malformed messages of many kinds, interleaved with ten
thousand valid events (and re-sent copies of some of them), go through a
running worker on a broker of its own.  Each kind's fate is known in advance:
dead-lettered, applied, or dropped as a duplicate.  Once the worker has
committed everything, the dead-letters topic names each dead-lettered message
by its topic, partition and offset, and the worker's counters give the rest:

    applied + dead-lettered + duplicates dropped == produced, exactly,

and per kind: every message that must be refused is on the dead-letters topic
once, with a reason and its kind's reason code, and no valid one is; a
message of a megabyte leaves a dead letter that is still sendable.  Random
values in a field the reason quotes must not add ``/metrics`` series.  The
worker's RSS is reported (``-s`` shows it; the test's properties carry it).

Messages are keyed by customer and the stream's event times advance in the
order they are produced, ending an hour before now, so no valid event is late
and none is from the future: what is refused is refused for its own sake.
"""

from __future__ import annotations

import random
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from stream_app.core.alerting import iso
from stream_app.core.decoding import REASON_CODES
from stream_app.core.settings import Settings
from stream_app.kafka.admin import create_topics
from stream_app.kafka.broker import LocalBroker, free_port
from stream_app.offline.harness import committed_total, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALID = 10_000
MALFORMED_AT_LEAST = 10_000
CUSTOMERS = 500
#: Distinct random values put in ``direction``: far more than any bound on series.
RANDOM_DIRECTIONS = 2_000
#: Valid events re-sent later with the same event id (a producer's retry).
RESENT = 300
MB = 1024 * 1024

APPLIED = "applied"
#: The kinds over a megabyte or near it (the dead letter cannot copy them whole).
LARGE = ("1 MB text field", "1 MB of control characters", "800 KB of invalid UTF-8")

#: A field value meaning "leave the field out".
_DROP = object()

Make = Callable[[random.Random, str, float], tuple[str, bytes | None, bytes | None]]


@dataclass(frozen=True)
class Kind:
    name: str
    #: The reason code its dead letters must carry, or APPLIED.
    code: str
    count: int
    #: (rng, customer id, event time) -> (topic kind, key, value)
    make: Make


def _event(topic: str, cid: str, ts: float, rng: random.Random, /, **extra: Any) -> dict[str, Any]:
    """A valid event of ``topic`` for ``cid`` at ``ts``; ``extra`` overrides fields."""
    e: dict[str, Any] = {"event_id": f"e-{rng.getrandbits(64):016x}", "customer_id": cid,
                         "ts": iso(ts)}
    if topic == "purchases":
        e.update(amount=round(rng.uniform(5, 500), 2), currency="ILS",
                 channel=rng.choice(("store", "online", "app")))
    elif topic == "contacts":
        e.update(direction=rng.choice(("inbound", "outbound")),
                 channel=rng.choice(("phone", "email", "chat")),
                 outcome=rng.choice(("answered", "replied", "no_answer")),
                 text="Can I change the delivery address?")
    elif topic == "complaints":
        e.update(category=rng.choice(("delivery", "billing", "service_quality")),
                 severity=rng.randint(1, 5), text="My order arrived a week late")
    else:
        e.update(outcome=rng.choice(("contacted", "retained", "false_alarm")))
    e.update(extra)
    return {k: v for k, v in e.items() if v is not _DROP}


def _json(topic: str, **extra: Any) -> Make:
    """A kind built from a valid event of ``topic`` with some fields changed."""
    def make(rng: random.Random, cid: str, ts: float) -> tuple[str, bytes | None, bytes | None]:
        return topic, cid.encode(), orjson.dumps(_event(topic, cid, ts, rng, **extra))
    return make


def _raw(topic: str, value: Callable[[random.Random, str, float], bytes | None],
         key: Callable[[str], bytes | None] = lambda cid: cid.encode()) -> Make:
    def make(rng: random.Random, cid: str, ts: float) -> tuple[str, bytes | None, bytes | None]:
        return topic, key(cid), value(rng, cid, ts)
    return make


def _valid_bytes(topic: str, rng: random.Random, cid: str, ts: float, /,
                 **extra: Any) -> bytes:
    return orjson.dumps(_event(topic, cid, ts, rng, **extra))


def _nested(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


def _random_direction(rng: random.Random, cid: str, ts: float
                      ) -> tuple[str, bytes | None, bytes | None]:
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                   for _ in range(10))
    return "contacts", cid.encode(), _valid_bytes("contacts", rng, cid, ts, direction=word)


def _not_json(rng: random.Random, cid: str, ts: float) -> bytes:
    return rng.choice((b"hello", b"{not json", b"{'single': 'quotes'}", b"<xml/>",
                       b'{"event_id": "x",}', b"customer_id=C1;amount=3"))


KINDS: tuple[Kind, ...] = (
    # -- refused: not an event at all
    Kind("not JSON", "not_json", 800, _raw("purchases", _not_json)),
    Kind("invalid UTF-8", "not_utf8", 600, _raw("contacts", lambda r, c, t: _valid_bytes(
        "contacts", r, c, t, text="cafe").replace(b"cafe", b"caf\xe9"))),
    Kind("a JSON array", "not_object", 400, _raw("purchases", lambda r, c, t: b"[1, 2, 3]")),
    Kind("JSON null", "not_object", 300, _raw("complaints", lambda r, c, t: b"null")),
    Kind("a JSON string", "not_object", 200, _raw("purchases", lambda r, c, t: b'"just text"')),
    Kind("NaN amount", "not_json", 300, _raw("purchases", lambda r, c, t: _valid_bytes(
        "purchases", r, c, t, amount=1.5).replace(b'"amount":1.5', b'"amount":NaN'))),
    Kind("Infinity amount", "not_json", 300, _raw("purchases", lambda r, c, t: _valid_bytes(
        "purchases", r, c, t, amount=1.5).replace(b'"amount":1.5', b'"amount":Infinity'))),
    Kind("an empty value", "empty", 200, _raw("contacts", lambda r, c, t: b"")),
    Kind("no value (tombstone)", "empty", 200, _raw("complaints", lambda r, c, t: None)),
    Kind("deep nesting past the parser's limit", "not_json", 100, _raw(
        "purchases", lambda r, c, t: b"[" * 20_000 + b"]" * 20_000)),
    Kind("Schema Registry framing, binary (Avro-like) payload", "schema_registry", 200, _raw(
        "purchases", lambda r, c, t: b"\x00" + (8).to_bytes(4, "big") + b"\x02\x0a"
        + c.encode() + bytes([0x8f, 0xff, 0x01]))),
    # -- refused: an event with a bad field
    Kind("amount as a string", "bad_field", 400, _json("purchases", amount="12.50")),
    Kind("severity as a string", "bad_field", 300, _json("complaints", severity="high")),
    Kind("customer_id as a number", "bad_field", 200, _raw(
        "purchases", lambda r, c, t: orjson.dumps(
            {**_event("purchases", c, t, r), "customer_id": 12345}))),
    Kind("ts as a number", "bad_ts", 200, _json("contacts", ts=1_764_000_000)),
    Kind("tags not a list", "bad_field", 200, _json("contacts", tags="vip")),
    Kind("resolved as a string", "bad_field", 200, _json("complaints", resolved="yes")),
    Kind("missing event_id", "missing_field", 300, _json("purchases", event_id=_DROP)),
    Kind("null required field", "missing_field", 200, _json("complaints", category=None)),
    Kind("negative amount", "bad_field", 400, _json("purchases", amount=-25.0)),
    Kind("huge amount", "bad_field", 300, _json("purchases", amount=1e300)),
    Kind("huge compensation", "bad_field", 200, _json("complaints", compensation_requested=1e15)),
    Kind("ts without an offset", "bad_ts", 400, _raw("purchases", lambda r, c, t: _valid_bytes(
        "purchases", r, c, t, ts=iso(t).rstrip("Z")))),
    Kind("ts in year 1", "bad_ts", 200, _json("contacts", ts="0001-01-01T00:00:00Z")),
    Kind("ts in year 9999", "bad_ts", 200, _json("purchases", ts="9999-12-31T23:59:59Z")),
    Kind("ts not a date", "bad_ts", 200, _json("complaints", ts="yesterday")),
    Kind("text over 8,000 characters", "bad_field", 100, _json("contacts", text="x" * 9000)),
    Kind("key is not the customer_id", "key_mismatch", 400, _raw(
        "purchases", lambda r, c, t: _valid_bytes("purchases", r, c, t),
        key=lambda cid: b"someone-else")),
    Kind("no key", "no_key", 300, _raw(
        "contacts", lambda r, c, t: _valid_bytes("contacts", r, c, t), key=lambda cid: None)),
    Kind("random direction values", "bad_field", RANDOM_DIRECTIONS, _random_direction),
    Kind("future-dated event (2099)", "from_future", 50,
         _json("purchases", ts="2099-06-01T00:00:00Z")),
    # -- refused: too large to be an event, and too large to copy whole
    Kind("1 MB text field", "too_large", 3, _json("contacts", text="y" * MB)),
    Kind("1 MB of control characters", "too_large", 3,
         _raw("contacts", lambda r, c, t: b"\x01" * MB)),
    Kind("800 KB of invalid UTF-8", "too_large", 3, _raw(
        "complaints", lambda r, c, t: bytes(r.choice((0xFF, 0xFE, 0xC3)) for _ in range(8))
        * (100 * 1024))),
    # -- valid, if unusual: applied
    Kind("unknown fields, nested deep", APPLIED, 200, _json("purchases", extra=_nested(200))),
    # A JSON-serialising producer quotes every key of its customers: they
    # are other customers than the plain-keyed ones (their partition differs).
    Kind("key as a JSON string", APPLIED, 200, _raw(
        "contacts", lambda r, c, t: _valid_bytes("contacts", r, "Q" + c[1:], t),
        key=lambda cid: b'"Q' + cid[1:].encode() + b'"')),
    Kind("Schema Registry framing (0x00, 4-byte id, JSON)", APPLIED, 300, _raw(
        "purchases", lambda r, c, t: b"\x00" + (7).to_bytes(4, "big")
        + _valid_bytes("purchases", r, c, t))),
    Kind("ts with a +02:00 offset", APPLIED, 200, _raw("complaints", lambda r, c, t: _valid_bytes(
        "complaints", r, c, t, ts=iso(t + 7200).replace("Z", "+02:00")))),
)




@dataclass
class Sent:
    """What was produced: each message's kind by (topic, partition, offset)."""

    kind_of: dict[tuple[str, int, int], str] = field(default_factory=dict)
    ends: dict[tuple[str, int], int] = field(default_factory=dict)
    valid: int = 0
    resent: int = 0


def stream(rng: random.Random, now: float) -> list[tuple[str, str, bytes | None, bytes | None]]:
    """(kind name, topic kind, key, value) in produce order; event times rise along it."""
    customers = [f"V{i:04d}" for i in range(CUSTOMERS)]
    labels: list[str] = ["valid"] * VALID + ["resent"] * RESENT
    for k in KINDS:
        labels += [k.name] * k.count
    rng.shuffle(labels)
    start, step = now - 2 * 86400.0, 86400.0 / len(labels)
    by_name = {k.name: k for k in KINDS}
    topics = ("purchases",) * 4 + ("contacts",) * 3 + ("complaints",) * 2 + ("feedback",)
    out: list[tuple[str, str, bytes | None, bytes | None]] = []
    sent_valid: list[tuple[str, bytes | None, bytes | None]] = []
    for i, label in enumerate(labels):
        ts, cid = start + i * step, rng.choice(customers)
        if label == "valid" or (label == "resent" and not sent_valid):
            topic = rng.choice(topics)
            msg = (topic, cid.encode(), _valid_bytes(topic, rng, cid, ts))
            sent_valid.append(msg)
            out.append(("valid", *msg))
        elif label == "resent":
            out.append(("resent", *rng.choice(sent_valid[-2000:])))
        else:
            out.append((label, *by_name[label].make(rng, cid, ts)))
    return out


def produce(s: Settings, messages: list[tuple[str, str, bytes | None, bytes | None]]) -> Sent:
    topic_of = {"purchases": s.topic_purchases, "contacts": s.topic_contacts,
                "complaints": s.topic_complaints, "feedback": s.topic_feedback}
    producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks=1, linger_ms=20,
                             max_request_size=4 * MB, max_in_flight_requests_per_connection=1)
    sent = Sent()
    futures = [(label, producer.send(topic_of[topic], key=key, value=value))
               for label, topic, key, value in messages]
    producer.flush()
    for label, fut in futures:
        md = fut.get(timeout=60)
        sent.kind_of[(md.topic, md.partition, md.offset)] = label
        sent.ends[(md.topic, md.partition)] = max(sent.ends.get((md.topic, md.partition), 0),
                                                  md.offset + 1)
    producer.close()
    sent.valid = sum(1 for label, *_ in messages if label == "valid")
    sent.resent = sum(1 for label, *_ in messages if label == "resent")
    return sent


def dead_letters(s: Settings) -> list[tuple[dict[str, Any], int]]:
    """Every record on the dead-letters topic, with its size in bytes."""
    consumer = KafkaConsumer(s.topic_dead_letters, bootstrap_servers=s.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             max_partition_fetch_bytes=8 * MB, fetch_max_bytes=64 * MB,
                             consumer_timeout_ms=5000)
    try:
        return [(orjson.loads(m.value), len(m.value)) for m in consumer]
    finally:
        consumer.close()


def metrics_page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def total(page: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def series(page: str, name: str) -> int:
    return sum(1 for line in page.splitlines() if line.startswith(name + "{"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_every_message_of_a_hostile_stream_is_accounted_for(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    rng = random.Random(14)
    messages = stream(rng, time.time() - 3600)
    malformed = sum(1 for m in messages if m[0] not in ("valid", "resent"))
    assert malformed >= MALFORMED_AT_LEAST and len(KINDS) >= 30
    with LocalBroker(log_path=tmp_path / "broker.log") as broker:
        s = Settings().with_overrides(
            broker_url=broker.url, broker_profile="local", store="rocksdb://",
            data_dir=str(tmp_path / "state"), web_port=free_port(), tick_seconds=1.0,
            app_id="churnwatch-bad-input", log_level="warning")
        create_topics(s)
        log = tmp_path / "worker.log"
        with running_worker(s, log) as worker:
            sent = produce(s, messages)
            produced = sum(sent.ends.values())
            assert produced == len(messages)
            deadline = time.monotonic() + 240
            while committed_total(s, sent.ends) < produced:
                assert worker.poll() is None, (
                    f"the worker exited with {worker.returncode}:\n"
                    + log.read_text(errors="replace")[-3000:])
                assert time.monotonic() < deadline, "the worker did not commit everything"
                time.sleep(0.5)
            page = metrics_page(s.web_port)
            rss = rss_mib(worker.pid)
            with urllib.request.urlopen(f"http://127.0.0.1:{s.web_port}/ready", timeout=10) as r:
                assert r.status == 200, "the worker is up but not ready"
            letters = dead_letters(s)
            assert worker.poll() is None, "the worker exited"

    applied = total(page, "churnwatch_events_total")
    dropped = total(page, "churnwatch_duplicate_events_total")
    redelivered = total(page, "churnwatch_duplicates_total")
    unsent = total(page, "churnwatch_dead_letters_unsent_total")
    dl_series = series(page, "churnwatch_dead_letters_total")
    report = (f"produced {produced:,} ({malformed:,} malformed of {len(KINDS)} kinds, "
              f"{sent.valid:,} valid, {sent.resent:,} re-sent); applied {applied:,.0f}, "
              f"dead-lettered {len(letters):,}, duplicates dropped {dropped:,.0f}, "
              f"skipped as redelivered {redelivered:,.0f}, dead letters unsent {unsent:,.0f}; "
              f"worker RSS {rss:,.0f} MiB; dead-letter series on /metrics {dl_series}")
    print(report)
    record_property("accounting", report)
    record_property("worker_rss_mib", round(rss))

    # Each message once: applied, dead-lettered or dropped as a duplicate.
    assert applied + len(letters) + dropped == produced, report
    # No restart and no rebalance: nothing was delivered twice or left unsent.
    assert redelivered == 0 and unsent == 0, report
    letter_at = Counter((d["topic"], d["partition"], d["offset"]) for d, _ in letters)
    twice = [at for at, n in letter_at.items() if n > 1]
    assert not twice, f"{len(twice)} messages dead-lettered more than once, e.g. {twice[:3]}"
    unknown = [at for at in letter_at if at not in sent.kind_of]
    assert not unknown, f"dead letters for messages never produced: {unknown[:3]}"

    # Per kind: every message refused, with its kind's reason code, or none is.
    produced_by_kind = Counter(sent.kind_of.values())
    codes: dict[str, Counter[str]] = {}
    example: dict[str, str] = {}
    for d, _ in letters:
        kind = sent.kind_of[(d["topic"], d["partition"], d["offset"])]
        codes.setdefault(kind, Counter())[d.get("reason_code", "")] += 1
        example.setdefault(kind, d["reason"])
        assert isinstance(d["reason"], str) and d["reason"].strip(), d
    for name in sorted(example):
        print(f"  {name}: {dict(codes[name])} {example[name][:120]}")
    wrong = {k.name: dict(codes.get(k.name, {}))
             for k in KINDS
             if codes.get(k.name, Counter()) != (Counter({k.code: produced_by_kind[k.name]})
                                                 if k.code != APPLIED else Counter())}
    wrong.update({name: dict(codes[name]) for name in ("valid", "resent") if name in codes})
    assert not wrong, f"kinds not handled as expected (reason codes seen): {wrong}"
    must_apply = sent.valid + sum(produced_by_kind[k.name] for k in KINDS if k.code == APPLIED)
    assert applied == must_apply and dropped == sent.resent, report

    # What is too large to be an event is too large to copy whole: each dead
    # letter says how large the original was, and stays under the 1 MiB a
    # default producer and broker accept, however its prefix escapes in JSON.
    big = [(d, size) for d, size in letters
           if sent.kind_of[(d["topic"], d["partition"], d["offset"])] in LARGE]
    print("  dead letters of the large kinds (original -> letter bytes): " + ", ".join(
        f"{sent.kind_of[(d['topic'], d['partition'], d['offset'])]} {d['value_size']:,} -> "
        f"{size:,}" for d, size in big))
    assert len(big) == sum(produced_by_kind[name] for name in LARGE) and all(
        d["value_truncated"] and d["value_size"] >= 800 * 1024 and size < MB
        for d, size in big), [(d["value_size"], size) for d, size in big]

    # Random input cannot add series: at most one per topic and reason code,
    # however many distinct values were sent.
    assert dl_series <= len(s.input_topics) * len(REASON_CODES) < RANDOM_DIRECTIONS, report
