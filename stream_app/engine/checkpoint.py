"""Flush rounds: make the applied events durable, then acknowledge them.

A round takes every partition due together: it waits for the broker to
confirm the alerts sent since the last round, writes each changed
customer's state once and waits until the broker has those writes, records
how far the alerts topic is known to be reflected in the states (the
*checkpoint*), and only then acknowledges the events, so that Faust commits
no offset whose effects could still be lost.

Why batching: Faust writes one changelog message per table write.  A state
written once per round instead of once per event costs a fraction of the
changelog traffic when customers are active, while at-least-once holds: a
crash loses only unacknowledged events, which Kafka delivers again.

Only the round's *start* holds the partitions' locks: what is to be written
(the changed customers), what is to be acknowledged (the done messages) and
the sends to wait for are set aside, which costs next to nothing.  Writing
(each state serialised into the store and the changelog batches, a chunk at
a time) and settling (waiting for the broker, sealing the changelog,
writing the checkpoints, acknowledging) go on in a task while events are
applied, so a flush does not stop the partitions for its whole length.

A state may change again before its chunk is written; the newer state is
written, which is harmless (a state ahead of the commits recognises the
events delivered again), and it is written again in the next round.  Rounds
run one at a time and in order, so a partition's changelog still ends with
its checkpoint alone, and a round that failed fails the next flush, as if it
had failed there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..core.state import CustomerState
from .acks import AckRange, Span, acknowledge
from .cache import StateCache
from .partition_model import Models, model_key
from .resume import checkpoint_key
from .work import PartitionWork

#: How often a partition's changed states are written and its events acked
#: (``CHURNWATCH_FLUSH_SECONDS``), or after how many events.
FLUSH_SECONDS = 1.0
FLUSH_EVENTS = 5000
#: States serialised and written between two looks at the event loop.
WRITE_CHUNK = 200

#: Writes one partition's changed states (key, value), in order; returns once
#: they are queued, with an awaitable that ends once they are durable.
WriteStates = Callable[[int, Sequence[tuple[bytes, bytes]]], Awaitable[Awaitable[None]]]
#: Makes table writes land on a partition (Faust picks a table write's
#: partition from the event in hand).
InPartition = Callable[[int], AbstractContextManager[Any]]


@dataclass(slots=True)
class Round:
    """One partition's part of a flush round, from its start (under the lock) to its settling."""

    partition: int
    alert_offsets: list[Awaitable[int]]
    other_sends: list[Awaitable[Any]]
    #: The customers changed since the last round (written as they are then).
    states: list[CustomerState]
    #: Done when the round was written: acknowledged once it has settled.
    acks: list[tuple[str, Span]] = field(default_factory=list)
    #: The partition's clock over the round's events (kept in the checkpoint).
    clock: float | None = None
    #: The purchase model's record, if it changed (written with the states).
    model: bytes | None = None


