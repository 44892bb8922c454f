"""Applying released events to customer states, and judging the customers.

Events come here from the merge queue in event-time order; each is applied
to its customer's cached state (once: redeliveries and resent events are
recognised), the customer is re-assessed at the partition's clock, and an
alert is published as soon as one is due.  Timers that fall due between two
events run before the later one, so the sweep sees the same states in every
run.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from ..core.decoding import show
from ..core.policy import Policy
from ..core.records import ChurnAlert, Feedback, Purchase
from ..core.state import CustomerState, already_applied, apply_event, new_state, seen_event
from . import metrics
from .assess import Assessor
from .cache import StateCache
from .clock import DueIndex
from .deadletters import DeadLetters
from .eventtime import EventTime
from .partition_model import Models, purchase_cell
from .publisher import Publisher
from .timers import Timers
from .work import PartitionWork, Queued, Stats

log = logging.getLogger("churnwatch")


class Refusal(NamedTuple):
    """Why an event is dead-lettered instead of applied."""

    reason: str
    code: str


class Raised(NamedTuple):
    """An applied event's alert, to publish before the event is counted."""

    state: CustomerState
    alert: ChurnAlert
    now: float


class NeedsFit(NamedTuple):
    """An event whose partition's population fit is due before it is applied."""

    state: CustomerState
    now: float


