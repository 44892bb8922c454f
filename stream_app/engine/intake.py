"""Taking messages in: decode each, and queue it for the merge or dead-letter it."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.decoding import Rejected, decode
from . import metrics
from .acks import Ack
from .deadletters import DeadLetters
from .eventtime import EventTime
from .work import PartitionWork, Queued, Stats

#: One message as handed in: offset, key, value, broker timestamp (for
#: latency), and its own acknowledgement (None: none, or given as a range).
Incoming = tuple[int, bytes | None, bytes | None, float | None, Ack | None]


class Intake:
    __slots__ = ("clock", "kinds", "ranges", "reject", "stats")

    def __init__(self, kinds: dict[str, str], stats: Stats, clock: EventTime,
                 letters: DeadLetters, ranges: bool) -> None:
        self.kinds = kinds
        self.stats = stats
        self.clock = clock
        self.reject = letters.reject
        #: Whether messages without an ack of their own are acknowledged as ranges.
        self.ranges = ranges

    async def take(self, work: PartitionWork, topic: str, partition: int,
                   messages: Sequence[Incoming]) -> None:
        """Decode messages of one topic partition (in offset order) and queue them.

        An event dated after the clock's future limit is refused here, before
        it is queued (see :meth:`EventTime.future_limit`).  A queued event is
        acknowledged only once applied and flushed: while it waits, a crash
        must leave it to be delivered again.
        """
        future = self.clock.future_limit(work)
        kind = self.kinds[topic]
        offered = work.offered
        ledger = work.acks
        ranges = self.ranges
        push = work.queue.push
        for offset, key, value, ingested, ack in messages:
            if offset <= offered.get(topic, -1):
                # Delivered again in the same session (Faust may re-fetch a
                # partition's last message): the first copy is applied or
                # queued, and its acknowledgement covers this offset too.
                self.stats.duplicates += 1
                metrics.child(metrics.DUPLICATES, topic).inc()
                continue
            offered[topic] = offset
            if ack is not None or ranges:
                ledger.take(topic, offset, ack)
            result = decode(kind, key, value)
            if isinstance(result, Rejected):
                await self.reject(work, topic, partition, offset, key, value, result.reason,
                                  result.code)
                work.done += 1
            elif result.ts > future:
                await self.reject(work, topic, partition, offset, key, value,
                                  self.clock.from_future(work, result.ts), "from_future")
                work.done += 1
            else:
                push(topic, result.ts, offset,
                     Queued(topic, offset, result, ingested, key, value))
