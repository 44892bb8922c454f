"""What a worker does with each message: the glue between Kafka and the pure logic.

The agents stay thin loops that hand every message here, with a way to
acknowledge it.  Per partition the processor

1. decodes the message (bad input goes to dead-letters with the reason;
   :mod:`~stream_app.engine.intake`, :mod:`~stream_app.engine.deadletters`);
2. queues it in the partition's :class:`~stream_app.engine.ordering.MergeQueue`, so
   events are applied in event-time order across topics, the same in every
   run, whatever order the fetches delivered them in;
3. applies released events to cached customer states, runs the silence
   timers that fall due in between, and sends an alert as soon as one is due
   (:mod:`~stream_app.engine.apply`, :mod:`~stream_app.engine.timers`,
   :mod:`~stream_app.engine.publisher`);
4. every ``FLUSH_SECONDS`` (or ``FLUSH_EVENTS`` events in a partition)
   flushes all its partitions together, in the background while events go
   on, and acknowledges the events only once their effects are durable
   (:mod:`~stream_app.engine.checkpoint`, :mod:`~stream_app.engine.acks`).

After a crash, events since the last commit are applied again and may raise
the same alerts again; alert ids are deterministic, so those already on the
alerts topic are not published twice (:mod:`~stream_app.engine.resume`).
Everything else in memory (queues, the due-time index, the event-time clock)
is derived and rebuilt after a rebalance, so losing a worker loses nothing.

:class:`Processor` only coordinates: it owns the partitions' locks and work,
and hands each job to its part.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextlib import nullcontext
from typing import Any

from ..core.policy import Policy
from ..core.state import CustomerState
from . import metrics
from .acks import Ack, AckRange
from .apply import Applier
from .assess import Assessor
from .cache import CACHE_STATES, StateCache
from .checkpoint import (
    FLUSH_EVENTS,
    FLUSH_SECONDS,
    WRITE_CHUNK,
    Checkpointer,
    InPartition,
    Round,
    WriteStates,
)
from .clock import DueIndex
from .deadletters import (
    DEAD_LETTER_BACKOFF,
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_TRIES,
    DEAD_LETTER_VALUE_BYTES,
    DeadLetters,
    SendDeadLetter,
    dead_letter,
)
from .eventtime import Backlog, EventTime
from .intake import Incoming, Intake
from .locks import PartitionLocks
from .ordering import MergeQueue
from .partition_model import (
    MODEL_PREFIX,
    Models,
    PartitionModel,
    model_key,
    purchase_cell,
    read_fit,
    with_params,
)
from .publisher import Publisher, SendAlert
from .resume import (
    CHECKPOINT_PREFIX,
    Resume,
    Resumed,
    checkpoint_key,
    is_customer_key,
    nothing_published,
    rebuild,
    resume_partition,
)
from .timers import Timers
from .work import PartitionWork, Queued, Stats

__all__ = [
    "CACHE_STATES", "CHECKPOINT_PREFIX", "DEAD_LETTER_BACKOFF", "DEAD_LETTER_KEY_BYTES",
    "DEAD_LETTER_TRIES", "DEAD_LETTER_VALUE_BYTES", "FLUSH_EVENTS", "FLUSH_SECONDS",
    "MODEL_PREFIX", "WRITE_CHUNK", "Ack", "AckRange", "Backlog", "Incoming", "PartitionModel",
    "PartitionWork", "Processor", "Queued", "Resume", "Resumed", "Round", "SendAlert",
    "SendDeadLetter", "Stats", "WriteStates", "checkpoint_key", "dead_letter",
    "is_customer_key", "model_key", "nothing_published", "purchase_cell", "read_fit",
    "with_params",
]

log = logging.getLogger("churnwatch")


def _no_partition(partition: int) -> nullcontext[None]:
    return nullcontext()


def _forwarded(part: str, name: str) -> Any:
    """An attribute of one of the processor's parts, read and set through the processor."""
    def get(self: Processor) -> Any:
        return getattr(getattr(self, part), name)

    def put(self: Processor, value: Any) -> None:
        setattr(getattr(self, part), name, value)
    return property(get, put)


