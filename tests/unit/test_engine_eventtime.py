"""The event-time clock: it follows applied events, runs on with the wall once
caught up, and refuses events too far ahead of it or behind it."""

from __future__ import annotations

from stream_app.core.policy import Policy
from stream_app.core.state import DAY
from stream_app.engine.eventtime import EventTime
from stream_app.engine.ordering import MergeQueue
from stream_app.engine.work import PartitionWork

T = 1.7e9
TOPICS = {"purchases": "purchases", "contacts": "contacts"}


def _clock(wall: list[float], waiting: set[str] | None = None) -> EventTime:
    return EventTime(Policy(), lambda: wall[0], lambda t, p, o: t in (waiting or set()),
                     TOPICS)


def _work() -> PartitionWork:
    return PartitionWork(MergeQueue({t: i for i, t in enumerate(TOPICS)}))


def test_the_clock_never_moves_back() -> None:
    wall = [T + 10]
    clock, work = _clock(wall), _work()
    assert clock.advance(work, T) == T and work.clock_wall == T + 10
    assert clock.advance(work, T - DAY) == T  # a late event: the clock stays
    assert clock.advance(work, T + 5) == T + 5


def test_caught_up_the_clock_runs_on_with_the_wall_and_with_a_backlog_it_waits() -> None:
    wall = [T]
    work = _work()
    assert _clock(wall).now(0, work, T) is None  # before the first event
    _clock(wall).advance(work, T - 100)
    assert _clock(wall).now(0, work, T + 60) == T - 100 + 60
    assert _clock(wall, waiting={"contacts"}).now(0, work, T + 60) == T - 100
    work.queue.push("purchases", T - 50, 0, None)
    assert _clock(wall).now(0, work, T + 60) == T - 100  # something still queued


def test_the_future_limit_follows_the_later_of_the_wall_and_the_clock() -> None:
    wall = [T]
    clock, work = _clock(wall), _work()
    ahead = Policy().history.max_future_hours * 3600
    assert clock.future_limit(work) == T + ahead
    clock.advance(work, T + 10 * DAY)  # a replay ahead of the wall
    assert clock.future_limit(work) == T + 10 * DAY + ahead
    assert "ahead of" in clock.from_future(work, T + 11 * DAY + ahead)


def test_lateness_is_judged_against_the_clock() -> None:
    wall = [T]
    clock, work = _clock(wall, waiting={"contacts"}), _work()
    days = Policy().history.allowed_lateness_days
    assert clock.too_late(0, work, T - 365 * DAY) is None  # no clock yet
    clock.advance(work, T)
    assert clock.too_late(0, work, T - (days - 1) * DAY) is None
    reason = clock.too_late(0, work, T - (days + 1) * DAY)
    assert reason is not None and reason.startswith("too late") and f"{days:g} days" in reason
