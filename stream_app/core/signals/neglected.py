"""NEGLECTED: a valuable customer the business has not contacted in a long time.

"Felt unvalued" is the most common reason customers give for leaving.  Judged
by the timer sweep: ``next_check`` is the day the silence from our side
reaches the limit, with no event from the customer needed.
"""

from __future__ import annotations

from ..policy import Policy
from ..state import DAY, CustomerState
from .base import Fired, clamp_strength, next_step, plural

CODE = "NEGLECTED"


def _since(state: CustomerState) -> float:
    """Our last outbound contact, or when we first saw the customer."""
    return state.last_outbound_ts or state.first_ts


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    p = policy.neglected
    days = (now - _since(state)) / DAY
    if days < p.days or state.purchases == 0:
        return None
    value = state.spend_last_year(now, policy.history.bucket_days)
    if value < p.min_spend_last_year:
        return None
    detail = (f"spent {value:,.0f} this year but heard nothing from us for "
              f"{plural(round(days), 'day')}")
    return Fired(CODE, clamp_strength(0.5 * days / p.days), round(days, 1), None, p.days,
                 f"since {plural(round(days), 'day')}", (), detail)


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    """When the silence reaches the limit, as it grows, and when the customer's worth fades.

    While the signal fires its strength grows with the silence (steps, as
    OVERDUE's lateness), and the year's spend falls as old buckets leave the
    year: at the first bucket whose leaving takes it below the bar, it stops.
    Below the bar already, only a purchase (assessed anyway) can change it.
    """
    if state.purchases == 0:
        return None
    p = policy.neglected
    since = _since(state)
    step = next_step(since, p.days, now)
    if now - since < p.days * DAY:
        return step
    if firing is None:
        firing = evaluate(state, now, policy) is not None
    if not firing:  # past the limit, so below the bar: only a purchase changes that
        return None
    bucket_days = policy.history.bucket_days
    width = bucket_days * DAY
    for idx in state.bucket_idx:  # oldest first: the order they leave the year in
        leaves = idx * width + 365 * DAY + 1.0
        if leaves > now and state.spend_last_year(leaves, bucket_days) < p.min_spend_last_year:
            return leaves if step is None or leaves < step else step
    return step