class Applier:
    __slots__ = (
        "assess",
        "cache",
        "clock",
        "due",
        "kinds",
        "load",
        "models",
        "policy",
        "publish",
        "reject",
        "states",
        "stats",
        "timers",
    )

    def __init__(self, policy: Policy, kinds: dict[str, str], stats: Stats,
                 cache: StateCache, clock: EventTime, models: Models, due: DueIndex,
                 timers: Timers, assessor: Assessor, publisher: Publisher,
                 letters: DeadLetters) -> None:
        self.policy = policy
        self.kinds = kinds
        self.stats = stats
        self.cache = cache
        self.load = cache.load
        self.states = cache.states
        self.clock = clock
        self.models = models
        self.due = due
        self.timers = timers
        self.assess = assessor.assess
        self.publish = publisher.publish
        self.reject = letters.reject

    async def release(self, partition: int, work: PartitionWork) -> None:
        """Apply every queued event the merge order allows, timers in between."""
        backlog = self.clock.backlog
        offered = work.offered

        # Asked afresh for every event released: the consumer learns of new
        # messages while a release runs (its fetches run in a thread of their
        # own), and a topic that has fallen behind must stop the others at
        # once, or its events would come too late.
        def waiting(topic: str) -> bool:
            return backlog(topic, partition, offered.get(topic, -1))

        # An event waits for nothing unless it raises an alert, is refused, or
        # its partition's fit is due: it is folded synchronously, with no
        # coroutine of its own.
        heaps = self.due.heaps
        pop = work.queue.pop
        fold = self._fold
        applied: dict[str, int] = {}
        try:
            while (q := pop(waiting)) is not None:
                work.done += 1  # out of the queue: acknowledged at the next flush
                ts = q.decoded.ts
                heap = heaps.get(partition)
                if heap and heap[0][0] <= ts:
                    await self.timers.run_due(partition, work, ts)
                try:
                    outcome = fold(partition, work, q)
                    if isinstance(outcome, NeedsFit):
                        outcome = await self._fit_then_fold(partition, work, q, outcome)
                    if outcome is True:
                        applied[q.topic] = applied.get(q.topic, 0) + 1
                    elif outcome is False:
                        pass
                    elif isinstance(outcome, Refusal):
                        await self.reject(work, q.topic, partition, q.offset, q.key, q.value,
                                          outcome.reason, outcome.code)
                    else:
                        await self.publish(partition, work, outcome.state, outcome.alert,
                                           outcome.now, q.ingested)
                        self._applied(q)
                        applied[q.topic] = applied.get(q.topic, 0) + 1
                except Exception as exc:
                    await self._failed(partition, work, q, exc)
        finally:
            # Counted per release: one lock of the metric per topic, not per event.
            for topic, n in applied.items():
                metrics.child(metrics.EVENTS, topic).inc(n)

    async def _failed(self, partition: int, work: PartitionWork, q: Queued,
                      exc: Exception) -> None:
        # A bug must not stop the worker or silently drop the event: it goes
        # to dead-letters with the error, to be replayed once fixed.
        log.exception("processing failed", extra={"fields": {
            "topic": q.topic, "partition": partition, "offset": q.offset}})
        await self.reject(work, q.topic, partition, q.offset, q.key, q.value,
                          f"processing failed: {type(exc).__name__}: {exc}"[:2000],
                          "processing_failed")

    def _applied(self, q: Queued) -> None:
        """Count an applied event (its Prometheus count is the caller's)."""
        self.stats.events[self.kinds[q.topic]] += 1
        record = q.decoded.record
        if isinstance(record, Feedback):
            metrics.FEEDBACK.labels(record.outcome).inc()

    def _fold(self, partition: int, work: PartitionWork,
              q: Queued) -> bool | Refusal | Raised | NeedsFit:
        """Apply one event, up to what needs a wait.

        True: applied and counted (but for its Prometheus count); False:
        recognised as applied before; else the refusal to dead-letter, the
        alert to publish, after which the event is to be counted, or the fit
        to run first (then :meth:`_fit_then_fold`).
        """
        d = q.decoded
        record = d.record
        cid = record.customer_id
        state = self.load(cid)
        if state is not None:
            if 0 <= state.partition != partition:
                return self._mismatch(state, cid, partition)
            if already_applied(state, q.topic, q.offset):
                self.clock.advance(work, d.ts)
                self.stats.duplicates += 1
                metrics.child(metrics.DUPLICATES, q.topic).inc()
                return False
            if seen_event(state, record):
                self.stats.duplicate_events += 1
                metrics.child(metrics.DUPLICATE_EVENTS, q.topic).inc()
                return False
        late = self.clock.too_late(partition, work, d.ts)
        if late is not None:
            return Refusal(late, "too_late")
        if state is None:
            state = self.states[cid] = new_state(cid)
        now = self.clock.advance(work, d.ts)
        if self.policy.model.fit and self.models.refit_due(partition, now):
            return NeedsFit(state, now)
        return self._fold_rest(partition, work, q, state, now)

    async def _fit_then_fold(self, partition: int, work: PartitionWork, q: Queued,
                             pending: NeedsFit) -> bool | Refusal | Raised:
        state = pending.state
        await self.models.refit(partition, pending.now)
        # The fit runs in a thread: meanwhile a flush round may have let this
        # state go from the cache (it was written and unchanged), and an event
        # applied to a state the cache no longer holds would be lost with it.
        cid = state.customer_id
        if self.states.get(cid) is not state:
            self.states[cid] = state
        return self._fold_rest(partition, work, q, state, pending.now)

    def _fold_rest(self, partition: int, work: PartitionWork, q: Queued,
                   state: CustomerState, now: float) -> bool | Raised:
        d = q.decoded
        record = d.record
        if state.first_ts == 0.0:
            self.cache.customers += 1
            metrics.CUSTOMERS.set(self.cache.customers)
        is_purchase = isinstance(record, Purchase)
        counted = is_purchase and self.policy.model.fit
        if counted:
            cells = self.models.model(partition).cells
            before = purchase_cell(state)
            if before is not None:
                cells.remove(*before)
        apply_event(state, record, d.ts, topic=q.topic, partition=partition,
                    offset=q.offset, policy=self.policy)
        if counted:
            after = purchase_cell(state)
            assert after is not None
            cells.add(*after)
        alert = self.assess(partition, work, state, now,
                            purchase_at=d.ts if is_purchase else None,
                            reported=record.outcome if isinstance(record, Feedback) else None)
        if alert is not None:
            return Raised(state, alert, now)
        self.stats.events[self.kinds[q.topic]] += 1
        if isinstance(record, Feedback):
            metrics.FEEDBACK.labels(record.outcome).inc()
        return True

    @staticmethod
    def _mismatch(state: CustomerState, cid: str, partition: int) -> Refusal:
        # Keyed two ways (``C1`` and ``"C1"`` hash apart): offsets of two
        # partitions are not comparable, and applying it would split the
        # customer's history.  Refused, never skipped.
        return Refusal(
            f"customer {show(cid)}'s events arrive on partitions {state.partition} and "
            f"{partition}: key every event of a customer the same way (its "
            "customer_id, as a plain string)", "key_mismatch")
