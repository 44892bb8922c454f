"""The timer sweep: customers whose answer may change with time alone.

A customer sits in the due index at the moment its state says the answer
may change (a silence growing long enough to alert on, say); the sweep
re-assesses those whose moment the partition's clock has passed.
"""

from __future__ import annotations

import logging

from .assess import Assessor
from .cache import StateCache
from .clock import DueIndex
from .publisher import Publisher
from .work import PartitionWork

log = logging.getLogger("churnwatch")


class Timers:
    """The timer sweep: customers whose answer may have changed with time alone."""

    __slots__ = ("assess", "due", "load", "publish")

    def __init__(self, due: DueIndex, cache: StateCache, assessor: Assessor,
                 publisher: Publisher) -> None:
        self.due = due
        self.load = cache.load
        self.assess = assessor.assess
        self.publish = publisher.publish

    async def run_due(self, partition: int, work: PartitionWork, now: float) -> int:
        """Re-assess every customer of ``partition`` whose due time has passed.

        Each is judged at its own due time, not at ``now``: the alert's event
        time is the moment the customer went quiet, however coarse the clock
        steps are, so replays and live runs agree.
        """
        done = 0
        while (item := self.due.pop_due(partition, now)) is not None:
            due, cid = item
            state = self.load(cid)
            if state is None or state.due_ts != due:
                continue  # superseded by a newer event
            try:
                alert = self.assess(partition, work, state, due)
                if alert is not None:
                    await self.publish(partition, work, state, alert, due, None)
            except Exception:
                log.exception("timer sweep failed; customer skipped",
                              extra={"fields": {"customer_id": cid}})
                continue
            done += 1
        return done
