"""Event-time clocks per partition, and the due-time index the timer sweep uses.

*Event time* drives every window and timer.  A partition's clock is the
earliest of its topics' latest event times (like a stream processor's
watermark: a topic that lags behind holds the clock back, so a customer whose
purchase is still queued on a slower topic is not called overdue).  A topic
that has been silent for ``idle_after`` wall seconds stops holding the clock
back.  When the whole partition is silent, the clock goes on at wall-clock
speed from the last event time, so silence is still detected in live
operation, while a fast replay of last year's events is judged by the events'
own time.

:class:`DueIndex` is a heap of (event time, customer) per partition: each
customer sits in it once, at the moment its state says the answer may change
(``state.due_ts``), so the sweep touches only customers that are due.  It is
derived data, rebuilt from the table after every rebalance.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass(slots=True)
class PartitionClock:
    idle_after: float = 10.0
    #: topic -> (latest event time, wall time it was seen)
    marks: dict[str, tuple[float, float]] = field(default_factory=dict)

    def observe(self, topic: str, event_ts: float, wall: float) -> None:
        prev = self.marks.get(topic)
        self.marks[topic] = (max(event_ts, prev[0]) if prev else event_ts, wall)

    def now(self, wall: float) -> float | None:
        if not self.marks:
            return None
        active = [ts for ts, seen in self.marks.values() if wall - seen <= self.idle_after]
        if active:
            return min(active)
        latest_ts = max(ts for ts, _ in self.marks.values())
        last_seen = max(seen for _, seen in self.marks.values())
        return latest_ts + max(0.0, wall - last_seen)


@dataclass(slots=True)
class DueIndex:
    heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)

    def schedule(self, partition: int, customer_id: str, due: float | None) -> None:
        if due is not None:
            heapq.heappush(self.heaps.setdefault(partition, []), (due, customer_id))

    def pop_due(self, partition: int, now: float) -> tuple[float, str] | None:
        heap = self.heaps.get(partition)
        if heap and heap[0][0] <= now:
            return heapq.heappop(heap)
        return None

    def size(self) -> int:
        return sum(len(h) for h in self.heaps.values())

    def clear(self) -> None:
        self.heaps.clear()
