"""Applying released events: once each, and a failure is a dead letter, not a stop."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from stream_app.core.policy import Policy
from stream_app.engine import apply as apply_module
from stream_app.engine.processing import Processor

from ..conftest import at, epoch
from .fakes import Outputs

KINDS = {"purchases": "purchases"}


def _purchase(n: int, day: int) -> bytes:
    return orjson.dumps({"event_id": f"p{n}", "customer_id": f"c{n % 2}", "ts": at(day),
                         "amount": 5.0})


def _processor(out: Outputs) -> Processor:
    return Processor({}, Policy(), out.send_alert, out.send_dead, KINDS, wall=lambda: 1.8e9)


def test_an_offset_applied_before_moves_the_clock_but_changes_nothing() -> None:
    out = Outputs()
    proc = _processor(out)

    async def go() -> None:
        await proc.handle_many("purchases", 0, [(0, b"c0", _purchase(0, 10), None, None)])
        work = proc.parts[0]
        # As after a crash: the state has offset 0 and it comes again, dated later.
        work.offered.clear()
        work.clock = None
        await proc.handle_many("purchases", 0, [(0, b"c0", _purchase(0, 10), None, None)])
        assert work.clock == epoch(10)

    asyncio.run(go())
    state = proc.load("c0")
    assert state is not None and state.purchases == 1
    assert proc.stats.duplicates == 1 and proc.stats.events["purchases"] == 1


def test_an_event_that_fails_to_apply_is_dead_lettered_and_the_next_one_applied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = apply_module.apply_event

    def failing(state: Any, record: Any, *args: Any, **kwargs: Any) -> None:
        if record.event_id == "p1":
            raise ValueError("a bug")
        real(state, record, *args, **kwargs)

    monkeypatch.setattr(apply_module, "apply_event", failing)
    out = Outputs()
    proc = _processor(out)
    asyncio.run(proc.handle_many("purchases", 0, [
        (n, f"c{n % 2}".encode(), _purchase(n, 10 + n), None, None) for n in range(3)]))
    [letter] = out.dead
    assert (letter.offset, letter.reason_code) == (1, "processing_failed")
    assert "ValueError: a bug" in letter.reason
    assert proc.stats.events["purchases"] == 2 and proc.parts[0].done == 3


def _two_topics(out: Outputs, backlog: Any) -> Processor:
    return Processor({}, Policy(), out.send_alert, out.send_dead,
                     {"purchases": "purchases", "contacts": "contacts"}, backlog=backlog,
                     wall=lambda: 1.8e9, flush_seconds=3600)


def test_a_topic_found_behind_in_the_middle_of_a_release_stops_it_at_once() -> None:
    """The consumer's fetches run in a thread of their own: between two events of
    one release it may learn of messages on another topic, and the next event
    must wait for them, although no await came in between."""
    asked: list[str] = []

    def backlog(topic: str, partition: int, offset: int) -> bool:
        asked.append(topic)
        return topic == "contacts" and asked.count("contacts") > 3

    out = Outputs()
    proc = _two_topics(out, backlog)
    asyncio.run(proc.handle_many("purchases", 0, [
        (n, b"c1", orjson.dumps({"event_id": f"p{n}", "customer_id": "c1", "ts": at(n),
                                 "amount": 5.0}), None, None) for n in range(20)]))
    assert proc.stats.events["purchases"] == 3
    assert len(proc.parts[0].queue) == 17


def test_a_topic_found_behind_after_a_dead_letter_stops_the_release_at_once() -> None:
    """Sending a dead letter may let other tasks run: the consumer may learn of
    new messages on another topic meanwhile, and the next event must wait for them."""
    contacts_waiting = [False]
    out = Outputs()
    proc = _two_topics(out, lambda topic, p, o: topic == "contacts" and contacts_waiting[0])
    send_dead = out.send_dead

    async def dead_and_behind(key: bytes | None, letter: Any) -> Any:
        contacts_waiting[0] = True  # the consumer fetched contacts meanwhile
        return await send_dead(key, letter)

    proc.send_dead_letter = dead_and_behind
    days = [400, 401, 1, 402, 403]  # the third is too late
    asyncio.run(proc.handle_many("purchases", 0, [
        (n, b"c1", orjson.dumps({"event_id": f"p{n}", "customer_id": "c1", "ts": at(day),
                                 "amount": 5.0}), None, None)
        for n, day in enumerate(days)]))
    assert [d.reason_code for d in out.dead] == ["too_late"]
    assert proc.stats.events["purchases"] == 2
    assert len(proc.parts[0].queue) == 2  # waiting for the contacts, not applied
