"""What a worker does with each message: the glue between Kafka and the pure logic.

The agents stay thin loops that hand every message here.  The processor owns
the only in-memory, non-replicated pieces (event-time clocks and the due
index); both are derived and are rebuilt from the state table after a
rebalance, so losing a worker loses nothing.

Order of effects for each customer update (at-least-once, no lost alerts):
send the alert and wait for the broker's ack, *then* write the state.  A crash
in between re-processes the event from the last committed offset; the state
has not recorded it, so the same alert (same deterministic id) is sent again
and downstream de-duplicates it.  A crash after the state write re-delivers an
event the state has already applied; its offset is recognised and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field

import orjson

from . import metrics
from .alerting import assess, iso
from .clock import DueIndex, PartitionClock
from .decoding import Decoded, Rejected, decode
from .policy import Policy
from .records import ChurnAlert, DeadLetter, Feedback
from .state import DAY, CustomerState, already_applied, apply_event, new_state

log = logging.getLogger("churnwatch")

SendAlert = Callable[[ChurnAlert], Awaitable[None]]
SendDeadLetter = Callable[[bytes | None, DeadLetter], Awaitable[None]]
#: (topic, partition, offset just read) -> whether later messages are waiting.
Backlog = Callable[[str, int, int], bool]


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, reason: str) -> DeadLetter:
    """Keep the original bytes: as text when they are UTF-8, else base64."""
    raw = value or b""
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        import base64

        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    return DeadLetter(
        topic=topic, partition=partition, offset=offset, reason=reason,
        key=key.decode("utf-8", "replace") if key is not None else None,
        value=text, value_encoding=encoding, received_at=iso(time.time()),
    )


@dataclass
class Stats:
    """Per-processor counts (the Prometheus metrics are process-wide)."""

    events: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0


class Processor:
    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        policy: Policy,
        send_alert: SendAlert,
        send_dead_letter: SendDeadLetter,
        kinds: dict[str, str],
        backlog: Backlog = lambda topic, partition, offset: False,
        wall: Callable[[], float] = time.time,
        recent_alerts: int = 1000,
    ) -> None:
        self.table = table
        self.policy = policy
        self.send_alert = send_alert
        self.send_dead_letter = send_dead_letter
        self.kinds = kinds
        self.backlog = backlog
        self.wall = wall
        self.clocks: dict[int, PartitionClock] = {}
        self.due = DueIndex()
        self.stale = True
        self.locks: dict[int, asyncio.Lock] = {}
        self.stats = Stats()
        self.customers = 0
        self.ingested: float | None = None
        #: The latest alerts sent by this worker, newest last (for GET /alerts).
        self.recent_alerts: deque[ChurnAlert] = deque(maxlen=recent_alerts)

    # -- state table --------------------------------------------------------

    def load(self, customer_id: str) -> CustomerState | None:
        # One store lookup: Mapping.get() would ask the store twice (contains, get).
        try:
            raw = self.table[customer_id.encode()]
        except KeyError:
            return None
        return CustomerState.from_bytes(raw) if raw is not None else None

    def _lock(self, partition: int) -> asyncio.Lock:
        lock = self.locks.get(partition)
        if lock is None:
            lock = self.locks[partition] = asyncio.Lock()
        return lock

    def rebuild(self) -> None:
        """Re-derive clocks and the due index from the table (after a rebalance)."""
        self.due.clear()
        wall = self.wall()
        latest: dict[int, float] = {}
        count = 0
        for key, raw in list(self.table.items()):
            count += 1
            d = orjson.loads(raw)
            part, due, last = d["partition"], d["due_ts"], d["last_ts"]
            self.due.schedule(part, key.decode(), due)
            latest[part] = max(latest.get(part, 0.0), last)
        self.customers = count
        metrics.CUSTOMERS.set(count)
        for part, ts in latest.items():
            clock = self.clocks.setdefault(part, PartitionClock())
            if not clock.marks:
                clock.observe("(restored)", ts, wall, offset=-1)
        self.stale = False

    # -- per message ------------------------------------------------------

    async def handle(self, topic: str, partition: int, offset: int,
                     key: bytes | None, value: bytes | None,
                     ingested: float | None = None) -> None:
        """Apply one message; ``ingested`` is its broker timestamp (for latency)."""
        self.ingested = ingested
        kind = self.kinds[topic]
        result = decode(kind, key, value)
        if isinstance(result, Rejected):
            await self._reject(topic, partition, offset, key, value, result.reason)
            return
        if self.stale:
            self.rebuild()
        wall = self.wall()
        before = self.clock_now(partition, wall)
        allowed = self.policy.history.allowed_lateness_days * DAY
        if before is not None and result.ts < before - allowed:
            await self._reject(topic, partition, offset, key, value, (
                f"too late: event time {iso(result.ts)} is "
                f"{(before - result.ts) / DAY:.1f} days behind this partition's clock "
                f"{iso(before)}; the allowed lateness is "
                f"{self.policy.history.allowed_lateness_days:g} days"))
            return
        clock = self.clocks.setdefault(partition, PartitionClock())
        clock.observe(topic, result.ts, wall, offset)
        now = self.clock_now(partition, wall)
        try:
            async with self._lock(partition):
                await self._apply(topic, partition, offset, result, now)
        except Exception as exc:
            # A bug must not stop the worker or silently drop the event: it
            # goes to dead-letters with the error, to be replayed once fixed.
            log.exception("processing failed", extra={"fields": {
                "topic": topic, "partition": partition, "offset": offset}})
            await self._reject(topic, partition, offset, key, value,
                               f"processing failed: {type(exc).__name__}: {exc}")
            return
        self.stats.events[kind] += 1
        metrics.EVENTS.labels(topic).inc()
        if kind == "feedback" and isinstance(result.record, Feedback):
            metrics.FEEDBACK.labels(result.record.outcome).inc()
        if now is not None:
            await self.run_due(partition, now)

    async def _reject(self, topic: str, partition: int, offset: int, key: bytes | None,
                      value: bytes | None, reason: str) -> None:
        metrics.DEAD_LETTERS.labels(topic, metrics.reason_kind(reason)).inc()
        log.warning("dead-lettered", extra={"fields": {
            "topic": topic, "partition": partition, "offset": offset, "reason": reason}})
        await self.send_dead_letter(key, dead_letter(topic, partition, offset, key, value,
                                                     reason))

    async def _apply(self, topic: str, partition: int, offset: int, d: Decoded,
                     clock_now: float | None) -> None:
        cid = d.record.customer_id
        state = self.load(cid) or new_state(cid)
        if already_applied(state, topic, offset):
            self.stats.duplicates += 1
            metrics.DUPLICATES.labels(topic).inc()
            return
        if state.first_ts == 0.0:
            self.customers += 1
            metrics.CUSTOMERS.set(self.customers)
        before_due = state.due_ts
        apply_event(state, d.record, d.ts, topic=topic, partition=partition, offset=offset,
                    policy=self.policy)
        # Judge the customer at the partition's clock, not at this event's own
        # time: when one topic runs ahead of another, the customer's events on
        # the slower topic up to this time may not have arrived yet.  With no
        # clock yet (a topic with waiting messages not read once), only store:
        # the customer is judged once the clock reaches this event.
        if clock_now is None:
            state.due_ts = min(state.due_ts or d.ts, d.ts)
            self.table[cid.encode()] = state.to_bytes()
        else:
            await self._assess_and_store(state, min(d.ts, clock_now))
        if state.due_ts != before_due:
            self.due.schedule(partition, cid, state.due_ts)

    async def _assess_and_store(self, state: CustomerState, now: float) -> None:
        alert = assess(state, now, self.policy, emitted_at=self.wall())
        ahead = state.next_event_after(now)
        if ahead is not None and (state.due_ts is None or state.due_ts > ahead):
            # Events ahead of the clock count once the clock reaches them.
            state.due_ts = ahead
        if alert is not None:
            await self.send_alert(alert)
            self.recent_alerts.append(alert)
            for s in alert.signals:
                metrics.ALERTS.labels(s.code, alert.severity, alert.route).inc()
            metrics.EVENT_TO_ALERT.observe(max(0.0, now - state.last_ts))
            if self.ingested is not None:
                metrics.INGEST_TO_ALERT.observe(max(0.0, self.wall() - self.ingested))
        self.table[state.customer_id.encode()] = state.to_bytes()

    async def run_due(self, partition: int, now: float) -> int:
        """Re-assess every customer of ``partition`` whose due time has passed.

        Each is judged at its own due time, not at ``now``: the alert's event
        time is the moment the customer went quiet, however coarse the clock
        steps are, so replays and live runs agree.
        """
        if self.stale:
            self.rebuild()
        done = 0
        async with self._lock(partition):
            while (item := self.due.pop_due(partition, now)) is not None:
                due, cid = item
                state = self.load(cid)
                if state is None or state.due_ts != due:
                    continue  # superseded by a newer event
                try:
                    await self._assess_and_store(state, due)
                except Exception:
                    log.exception("timer sweep failed; customer skipped",
                                  extra={"fields": {"customer_id": cid}})
                    continue
                self.due.schedule(partition, cid, state.due_ts)
                done += 1
        return done

    async def tick(self, partition: int) -> int:
        """The idle clock: sweep a partition even when no events arrive."""
        if self.stale:
            self.rebuild()
        now = self.clock_now(partition, self.wall())
        metrics.DUE.set(sum(len(h) for h in self.due.heaps.values()))
        return 0 if now is None else await self.run_due(partition, now)

    def clock_now(self, partition: int, wall: float) -> float | None:
        """The partition's event time, or None while it cannot be known yet.

        A topic that has messages waiting but has not delivered one yet could
        hold anything: until it does, nobody in the partition is judged.
        """
        clock = self.clocks.get(partition)
        if clock is None:
            return None
        behind: set[str] = set()
        for topic in self.kinds:
            mark = clock.marks.get(topic)
            if self.backlog(topic, partition, mark[2] if mark else -1):
                if mark is None:
                    return None
                behind.add(topic)
        return clock.now(wall, behind)
