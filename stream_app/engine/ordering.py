"""The order a partition's events are applied in: a k-way merge of its topics.

A customer's purchases, contacts and complaints arrive on three topics that
Kafka delivers independently, so their interleaving on arrival differs from
run to run.  Applying them in arrival order would make the alerts depend on
fetch timing; a restarted worker would raise different alerts than the one
that crashed.  Instead each partition merges its topics like sorted files:
every topic keeps its own FIFO (Kafka order, so a customer's offsets on one
topic are always applied in increasing order and redelivery checks stay
simple), and the head with the earliest event time goes next — but only
while every topic that still has messages waiting on the broker has one
queued here, because the one missing could be earlier.  A topic that is
caught up does not hold the others back: in live operation it may stay
silent for days.

When every topic's data is already on the broker (a replay, a restart after
a crash) the result is exactly event-time order, the same in every run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class MergeQueue(Generic[T]):
    """Per-topic FIFOs of ``(event time, offset, item)``, released in merge order."""

    #: Topic name -> rank; ties in event time go to the lower rank.
    topics: dict[str, int]
    queues: dict[str, deque[tuple[float, int, T]]] = field(default_factory=dict)
    #: The topics in merge order: by rank, then name.
    order: list[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.order = sorted(self.topics, key=lambda t: (self.topics[t], t))

    def push(self, topic: str, ts: float, offset: int, item: T) -> None:
        q = self.queues.get(topic)
        if q is None:
            q = self.queues[topic] = deque()
        q.append((ts, offset, item))

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def pop(self, waiting: Callable[[str], bool]) -> T | None:
        """The next item in merge order, or None while a topic could still precede it.

        ``waiting(topic)`` says whether the broker holds messages on ``topic``
        that have not been pushed here yet.
        """
        # Runs once per event: the topics in rank order (then name, as the
        # merge breaks ties), so that the first of equal heads wins without
        # building a comparison key per topic.
        queues = self.queues
        best: deque[tuple[float, int, T]] | None = None
        best_ts = 0.0
        for topic in self.order:
            q = queues.get(topic)
            if not q:
                if waiting(topic):
                    return None
                continue
            ts = q[0][0]
            if best is None or ts < best_ts:
                best, best_ts = q, ts
        if best is None:
            return None
        return best.popleft()[2]

    def clear(self) -> None:
        self.queues.clear()

    def first_offset(self, topic: str) -> int | None:
        """The offset of ``topic``'s first queued item, or None if none is queued."""
        q = self.queues.get(topic)
        return q[0][1] if q else None
