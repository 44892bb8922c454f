"""OVERDUE: the next purchase is late against the customer's own usual gap.

Silence produces no event, so this is judged by the timer sweep in event time:
``next_check`` tells the sweep the moment the customer becomes late.  The usual
gap is the median of the customer's recent inter-purchase gaps (robust to one
long holiday); one-time and two-time buyers are judged against the
population's typical gap instead of being ignored.
"""

from __future__ import annotations

from ..policy import Policy
from ..state import DAY, CustomerState
from .base import Fired, clamp_strength, days, next_step, plural

CODE = "OVERDUE"


def typical_gap_days(state: CustomerState, policy: Policy) -> tuple[float, bool]:
    """(typical gap in days, whether it is the customer's own).

    With too few gaps to trust a median, the population's typical gap is used,
    stretched to the longest gap the customer has already shown: a customer
    whose one gap was five months is not late after two.
    """
    gaps = state.gaps
    if len(gaps) >= policy.overdue.min_gaps:
        ordered = sorted(gaps)
        mid = len(ordered) // 2
        middle = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return float(middle), True
    return max([policy.overdue.population_gap_days, *gaps]), False


def _limit(state: CustomerState, gap: float, policy: Policy) -> float:
    o = policy.overdue
    longest = max(state.gaps, default=0.0) * o.longest_gap_multiple
    return max(o.multiple * gap, longest, o.min_days)


def threshold_days(state: CustomerState, policy: Policy) -> float:
    """Late = past a multiple of the usual gap, and past the longest recent gap.

    The second bound keeps an irregular buyer (gaps of 5, 30, 8, 25 days)
    from being called late at every long gap of their ordinary rhythm.
    """
    return _usual(state, policy)[2]


def _usual(state: CustomerState, policy: Policy) -> tuple[float, bool, float]:
    """(typical gap, whether it is the customer's own, limit), from the memo.

    They depend on the gaps alone, which change only with a purchase, and
    are asked for at every assessment, twice.
    """
    key = (state.purchases, policy)
    memo = state.memo.get(CODE)
    if memo is not None and memo[0] == key:
        return memo[1]  # type: ignore[no-any-return]
    gap, own = typical_gap_days(state, policy)
    usual = (gap, own, _limit(state, gap, policy))
    state.memo[CODE] = (key, usual)
    return usual


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    if state.last_purchase_ts is None:
        return None
    since = days(now - state.last_purchase_ts)
    gap, own, limit = _usual(state, policy)
    if since <= limit:
        return None
    whose = "usually buys every" if own else "customers typically buy every"
    detail = f"no purchase for {plural(round(since), 'day')} ({whose} {gap:.0f} days)"
    evidence = (state.recent_purchase_ids[-1],) if state.recent_purchase_ids else ()
    return Fired(CODE, clamp_strength(0.5 + 0.5 * (since - limit) / limit), round(since, 1),
                 round(gap, 1), round(limit, 1), f"since {plural(round(since), 'day')}",
                 evidence, detail)


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    """When the customer turns late, as the lateness grows, and when they lapse."""
    if state.last_purchase_ts is None:
        return None
    last = state.last_purchase_ts
    best = next_step(last, threshold_days(state, policy), now)
    lapsed = last + policy.overdue.lapsed_days * DAY + 1.0
    if lapsed > now and (best is None or lapsed < best):
        best = lapsed
    return best
