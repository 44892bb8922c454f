"""Intake: each message decoded once, queued for the merge or refused at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import orjson

from stream_app.core.policy import Policy
from stream_app.core.records import DeadLetter
from stream_app.engine.deadletters import DeadLetters
from stream_app.engine.eventtime import EventTime
from stream_app.engine.intake import Intake
from stream_app.engine.ordering import MergeQueue
from stream_app.engine.work import PartitionWork, Stats

from ..conftest import at

KINDS = {"purchases": "purchases"}
WALL = 1.8e9


def _purchase(n: int, ts: str) -> bytes:
    return orjson.dumps({"event_id": f"p{n}", "customer_id": "c1", "ts": ts, "amount": 1.0})


def _take(messages: list[Any], ranges: bool) -> tuple[PartitionWork, Stats, list[DeadLetter]]:
    dead: list[DeadLetter] = []

    async def send(key: bytes | None, letter: DeadLetter) -> Awaitable[Any]:
        dead.append(letter)
        return asyncio.sleep(0)

    stats = Stats()
    clock = EventTime(Policy(), lambda: WALL, lambda *a: False, KINDS)
    intake = Intake(KINDS, stats, clock, DeadLetters(send), ranges=ranges)
    work = PartitionWork(MergeQueue({"purchases": 0}))

    async def go() -> None:
        await intake.take(work, "purchases", 0, messages)
        await asyncio.gather(*work.other_sends)

    asyncio.run(go())
    return work, stats, dead


def test_good_events_are_queued_bad_and_future_ones_refused_redeliveries_dropped() -> None:
    work, stats, dead = _take([
        (0, b"c1", _purchase(0, at(10)), None, None),
        (1, b"c1", b"not json", None, None),
        (2, b"c1", _purchase(2, "2099-01-01T00:00:00Z"), None, None),
        (1, b"c1", _purchase(1, at(11)), None, None),  # fetched again: dropped
        (3, b"c1", _purchase(3, at(12)), None, None),
    ], ranges=True)
    assert len(work.queue) == 2 and work.offered == {"purchases": 3}
    assert [d.reason_code for d in dead] == ["not_json", "from_future"]
    assert work.done == 2 and stats.duplicates == 1
    assert [(s.first, s.last) for s in work.acks.spans["purchases"]] == [(0, 3)]


def test_without_range_acknowledgement_only_messages_with_their_own_ack_are_recorded() -> None:
    work, _, _ = _take([(0, b"c1", _purchase(0, at(10)), None, None),
                        (1, b"c1", _purchase(1, at(11)), None, lambda: None)], ranges=False)
    [span] = work.acks.spans["purchases"]
    assert (span.first, span.last) == (1, 1) and span.ack is not None
