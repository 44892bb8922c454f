"""Event-time clocks per partition, and the due-time index the timer sweep uses.

*Event time* drives every window and timer.  A partition's clock works like a
stream processor's watermark over its three input topics:

* while some topics still have a backlog (messages on the broker not yet
  processed), the clock is the earliest of those topics' latest event times,
  so a customer whose purchase is still queued on a slower topic is not
  called overdue because another topic ran ahead;
* once every topic is caught up, the clock is the latest event time seen,
  and from then on it runs at wall-clock speed: in live operation silence is
  noticed although no event arrives, while a fast replay of last year's
  events is judged by the events' own time.

:class:`DueIndex` is a heap of (event time, customer) per partition: each
customer sits in it at the moment its state says the answer may change
(``state.due_ts``), so the sweep touches only customers that are due.  It is
derived data, rebuilt from the table after every rebalance.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass(slots=True)
class PartitionClock:
    #: topic -> (latest event time, wall time seen, offset of that message)
    marks: dict[str, tuple[float, float, int]] = field(default_factory=dict)

    def observe(self, topic: str, event_ts: float, wall: float, offset: int) -> None:
        prev = self.marks.get(topic)
        self.marks[topic] = (max(event_ts, prev[0]) if prev else event_ts, wall, offset)

    def now(self, wall: float, behind: set[str]) -> float | None:
        """Event time now, given the topics that still have messages waiting."""
        if not self.marks:
            return None
        waiting = [ts for topic, (ts, _, _) in self.marks.items() if topic in behind]
        if waiting:
            return min(waiting)
        latest_ts = max(ts for ts, _, _ in self.marks.values())
        last_seen = max(seen for _, seen, _ in self.marks.values())
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

    def clear(self) -> None:
        self.heaps.clear()
