"""UNRESPONSIVE: the customer ignores the business.

Counted in outreach *days*, not attempts: ten calls on one day that nobody
answered are one unanswered day, because a burst of our own outreach is not
the customer's silence.  Fires on an unsubscribe, on a streak of unanswered
days, or when the response rate in the window falls well below the
customer's own earlier rate.
"""

from __future__ import annotations

from bisect import bisect_right

from ..policy import Policy
from ..state import DAY, CustomerState
from .base import Fired, clamp_strength, plural

CODE = "UNRESPONSIVE"


def _window(days: int) -> str:
    return f"last {days} days"


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    p = policy.unresponsive
    start_day = int((now - p.window_days * DAY) // DAY)
    today = int(now // DAY)
    # The outreach days are in order: the window's days (after its start, up
    # to today) are one slice, the days before it the slice before that.
    days, responded, events = state.outreach_day, state.outreach_responded, state.outreach_event
    end = bisect_right(days, today)
    first = min(bisect_right(days, start_day), end)
    if state.unsubscribed_ts is not None and now - state.unsubscribed_ts <= p.window_days * DAY:
        last = events[end - 1] if end > first else ""
        return Fired(CODE, 1.0, 1.0, None, 1.0, _window(p.window_days), (last,) if last else (),
                     "unsubscribed from our messages")
    streak = end  # the unanswered days at the window's end: streak..end
    while streak > first and not responded[streak - 1]:
        streak -= 1
    streak_days = end - streak
    if streak_days >= p.min_streak_days:
        channels = sorted(set(state.outreach_channel[streak:end]))
        detail = (f"did not answer us on {plural(streak_days, 'day')} in a row "
                  f"({', '.join(channels)})")
        return Fired(CODE, clamp_strength(0.5 * streak_days / p.min_streak_days),
                     float(streak_days), None, float(p.min_streak_days), _window(p.window_days),
                     tuple(events[streak:end]), detail)
    if end - first >= p.min_outreach_days and first >= p.min_outreach_days:
        rate = sum(responded[first:end]) / (end - first)
        usual = sum(responded[:first]) / first
        if usual > 0 and rate <= p.max_rate_ratio * usual:
            detail = (f"answers {rate:.0%} of our contacts in {p.window_days} days, "
                      f"usually {usual:.0%}")
            unanswered = tuple(e for e, r in zip(events[first:end], responded[first:end],
                                                 strict=True) if not r)
            return Fired(CODE, clamp_strength(1 - rate / usual), round(rate, 3),
                         round(usual, 3), round(p.max_rate_ratio * usual, 3),
                         _window(p.window_days),
                         unanswered, detail)
    return None


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    """When the answer can change although no contact arrives.

    While the signal fires: whenever a day ages out of the window (the streak,
    the rate and the evidence change).  While it does not, ageing alone can
    start it only through the response rate (days only leave the window, so
    no streak or unsubscribe begins): the first ageing at which the rate
    would fall far enough, if the window holds enough days for that.  A
    woken customer costs a full re-scoring, so the sweep is not woken for
    ageing that cannot change this signal.
    """
    p = policy.unresponsive
    start_day = int((now - p.window_days * DAY) // DAY)
    pending = state.outreach_day[bisect_right(state.outreach_day, start_day):]
    if not pending:
        return None

    def ages_out(day: int) -> float:
        # The moment ``day`` falls to or behind the window's start day.
        return float((day + p.window_days) * DAY)

    if firing is None:
        firing = evaluate(state, now, policy) is not None
    if pending[-1] > int(now // DAY) or firing:
        # Firing, or days recorded ahead of the clock are still to come in.
        return ages_out(pending[0])
    # After the k-th ageing at most len - k - 1 days are left in the window.
    for day in pending[:len(pending) - p.min_outreach_days]:
        if evaluate(state, ages_out(day), policy) is not None:
            return ages_out(day)
    return None
