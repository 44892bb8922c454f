"""UNRESPONSIVE: the customer ignores the business.

Counted in outreach *days*, not attempts: ten calls on one day that nobody
answered are one unanswered day, because a burst of our own outreach is not
the customer's silence.  Fires on an unsubscribe, on a streak of unanswered
days, or when the response rate in the window falls well below the
customer's own earlier rate.
"""

from __future__ import annotations

from typing import Any

from ..policy import Policy
from ..state import DAY, CustomerState
from .base import Fired, clamp_strength, plural

CODE = "UNRESPONSIVE"


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    p = policy.unresponsive
    start_day = int((now - p.window_days * DAY) // DAY)
    today = int(now // DAY)
    # One pass over the outreach days (oldest first): the window's days, and
    # how many days before it there were and how many were answered.
    window: list[list[Any]] = []
    before = answered_before = 0
    for o in state.outreach:
        if o[0] > today:
            break
        if o[0] > start_day:
            window.append(o)
        else:
            before += 1
            answered_before += o[1]
    window_label = f"last {p.window_days} days"
    if state.unsubscribed_ts is not None and now - state.unsubscribed_ts <= p.window_days * DAY:
        last = window[-1][3] if window else ""
        return Fired(CODE, 1.0, 1.0, None, 1.0, window_label, (str(last),) if last else (),
                     "unsubscribed from our messages")
    streak = []
    for o in reversed(window):
        if o[1]:
            break
        streak.append(o)
    evidence = tuple(str(o[3]) for o in reversed(streak))
    if len(streak) >= p.min_streak_days:
        channels = sorted({str(o[2]) for o in streak})
        detail = (f"did not answer us on {plural(len(streak), 'day')} in a row "
                  f"({', '.join(channels)})")
        return Fired(CODE, clamp_strength(0.5 * len(streak) / p.min_streak_days),
                     float(len(streak)), None, float(p.min_streak_days), window_label,
                     evidence, detail)
    if len(window) >= p.min_outreach_days and before >= p.min_outreach_days:
        rate = sum(o[1] for o in window) / len(window)
        usual = answered_before / before
        if usual > 0 and rate <= p.max_rate_ratio * usual:
            detail = (f"answers {rate:.0%} of our contacts in {p.window_days} days, "
                      f"usually {usual:.0%}")
            unanswered = tuple(str(o[3]) for o in window if not o[1])
            return Fired(CODE, clamp_strength(1 - rate / usual), round(rate, 3),
                         round(usual, 3), round(p.max_rate_ratio * usual, 3), window_label,
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
    pending = [o[0] for o in state.outreach if o[0] > start_day]
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
