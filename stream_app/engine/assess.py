"""Judging a customer: settling matured predictions, scoring, the next due time."""

from __future__ import annotations

from collections.abc import Callable

from ..core.alerting import assess
from ..core.outcomes import decile, settle
from ..core.records import ChurnAlert
from ..core.state import CustomerState
from . import metrics
from .clock import DueIndex
from .partition_model import Models
from .work import PartitionWork


class Assessor:
    """Settles matured predictions and re-scores a customer; keeps the due index."""

    __slots__ = ("due", "policy_for", "wall")

    def __init__(self, due: DueIndex, models: Models, wall: Callable[[], float]) -> None:
        self.due = due
        self.policy_for = models.policy_for
        self.wall = wall

    def assess(self, partition: int, work: PartitionWork, state: CustomerState,
               now: float, purchase_at: float | None = None,
               reported: str | None = None) -> ChurnAlert | None:
        """The alert to publish, if one is due.

        Synchronous, so that the common case (no alert) costs no coroutine.
        """
        if state.alerting.pending:
            for risk, outcome in settle(state, now, purchase_at, reported):
                metrics.ALERT_OUTCOMES.labels(outcome, decile(risk)).inc()
        before_due = state.due_ts
        alert = assess(state, now, self.policy_for(partition), emitted_at=self.wall())
        work.dirty.add(state.customer_id)
        if state.due_ts != before_due:
            self.due.schedule(partition, state.customer_id, state.due_ts)
        return alert
