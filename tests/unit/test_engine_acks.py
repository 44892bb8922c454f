"""The acknowledgement ledger: offset ranges per topic, never past a message not done.

The property test runs the ledger beside the simplest model that is right
by construction, one flag per message acknowledged in offset order, over
random sequences of messages taken (queued or refused at once), released
from the merge queue and flushed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.policy import Policy
from stream_app.engine.acks import AckLedger, acknowledge
from stream_app.engine.ordering import MergeQueue
from stream_app.engine.processing import Processor

from ..conftest import at
from .fakes import Outputs, handle

TOPICS = ("purchases", "contacts")


class PerMessage:
    """One flag per message; acknowledged at a cut while every one before it is done."""

    def __init__(self) -> None:
        self.turns: dict[str, deque[list[Any]]] = {}

    def take(self, topic: str, offset: int, done: bool) -> None:
        self.turns.setdefault(topic, deque()).append([offset, done])

    def release(self, topic: str, offset: int) -> None:
        for turn in self.turns[topic]:
            if turn[0] == offset:
                turn[1] = True

    def cut(self) -> set[tuple[str, int]]:
        acked = set()
        for topic, turns in self.turns.items():
            while turns and turns[0][1]:
                acked.add((topic, turns.popleft()[0]))
        return acked


operation = st.one_of(
    st.tuples(st.just("take"), st.sampled_from(TOPICS), st.integers(0, 3), st.booleans(),
              st.booleans()),
    st.tuples(st.just("release"), st.sampled_from(TOPICS)),
    st.tuples(st.just("cut")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=80))
def test_the_range_ledger_acknowledges_what_one_flag_per_message_would(
        ops: list[tuple[Any, ...]]) -> None:
    ledger, model = AckLedger(), PerMessage()
    queue: MergeQueue[int] = MergeQueue({t: i for i, t in enumerate(TOPICS)})
    taken: dict[str, list[int]] = {t: [] for t in TOPICS}
    own_acks = False
    acked: list[tuple[str, int]] = []
    for op in [*ops, ("cut",)]:
        if op[0] == "take":
            _, topic, gap, own, queued = op
            offset = (taken[topic][-1] + 1 if taken[topic] else 0) + gap
            taken[topic].append(offset)
            own_acks |= own
            ack = (lambda t=topic, o=offset: acked.append((t, o))) if own else None
            ledger.take(topic, offset, ack)
            model.take(topic, offset, done=not queued)
            if queued:
                queue.push(topic, 0.0, offset, offset)
        elif op[0] == "release":
            q = queue.queues.get(op[1])
            if q:  # each topic is a FIFO in the merge queue
                model.release(op[1], q.popleft()[1])
        else:
            acked.clear()
            calls: list[tuple[str, int, int, int]] = []
            acknowledge(ledger.cut(queue.first_offset), 0,
                        lambda *call, calls=calls: calls.append(call))
            for topic, _, first, last in calls:
                # A range names only messages taken: an offset the consumer
                # skipped must hold the commit back, not be acknowledged.
                assert set(range(first, last + 1)) <= set(taken[topic]), (first, last)
                acked.extend((topic, o) for o in range(first, last + 1))
            assert len(acked) == len(set(acked)), "nothing acknowledged twice"
            assert set(acked) == model.cut()
            if not own_acks:
                # One range per run of consecutive offsets.
                runs = {(t, o) for t, o in acked if (t, o - 1) not in set(acked)}
                assert len(calls) == len(runs)
    # What is left waits for the same messages in both.
    left = {(topic, o) for topic, spans in ledger.spans.items() for span in spans
            for o in taken[topic] if span.first <= o <= span.last}
    assert left == {(topic, turn[0]) for topic, turns in model.turns.items() for turn in turns}


def test_ranges_run_on_across_fetches_and_stop_at_a_missing_offset() -> None:
    ledger = AckLedger()
    for offset in (3, 4, 5, 7, 8, 9):  # 6 never came: skipped, or not a message
        ledger.take("purchases", offset, None)
    assert len(ledger) == 2
    done = ledger.cut(lambda topic: 8)
    assert [(t, s.first, s.last) for t, s in done] == [("purchases", 3, 5), ("purchases", 7, 7)]
    assert [(t, s.first, s.last) for t, s in ledger.cut(lambda topic: None)] == [
        ("purchases", 8, 9)]
    assert ledger.cut(lambda topic: None) == []


def test_a_message_with_its_own_ack_keeps_it_and_breaks_the_run() -> None:
    ledger, calls = AckLedger(), []
    ledger.take("contacts", 0, None)
    ledger.take("contacts", 1, lambda: calls.append("own 1"))
    ledger.take("contacts", 2, None)
    acknowledge(ledger.cut(lambda topic: None), 4,
                lambda t, p, first, last: calls.append(f"{t}/{p} {first}-{last}"))
    assert calls == ["contacts/4 0-0", "own 1", "contacts/4 2-2"]


def _purchase(n: int, day: int) -> bytes:
    return orjson.dumps({"event_id": f"p{n}", "customer_id": "c1", "ts": at(day),
                         "amount": 5.0})


def test_the_processor_acknowledges_each_topic_partition_as_one_range_per_flush() -> None:
    """Messages handed in without acks of their own are acknowledged through
    ``acknowledge``, and not before every earlier message of the topic is done."""
    out, calls = Outputs(), []
    contacts_waiting = [True]
    proc = Processor({}, Policy(), out.send_alert, out.send_dead,
                     {t: t for t in ("purchases", "contacts")},
                     backlog=lambda topic, p, o: topic == "contacts" and contacts_waiting[0],
                     wall=lambda: 1.8e9, flush_seconds=3600,
                     acknowledge=lambda *a: calls.append(a))

    async def go() -> None:
        await proc.handle_many("purchases", 2, [
            (n, b"c1", _purchase(n, n), None, None) for n in range(4)])
        await handle(proc, "purchases", 2, 4, b"c1", b"not json")  # refused: done at once
        await proc.flush(2)
        assert calls == []  # offset 0 waits for the contacts topic in the merge
        contacts_waiting[0] = False
        await handle(proc, "purchases", 2, 5, b"c1", _purchase(5, 5))
        await proc.flush(2)

    asyncio.run(go())
    assert calls == [("purchases", 2, 0, 5)]
    assert proc.stats.events["purchases"] == 5 and len(out.dead) == 1
