"""The due-time index the timer sweep uses.

*Event time* drives every window and timer.  Each partition's clock is the
time of the latest event it applied (see :mod:`stream_app.engine.processing`, which
releases events in event-time order through :mod:`stream_app.engine.ordering`);
once every topic is caught up it runs on at wall-clock speed, so silence is
noticed live although no event arrives.

:class:`DueIndex` is a heap of (event time, customer) per partition: each
customer sits in it at the moment its state says the answer may change
(``state.due_ts``), so the sweep touches only customers that are due.  It is
derived data, rebuilt from the table after every rebalance.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass(slots=True)
class DueIndex:
    heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)

    def schedule(self, partition: int, customer_id: str, due: float | None) -> None:
        if due is not None:
            heapq.heappush(self.heaps.setdefault(partition, []), (due, customer_id))

    def any_due(self, partition: int, now: float) -> bool:
        """Whether :meth:`pop_due` would return something (without popping)."""
        heap = self.heaps.get(partition)
        if not heap:
            return False
        return heap[0][0] <= now

    def pop_due(self, partition: int, now: float) -> tuple[float, str] | None:
        if self.any_due(partition, now):
            return heapq.heappop(self.heaps[partition])
        return None

    def clear(self) -> None:
        self.heaps.clear()