class Checkpointer:
    __slots__ = (
        "acknowledge",
        "cache",
        "flush_seconds",
        "in_partition",
        "models",
        "parts",
        "seal",
        "settling",
        "table",
        "wall",
        "write_states",
    )

    def __init__(self, table: MutableMapping[bytes, bytes], parts: dict[int, PartitionWork],
                 cache: StateCache, models: Models, wall: Callable[[], float],
                 write_states: WriteStates | None, seal: Callable[[], Awaitable[None]] | None,
                 in_partition: InPartition, acknowledge: AckRange | None,
                 flush_seconds: float) -> None:
        self.table = table
        self.parts = parts
        self.cache = cache
        self.models = models
        self.wall = wall
        #: How a round writes a partition's changed states (default: one
        #: table assignment each; the worker writes them in bulk).
        self.write_states: WriteStates = write_states or self.assign_states
        #: Set for brokers whose ListOffsets(latest) names the start of the
        #: last record batch (the embedded one): Faust's recovery then skips
        #: that batch.  A round waits for its states to be delivered and ends
        #: each written partition with the checkpoint alone in its batch, so
        #: all recovery can miss is a checkpoint, and a stale one only makes
        #: the next start read more of the alerts topic.
        self.seal = seal
        self.in_partition = in_partition
        #: Acknowledges the messages taken without an ack of their own, a range at a time.
        self.acknowledge = acknowledge
        self.flush_seconds = flush_seconds
        #: The last round still settling.
        self.settling: asyncio.Future[None] | None = None

    def due(self) -> bool:
        """Whether a partition has waited long enough, or done enough, for a round."""
        now = self.wall()
        seconds = self.flush_seconds
        # A loop, not any() over a generator: asked after every fetch.
        for w in self.parts.values():
            if w.done >= FLUSH_EVENTS or now - w.last_flush >= seconds:
                return True
        return False

    async def flush(self, partitions: list[int], wait: bool = True) -> None:
        """Start a round of the partitions (the caller holds their locks); with
        ``wait``, until it has settled."""
        await self.settled()
        rounds = self.start(partitions)
        self.settling = asyncio.ensure_future(self.finish(rounds))
        if wait:
            await self.settled()

    async def settled(self) -> None:
        """Wait until the last round is written and acknowledged; raise what it raised."""
        task = self.settling
        if task is not None:
            await asyncio.shield(task)

    def start(self, partitions: list[int]) -> list[Round]:
        wall = self.wall()
        rounds = []
        for partition in partitions:
            work = self.parts.get(partition)
            if work is None:
                continue
            work.last_flush = wall
            states = self.cache.states
            r = Round(partition, work.alert_offsets, work.other_sends,
                      [states[cid] for cid in work.dirty], clock=work.clock)
            pm = self.models.get(partition)
            if pm is not None and pm.dirty:
                r.model, pm.dirty = pm.record(), False
            work.alert_offsets, work.other_sends = [], []
            work.dirty.clear()
            # What is done now is in the states about to be written.
            r.acks = work.acks.cut(work.queue.first_offset)
            work.done = 0
            rounds.append(r)
        return rounds

    async def finish(self, rounds: list[Round]) -> None:
        delivered = []
        for r in rounds:
            for i in range(0, len(r.states), WRITE_CHUNK):
                with self.in_partition(r.partition):
                    delivered.append(await self.write_states(r.partition, [
                        (state.customer_id.encode(), state.to_bytes())
                        for state in r.states[i:i + WRITE_CHUNK]]))
                await asyncio.sleep(0)  # events go on between chunks
            if r.model is not None:
                # With the states, before the seal: recovery must not miss it.
                with self.in_partition(r.partition):
                    delivered.append(await self.write_states(
                        r.partition, [(model_key(r.partition), r.model)]))
        # Only now: a state evicted before it is in the store would be read
        # back stale.
        self.cache.trim(w.dirty for w in self.parts.values())
        for f in delivered:
            await f
        await self.settle(rounds)

    async def settle(self, rounds: list[Round]) -> None:
        for r in rounds:
            if r.alert_offsets:
                offsets = [await f for f in r.alert_offsets]
                work = self.parts.get(r.partition)
                if work is not None:
                    work.checkpoint = max(work.checkpoint, max(offsets) + 1)
            for f in r.other_sends:
                await f
        if self.seal is not None and any(r.states or r.model for r in rounds):
            # The changelog must not end in a batch of states: see ``seal``.
            await self.seal()
        for r in rounds:
            work = self.parts.get(r.partition)
            written = bool(r.states) or r.model is not None
            if work is not None and (r.alert_offsets or (self.seal is not None and written)
                                     or r.clock != work.saved_clock):
                with self.in_partition(r.partition):
                    self.table[checkpoint_key(r.partition)] = orjson.dumps(
                        {"alerts_offset": work.checkpoint, "clock": r.clock})
                work.saved_clock = r.clock
            acknowledge(r.acks, r.partition, self.acknowledge)

    async def assign_states(self, partition: int,
                            items: Sequence[tuple[bytes, bytes]]) -> Awaitable[None]:
        for key, raw in items:
            self.table[key] = raw
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        written.set_result(None)  # nothing to wait for: the states are in the table
        return written
