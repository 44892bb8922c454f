"""Flush rounds: states, then the seal, then the checkpoint, then the acknowledgements."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest

from stream_app.core.policy import Policy
from stream_app.core.state import new_state
from stream_app.engine.cache import StateCache
from stream_app.engine.checkpoint import FLUSH_EVENTS, WRITE_CHUNK, Checkpointer
from stream_app.engine.ordering import MergeQueue
from stream_app.engine.partition_model import Models
from stream_app.engine.resume import checkpoint_key
from stream_app.engine.work import PartitionWork


def _confirmed(value: Any) -> asyncio.Future[Any]:
    done = asyncio.get_running_loop().create_future()
    done.set_result(value)
    return done


def _setup(events: list[str], write_states: Any = None, seal: bool = True
           ) -> tuple[Checkpointer, PartitionWork, dict[bytes, bytes]]:
    class Recording(dict[bytes, bytes]):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            events.append("checkpoint" if key.startswith(b"\x00") else "state")
            super().__setitem__(key, value)

    async def sealed() -> None:
        events.append("seal")

    @contextmanager
    def in_partition(partition: int) -> Iterator[None]:
        events.append(f"in {partition}")
        yield

    table = Recording()
    cache = StateCache(table)
    work = PartitionWork(MergeQueue({"t": 0}), clock=42.0)
    for n in range(WRITE_CHUNK * 2 + 50):
        cache.states[f"c{n}"] = new_state(f"c{n}")
        work.dirty.add(f"c{n}")
    for offset in range(10):
        work.acks.take("t", offset, None)
    work.queue.push("t", 0.0, 7, None)  # offset 7 is not done yet
    checkpoints = Checkpointer(
        table, {2: work}, cache, Models(Policy()), lambda: 100.0, write_states,
        sealed if seal else None, in_partition,
        lambda topic, p, first, last: events.append(f"ack {topic}/{p} {first}-{last}"), 1.0)
    return checkpoints, work, table


def test_a_round_writes_in_chunks_seals_checkpoints_and_then_acknowledges() -> None:
    events: list[str] = []
    checkpoints, work, table = _setup(events)

    async def go() -> None:
        work.alert_offsets.append(_confirmed(5))
        await checkpoints.flush([2])

    asyncio.run(go())
    states = [e for e in events if e == "state"]
    assert len(states) == WRITE_CHUNK * 2 + 50
    assert events.count("in 2") == 4  # three chunks of states, one checkpoint
    rest = [e for e in events if e not in ("state", "in 2")]
    assert rest == ["seal", "checkpoint", "ack t/2 0-6"]
    assert orjson.loads(table[checkpoint_key(2)]) == {"alerts_offset": 6, "clock": 42.0}
    assert work.dirty == set() and work.alert_offsets == [] and work.last_flush == 100.0


def test_a_round_is_due_after_its_time_or_its_events() -> None:
    checkpoints, work, _ = _setup([])
    work.last_flush = 99.5
    assert not checkpoints.due()
    work.done = FLUSH_EVENTS
    assert checkpoints.due()
    work.done, work.last_flush = 0, 99.0
    assert checkpoints.due()


def test_a_round_that_failed_fails_the_next_flush_and_acknowledges_nothing() -> None:
    events: list[str] = []

    calls = []

    async def lost(partition: int, items: Any) -> Any:
        calls.append(partition)
        if len(calls) > 1:
            return _confirmed(None)
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(ConnectionError("broker went away"))  # the first chunk's
        return failed

    checkpoints, _, _ = _setup(events, write_states=lost, seal=False)

    async def go() -> None:
        await checkpoints.flush([2], wait=False)
        with pytest.raises(ConnectionError):
            await checkpoints.flush([2])

    asyncio.run(go())
    assert not [e for e in events if e.startswith("ack") or e == "checkpoint"]
