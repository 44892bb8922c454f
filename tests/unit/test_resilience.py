"""No single message may stop a worker or corrupt what it knows.

Through the processor's full message path with a dict for the table: a dead
letter is always small enough to send, and one that still cannot be sent is
retried and then skipped, never a crash; one event dated decades ahead does
not move its partition's clock; the same event sent twice counts once; which
events are too late does not depend on how the input was cut into fetches;
and no input can add a metric series.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from collections.abc import Awaitable, Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from stream_app.core.alerting import iso
from stream_app.core.decoding import REASON_CODES, parse_ts
from stream_app.core.policy import Policy
from stream_app.core.records import ChurnAlert, DeadLetter
from stream_app.engine import deadletters
from stream_app.engine.processing import DEAD_LETTER_VALUE_BYTES, Processor, dead_letter
from stream_app.offline.synthetic import generate

from .fakes import Outputs

KINDS = {k: k for k in ("purchases", "contacts", "complaints", "feedback")}
#: A wall clock after every event of the synthetic streams (they end in 2026).
WALL = 1.8e9
#: What a broker with default settings accepts in one message.
BROKER_LIMIT = 1_000_000

LARGE_INPUTS = {
    "1 MB of text": orjson.dumps({"event_id": "big", "customer_id": "c1",
                                  "ts": "2025-03-01T10:00:00Z", "direction": "inbound",
                                  "channel": "phone", "text": "שלום " * 200_000}),
    "1 MB of control characters": b"\x01" * 1_000_000,
    "800 KB of invalid UTF-8": bytes(random.Random(1).choice(range(0x80, 0x100))
                                     for _ in range(800_000)),
}


def purchase(cid: str, ts: str, event_id: str, amount: float = 10.0) -> bytes:
    return orjson.dumps({"event_id": event_id, "customer_id": cid, "ts": ts,
                         "amount": amount})


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def run(proc: Processor, messages: list[tuple[str, int, int, bytes | None, bytes | None]],
        batch: int = 1) -> None:
    """Hand the messages in fetches of ``batch`` per topic partition, then flush."""
    async def go() -> None:
        pending: dict[tuple[str, int], list[Any]] = {}
        for topic, part, offset, key, value in messages:
            chunk = pending.setdefault((topic, part), [])
            chunk.append((offset, key, value, None, None))
            if len(chunk) >= batch:
                await proc.handle_many(topic, part, chunk)
                pending[(topic, part)] = []
        for (topic, part), chunk in pending.items():
            if chunk:
                await proc.handle_many(topic, part, chunk)
        for part in sorted(proc.parts):
            await proc.flush(part)

    asyncio.run(go())


@pytest.mark.parametrize("name", sorted(LARGE_INPUTS))
def test_a_dead_letter_is_always_small_enough_to_send(name: str) -> None:
    raw = LARGE_INPUTS[name]
    letter = dead_letter("contacts", 3, 41, b"c1", raw, "event is too large", "too_large")
    assert len(orjson.dumps(letter)) < BROKER_LIMIT / 2
    assert letter.value_truncated and letter.value_size == len(raw)
    assert letter.value_sha256 == hashlib.sha256(raw).hexdigest()
    assert (letter.topic, letter.partition, letter.offset) == ("contacts", 3, 41)
    # What is kept is the start of the original, in as much of it as the bound allows.
    kept = (base64.b64decode(letter.value) if letter.value_encoding == "base64"
            else letter.value.encode())
    assert raw.startswith(kept) and DEAD_LETTER_VALUE_BYTES - 4 < len(kept) <= \
        DEAD_LETTER_VALUE_BYTES


def test_a_small_message_is_kept_whole() -> None:
    raw = b"\xff\xfe not utf-8"
    letter = dead_letter("purchases", 0, 1, b"c1", raw, "not valid UTF-8", "not_utf8")
    assert not letter.value_truncated and base64.b64decode(letter.value) == raw
    assert letter.reason_code == "not_utf8"


class Refusing(Outputs):
    """A producer that refuses dead letters: those with a copy of the value
    (too large, as a broker would say), or every one (``always``)."""

    def __init__(self, always: bool = False, at_delivery: bool = False) -> None:
        super().__init__()
        self.always, self.at_delivery, self.tries = always, at_delivery, 0

    async def send_dead(self, key: bytes | None, letter: DeadLetter) -> Awaitable[Any]:
        self.tries += 1
        if self.always or letter.value:
            error = RuntimeError("MessageSizeTooLargeError")
            if not self.at_delivery:
                raise error
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(error)
            return failed
        return await super().send_dead(key, letter)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(deadletters, "DEAD_LETTER_BACKOFF", 0.0)
    yield


def _committed_after(out: Outputs, bad: bytes) -> tuple[Processor, list[int]]:
    acked: list[int] = []
    proc = Processor({}, Policy(), out.send_alert, out.send_dead, KINDS, wall=lambda: WALL)

    async def go() -> None:
        await proc.handle_many("contacts", 0, [
            (0, b"c1", bad, None, lambda: acked.append(0)),
            (1, b"c1", orjson.dumps({"event_id": "ok", "customer_id": "c1",
                                     "ts": "2025-03-01T11:00:00Z", "direction": "inbound",
                                     "channel": "phone"}), None, lambda: acked.append(1))])
        await proc.flush(0)  # a failed send would fail here, and ack nothing

    asyncio.run(go())
    return proc, acked


@pytest.mark.parametrize("at_delivery", [False, True])
def test_a_dead_letter_refused_by_the_broker_is_sent_without_its_copy(
        no_backoff: None, at_delivery: bool) -> None:
    out = Refusing(at_delivery=at_delivery)
    failures = metric("churnwatch_dead_letter_send_failures_total", topic="contacts")
    proc, acked = _committed_after(out, LARGE_INPUTS["1 MB of control characters"])
    assert acked == [0, 1] and proc.stats.events["contacts"] == 1
    [letter] = out.dead
    assert letter.offset == 0 and letter.value == "" and letter.value_truncated
    assert letter.value_size == 1_000_000 and letter.reason_code == "too_large"
    assert metric("churnwatch_dead_letter_send_failures_total", topic="contacts") == \
        failures + 1


def test_a_dead_letter_that_cannot_be_sent_at_all_is_skipped_not_a_crash(
        no_backoff: None) -> None:
    out = Refusing(always=True)
    unsent = metric("churnwatch_dead_letters_unsent_total", topic="contacts")
    _, acked = _committed_after(out, b"not json")
    assert acked == [0, 1], "the worker must go on and commit past it"
    assert out.dead == [] and out.tries == deadletters.DEAD_LETTER_TRIES
    assert metric("churnwatch_dead_letters_unsent_total", topic="contacts") == unsent + 1


def _stream(customers: int = 40, days: int = 400, seed: int = 3
            ) -> list[tuple[str, int, int, bytes | None, bytes | None]]:
    """A synthetic population as two partitions of Kafka would hold it."""
    pop = generate(customers=customers, days=days, seed=seed)
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for e in pop.events:
        part = int(e.customer_id[1:]) % 2
        off = offsets[(e.topic, part)] = offsets.get((e.topic, part), -1) + 1
        out.append((e.topic, part, off, e.customer_id.encode(), orjson.dumps(e.value)))
    return out


def _all_on_broker(msgs: list[tuple[str, int, int, bytes | None, bytes | None]]) -> Any:
    ends: dict[tuple[str, int], int] = {}
    for topic, part, off, _, _ in msgs:
        ends[(topic, part)] = max(ends.get((topic, part), 0), off + 1)
    return lambda topic, part, offset: offset + 1 < ends.get((topic, part), 0)


def _insert(msgs: list[tuple[str, int, int, bytes | None, bytes | None]], at: int, topic: str,
            part: int, key: bytes, value: bytes
            ) -> list[tuple[str, int, int, bytes | None, bytes | None]]:
    """``msgs`` with one message put on ``topic``/``part`` at position ``at``
    (the later offsets of that topic partition move up by one)."""
    out = list(msgs[:at])
    offset = 1 + max((o for t, p, o, _, _ in out if (t, p) == (topic, part)), default=-1)
    out.append((topic, part, offset, key, value))
    for t, p, o, k, v in msgs[at:]:
        out.append((t, p, o + 1 if (t, p) == (topic, part) else o, k, v))
    return out


def test_one_event_from_the_future_does_not_poison_its_partition() -> None:
    msgs = _stream()
    poisoned = _insert(msgs, len(msgs) // 3, "purchases", 0, b"C000000",
                       purchase("C000000", "2099-06-01T00:00:00Z", "poison"))
    out, clean = Outputs(), Outputs()
    for o, m in ((out, poisoned), (clean, msgs)):
        proc = Processor({}, Policy(), o.send_alert, o.send_dead, KINDS,
                         backlog=_all_on_broker(m), wall=lambda: WALL)
        run(proc, m, batch=50)
        if o is out:
            events = proc.stats.events
    [letter] = out.dead
    assert letter.reason_code == "from_future" and "from the future" in letter.reason
    assert sum(events.values()) == len(msgs), "every later event is applied"
    last = max(float(parse_ts(orjson.loads(v)["ts"])) for *_, v in msgs if v)
    assert all(float(parse_ts(a.ts)) <= last for a in out.alerts), "no alert past the data"
    assert _ids(out.alerts) == _ids(clean.alerts)


def _ids(alerts: list[ChurnAlert]) -> list[str]:
    return sorted(a.alert_id for a in alerts)


def test_an_event_sent_again_at_another_offset_counts_once() -> None:
    out = Outputs()
    proc = Processor({}, Policy(), out.send_alert, out.send_dead, KINDS, wall=lambda: WALL)
    dropped = metric("churnwatch_duplicate_events_total", topic="purchases")
    same = purchase("c1", "2025-03-01T10:00:00Z", "p-1")
    run(proc, [("purchases", 0, 0, b"c1", same),
               ("purchases", 0, 1, b"c1", purchase("c1", "2025-03-02T10:00:00Z", "p-2")),
               ("purchases", 0, 2, b"c1", same), ("purchases", 0, 3, b"c1", same)])
    state = proc.load("c1")
    assert state is not None and (state.purchases, state.spend) == (2, 20.0)
    assert proc.stats.duplicate_events == 2
    assert metric("churnwatch_duplicate_events_total", topic="purchases") == dropped + 2
    # Still recognised once the state has been written and read back.
    proc.cache.clear()
    run(proc, [("purchases", 0, 4, b"c1", same)])
    state = proc.load("c1")
    assert state is not None and state.purchases == 2 and proc.stats.duplicate_events == 3


def test_which_events_are_too_late_does_not_depend_on_the_fetch_sizes() -> None:
    msgs = _stream()
    rng = random.Random(5)
    # Events a month older than the stream around them, some among the very first.
    for at in [*sorted(rng.sample(range(len(msgs)), 60), reverse=True)[:-3], 5, 30, 90]:
        topic, part, _, key, value = msgs[at]
        assert value is not None and key is not None
        event = orjson.loads(value)
        then = float(parse_ts(event["ts"])) - 30 * 86400
        event.update(ts=iso(then), event_id=f"late-{at}")
        msgs = _insert(msgs, at, topic, part, key, orjson.dumps(event))
    outcomes = []
    for batch in (1, 7, 100, 5000):
        out = Outputs()
        proc = Processor({}, Policy(), out.send_alert, out.send_dead, KINDS,
                         backlog=_all_on_broker(msgs), wall=lambda: WALL)
        run(proc, msgs, batch=batch)
        late = sorted((d.topic, d.partition, d.offset) for d in out.dead)
        assert {d.reason_code for d in out.dead} <= {"too_late"}
        outcomes.append((late, _ids(out.alerts)))
    assert all(o == outcomes[0] for o in outcomes[1:])
    late_ids = {orjson.loads(v)["event_id"] for t, p, o, _, v in msgs
                if v and (t, p, o) in set(outcomes[0][0])}
    # Those whose month-older time falls within the data are all refused.
    assert late_ids and all(i.startswith("late-") for i in late_ids)
    assert len(late_ids) >= 50


def _dead_letter_series() -> int:
    return sum(1 for m in REGISTRY.collect() if m.name == "churnwatch_dead_letters"
               for s in m.samples if s.name == "churnwatch_dead_letters_total")


def test_random_input_cannot_add_metric_series() -> None:
    out = Outputs()
    proc = Processor({}, Policy(), out.send_alert, out.send_dead, KINDS, wall=lambda: WALL)
    rng = random.Random(7)

    def contact(n: int) -> bytes:
        word = "".join(rng.choice("abcdefghXYZ") for _ in range(8))
        return orjson.dumps({"event_id": f"x{n}", "customer_id": "c1",
                             "ts": "2025-03-01T10:00:00Z", "direction": word,
                             "channel": "phone"})

    run(proc, [("contacts", 0, n, b"c1", contact(n)) for n in range(50)])
    before = _dead_letter_series()
    run(proc, [("contacts", 0, n, b"c1", contact(n)) for n in range(50, 2050)])
    assert len(out.dead) == 2050
    assert _dead_letter_series() == before
    assert before <= len(KINDS) * len(REASON_CODES)


def test_a_customer_keyed_two_ways_is_refused_not_skipped() -> None:
    """``C1`` and ``"C1"`` hash to different partitions: the second partition's
    offsets say nothing about the first's, so its events must not be taken
    for redeliveries (silently skipped) nor split the customer's history."""
    out = Outputs()
    proc = Processor({}, Policy(), out.send_alert, out.send_dead, KINDS, wall=lambda: WALL)
    run(proc, [("purchases", 0, 5, b"c1", purchase("c1", "2025-03-01T10:00:00Z", "p-1")),
               ("purchases", 3, 0, b'"c1"', purchase("c1", "2025-03-02T10:00:00Z", "p-2"))])
    [letter] = out.dead
    assert (letter.partition, letter.offset, letter.reason_code) == (3, 0, "key_mismatch")
    assert "partitions 0 and 3" in letter.reason
    state = proc.load("c1")
    assert state is not None and (state.purchases, state.partition) == (1, 0)
