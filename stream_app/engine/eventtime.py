"""A partition's event-time clock, and which events it refuses as too early or too late.

The clock is the time of the latest event applied.  Once every topic is
caught up it runs on at wall-clock speed, so that silence is noticed live.
Lateness is judged against it in merge order, not as messages arrive, so a
replay refuses the same events however the input was cut into fetches.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.alerting import iso
from ..core.policy import Policy
from ..core.state import DAY
from .work import PartitionWork

#: (topic, partition, offset just read) -> whether later messages are waiting.
Backlog = Callable[[str, int, int], bool]


class EventTime:
    __slots__ = ("backlog", "policy", "topics", "wall")

    def __init__(self, policy: Policy, wall: Callable[[], float], backlog: Backlog,
                 topics: dict[str, str]) -> None:
        self.policy = policy
        self.wall = wall
        self.backlog = backlog
        self.topics = topics

    def advance(self, work: PartitionWork, ts: float) -> float:
        """Move the partition's clock over an applied event; its time now."""
        if work.clock is None or ts > work.clock:
            work.clock = ts
        work.clock_wall = self.wall()
        return work.clock

    def now(self, partition: int, work: PartitionWork | None, wall: float) -> float | None:
        """The partition's event time, or None before its first event.

        The latest applied event's time; once every topic is caught up, it
        runs on at wall-clock speed.
        """
        if work is None or work.clock is None:
            return None
        if len(work.queue) or any(
                self.backlog(t, partition, work.offered.get(t, -1)) for t in self.topics):
            return work.clock
        return work.clock + max(0.0, wall - work.clock_wall)

    def future_limit(self, work: PartitionWork) -> float:
        """The latest event time accepted now: the wall clock, or the partition's
        clock where a replay runs ahead of it, plus ``[history].max_future_hours``.

        Relative, so a replay of history (all of it in the past) is never
        refused, and events of a few seconds ahead (producers' clocks
        differ) are not either.  An event after it is refused before it is
        queued: queued, it would hold its topic back in the merge until the
        others caught up with it; applied, it would move the partition's
        clock years ahead, and every later event would be too late.
        """
        ahead = self.policy.history.max_future_hours * 3600.0
        return max(self.wall(), work.clock or 0.0) + ahead

    def from_future(self, work: PartitionWork, ts: float) -> str:
        hours = self.policy.history.max_future_hours
        base = max(self.wall(), work.clock or 0.0)
        return (f"from the future: event time {iso(ts)} is {(ts - base) / 3600:.1f} hours "
                f"ahead of {iso(base)} (the wall clock, or this partition's clock if later); "
                f"at most {hours:g} hours are allowed ([history].max_future_hours)")

    def too_late(self, partition: int, work: PartitionWork, ts: float) -> str | None:
        """Why an event is too far behind its partition's clock, or None."""
        if work.clock is None:
            return None
        wall = self.wall()
        days = self.policy.history.allowed_lateness_days
        # The clock reads at most this (see now()); an event not late even
        # then needs no look at the backlog, which is most events.
        if ts >= work.clock + max(0.0, wall - work.clock_wall) - days * DAY:
            return None
        now = self.now(partition, work, wall)
        if now is None or ts >= now - days * DAY:
            return None
        return (f"too late: event time {iso(ts)} is {(now - ts) / DAY:.1f} days behind "
                f"this partition's clock {iso(now)}; the allowed lateness is {days:g} days")