class Processor:
    """Takes a worker's messages, partition by partition, and coordinates the parts.

    ``acknowledge`` acknowledges the messages handed in without an ack of
    their own, as ranges of offsets per topic partition once they are
    durable; without it such messages need no acknowledgement.
    ``in_partition`` makes table writes land on a partition.
    """

    __slots__ = (
        "applier",
        "checkpoints",
        "clock",
        "due",
        "epoch",
        "intake",
        "kinds",
        "letters",
        "locks",
        "models",
        "parts",
        "policy",
        "publisher",
        "ranks",
        "resume",
        "stale",
        "states",
        "stats",
        "table",
        "timers",
        "wall",
    )

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        policy: Policy,
        send_alert: SendAlert,
        send_dead_letter: SendDeadLetter,
        kinds: dict[str, str],
        backlog: Backlog = lambda topic, partition, offset: False,
        wall: Callable[[], float] = time.time,
        resume: Resume = nothing_published,
        seal: Callable[[], Awaitable[None]] | None = None,
        write_states: WriteStates | None = None,
        flush_seconds: float = FLUSH_SECONDS,
        recent_alerts: int = 1000,
        *,
        in_partition: InPartition = _no_partition,
        acknowledge: AckRange | None = None,
    ) -> None:
        self.table = table
        self.policy = policy
        self.kinds = kinds
        #: Topic -> rank in the merge: ties in event time go to the lower rank.
        self.ranks = {topic: i for i, topic in enumerate(kinds)}
        self.wall = wall
        self.resume = resume
        self.parts: dict[int, PartitionWork] = {}
        self.locks = PartitionLocks()
        self.due = DueIndex()
        self.states = StateCache(table)
        #: Per partition, the purchase model (see :class:`PartitionModel`).
        self.models = Models(policy)
        self.stats = Stats()
        self.stale = True
        #: Counts resets: a message handed in before one is stale.
        self.epoch = 0
        self.clock = EventTime(policy, wall, backlog, kinds)
        self.letters = DeadLetters(send_dead_letter)
        self.publisher = Publisher(send_alert, self.stats, wall, recent_alerts)
        self.intake = Intake(kinds, self.stats, self.clock, self.letters,
                             ranges=acknowledge is not None)
        assessor = Assessor(self.due, self.models, wall)
        self.timers = Timers(self.due, self.states, assessor, self.publisher)
        self.applier = Applier(policy, kinds, self.stats, self.states, self.clock, self.models,
                               self.due, self.timers, assessor, self.publisher, self.letters)
        self.checkpoints = Checkpointer(table, self.parts, self.states, self.models, wall,
                                        write_states, seal, in_partition, acknowledge,
                                        flush_seconds)

    # -- what the parts keep, under the names the adapter and the tests use --

    @property
    def cache(self) -> dict[str, CustomerState]:
        return self.states.states

    @property
    def recent_alerts(self) -> Any:
        return self.publisher.recent

    #: Kept by the parts; settable here, as the adapter's tests swap them.
    send_alert = _forwarded("publisher", "send")
    send_dead_letter = _forwarded("letters", "send")
    seal = _forwarded("checkpoints", "seal")
    write_states = _forwarded("checkpoints", "write_states")
    flush_seconds = _forwarded("checkpoints", "flush_seconds")
    in_partition = _forwarded("checkpoints", "in_partition")

    def _assign_states(self, partition: int,
                       items: Sequence[tuple[bytes, bytes]]) -> Awaitable[Awaitable[None]]:
        """The default :data:`WriteStates`: one table assignment each."""
        return self.checkpoints.assign_states(partition, items)

    # -- state ---------------------------------------------------------------

    def load(self, customer_id: str) -> CustomerState | None:
        """The customer's latest state: in memory if changed since the last flush."""
        return self.states.load(customer_id)

    def policy_for(self, partition: int) -> Policy:
        """The policy a partition's customers are judged by (its fitted model's numbers)."""
        return self.models.policy_for(partition)

    def reset(self) -> None:
        """Forget everything in flight (a rebalance: Faust re-reads from the commits).

        Messages handed in before the reset and still waiting for their
        partition's lock are dropped when their turn comes: they belong to the
        old assignment, and Kafka delivers them again from the committed
        offsets.  Applying one would put it ahead of earlier messages of its
        partition, and mark those as already applied when they come.
        """
        self.epoch += 1
        self._forget()

    async def revoke(self) -> None:
        """:meth:`reset` once no partition is in the middle of a message."""
        async with self.locks.hold_all():
            try:
                await self.settled()
            except Exception:
                log.exception("the last flush failed: its events are delivered again")
            self.checkpoints.settling = None
            self.reset()

    def _forget(self) -> None:
        for work in self.parts.values():
            # The sends are made; only their offsets (for the checkpoint of
            # a flush that will not come) go unread.
            for pending in work.alert_offsets:
                if asyncio.iscoroutine(pending):
                    pending.close()
        self.parts.clear()
        self.states.clear()
        self.due.clear()
        self.models.clear()
        self.stale = True

    def rebuild(self) -> None:
        """Re-derive the due index and the purchase models' histograms from the table."""
        self._forget()
        self.states.customers = rebuild(self.table, self.due, self.models)
        self.stale = False

    async def _ready(self, partition: int) -> PartitionWork:
        if self.stale:
            self.rebuild()
        work = self.parts.get(partition)
        if work is None:
            work = self.parts[partition] = PartitionWork(
                MergeQueue(self.ranks), last_flush=self.wall())
        if work.published is None:
            await resume_partition(self.table, partition, work, self.resume, self.wall)
        return work

    # -- per message -----------------------------------------------------------

    async def handle_many(self, topic: str, partition: int,
                          messages: Sequence[Incoming]) -> None:
        """Take messages of one topic partition, in offset order.

        A message's own ``ack`` (or, for those without one, the processor's
        ``acknowledge``) is called once its effects are safely written; the
        caller must not acknowledge the messages itself.
        """
        await self.handle_fetch(partition, [(topic, messages)])

    async def handle_fetch(self, partition: int,
                           parts: Sequence[tuple[str, Sequence[Incoming]]]) -> None:
        """Take a fetch's messages of one partition: per topic, in offset order.

        As :meth:`handle_many` for each topic, but released once, after all
        of them are queued: a release between two topics of the same fetch
        could only stop at the later topic's messages, queued a moment on.
        """
        epoch = self.epoch
        async with self.locks.lock(partition):
            if epoch != self.epoch:
                self.stats.before_reset += sum(len(messages) for _, messages in parts)
                return
            work = self.parts.get(partition)
            if work is None or work.published is None or self.stale:
                work = await self._ready(partition)
            for topic, messages in parts:
                await self.intake.take(work, topic, partition, messages)
            # Released once per fetch, not per message: the merge order is the
            # same (a topic's later messages never overtake its head), and a
            # fetch ends in one release that stops, not one per message.
            await self.applier.release(partition, work)
        await self.flush_due()

    async def tick(self, partition: int) -> int:
        """The idle clock: release, sweep and flush a partition with no input."""
        async with self.locks.lock(partition):
            work = await self._ready(partition)
            await self.applier.release(partition, work)
            now = self.clock.now(partition, work, self.wall())
            done = 0 if now is None else await self.timers.run_due(partition, work, now)
            metrics.DUE.set(sum(len(h) for h in self.due.heaps.values()))
            await self.checkpoints.flush([partition], wait=False)
            return done

    # -- flush -----------------------------------------------------------------

    async def flush_due(self) -> None:
        """Flush every partition, together, once one of them is due.

        Together, so that the broker round trip that seals the changelog is
        paid once per round, not once per partition, and the partitions stay
        in step.
        """
        if self.checkpoints.due():
            await self._flush_together(sorted(self.parts), wait=False)

    async def _flush_together(self, partitions: list[int], wait: bool = True) -> None:
        async with self.locks.hold(partitions):
            await self.checkpoints.flush(partitions, wait=wait)

    async def flush_all(self) -> None:
        """Flush every partition (graceful shutdown: commit what is done)."""
        await self._flush_together(sorted(self.parts))
        log.info("flushed before stopping", extra={"fields": {
            "partitions": len(self.parts),
            "queued_for_redelivery": sum(len(w.queue) for w in self.parts.values())}})

    async def flush(self, partition: int) -> None:
        async with self.locks.lock(partition):
            await self.checkpoints.flush([partition])

    async def settled(self) -> None:
        """Wait until the last flush round is written and acknowledged; raise
        what it raised."""
        await self.checkpoints.settled()

    # -- what the adapter asks -----------------------------------------------------

    def lag(self, topic: str, partition: int, highwater: int) -> int | None:
        """Messages of ``topic`` in ``partition`` not handed in yet, or None if unknown."""
        work = self.parts.get(partition)
        if work is None or topic not in work.offered:
            return None
        return max(0, highwater - work.offered[topic] - 1)

    def clock_now(self, partition: int, wall: float) -> float | None:
        """The partition's event time, or None before its first event."""
        return self.clock.now(partition, self.parts.get(partition), wall)
