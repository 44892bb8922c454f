"""Sends the alerts that fall due, except those a crash already published.

After a crash the events since the last commit are applied again and raise
the same alerts again, with the same ids: those found on the alerts topic
after the partition's checkpoint (``PartitionWork.published``) are not sent
a second time.  Nothing is paged twice, nothing is missed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

from ..core.records import ChurnAlert
from ..core.state import CustomerState
from . import metrics
from .work import PartitionWork, Stats

#: Hands an alert for ``partition`` to the producer; the awaitable it returns
#: resolves to the alert's offset on the alerts topic once the broker has it.
SendAlert = Callable[[ChurnAlert, int], Awaitable[Awaitable[int]]]


class Publisher:
    __slots__ = ("recent", "send", "stats", "wall")

    def __init__(self, send: SendAlert, stats: Stats, wall: Callable[[], float],
                 recent: int) -> None:
        self.send = send
        self.stats = stats
        self.wall = wall
        #: The latest alerts sent by this worker, newest last (for GET /alerts).
        self.recent: deque[ChurnAlert] = deque(maxlen=recent)

    async def publish(self, partition: int, work: PartitionWork, state: CustomerState,
                      alert: ChurnAlert, now: float, ingested: float | None) -> None:
        assert work.published is not None
        if alert.alert_id in work.published:
            # Published before a crash or a rebalance; the state now knows it.
            work.published.discard(alert.alert_id)
            self.stats.suppressed += 1
            metrics.SUPPRESSED.inc()
            return
        # The flush waits for the offset: the checkpoint follows it.
        work.alert_offsets.append(await self.send(alert, partition))
        self.recent.append(alert)
        for s in alert.signals:
            metrics.ALERTS.labels(s.code, alert.severity, alert.route).inc()
        metrics.EVENT_TO_ALERT.observe(max(0.0, now - state.last_ts))
        if ingested is not None:
            metrics.INGEST_TO_ALERT.observe(max(0.0, self.wall() - ingested))
