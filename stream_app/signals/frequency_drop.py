"""FREQUENCY_DROP: buying less often, or spending less, than the customer's own past.

The recent window (the current event-time bucket and the ones before it) is
compared with the customer's own baseline (the buckets before that, counted
only from the customer's first purchase).  It fires only when the recent count
is both a small share of what the baseline predicts *and* improbably low under
a Poisson model of that rate: a customer who buys twice a year expects 0.5
purchases in 90 days, sees none with probability 0.6, and is left alone.

Enough history to judge: ``min_baseline_purchases`` purchases over at least
``min_baseline_days`` of baseline (defaults: 4 purchases over 90 days).
"""

from __future__ import annotations

from ..policy import Policy
from ..state import DAY, CustomerState
from .base import Fired, clamp_strength, plural, poisson_cdf

CODE = "FREQUENCY_DROP"


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    fd, h = policy.frequency_drop, policy.history
    # The baseline counts kept purchases only: fewer than needed in all, none.
    if state.first_purchase_ts is None or state.purchases < fd.min_baseline_purchases:
        return None
    width = h.bucket_days * DAY
    current = int(now // width)
    recent_from = current - fd.recent_buckets + 1
    baseline_from = recent_from - fd.baseline_buckets
    recent_start = recent_from * width
    first_bucket_start = int(state.first_purchase_ts // width) * width
    baseline_start = max(baseline_from * width, first_bucket_start)
    baseline_days = (recent_start - baseline_start) / DAY
    recent_days = (now - recent_start) / DAY
    if baseline_days < fd.min_baseline_days or recent_days <= 0:
        return None
    base_n = base_spend = recent_n = recent_spend = 0.0
    for idx, n, spend in state.buckets:
        if baseline_from <= idx < recent_from:
            base_n += n
            base_spend += spend
        elif recent_from <= idx <= current:
            recent_n += n
            recent_spend += spend
    if base_n < fd.min_baseline_purchases:
        return None
    expected = base_n / baseline_days * recent_days
    expected_spend = base_spend / baseline_days * recent_days
    count_ratio = recent_n / expected
    spend_ratio = recent_spend / expected_spend if expected_spend > 0 else 1.0
    probability = poisson_cdf(int(recent_n), expected)
    count_drop = count_ratio <= fd.max_ratio and probability <= fd.max_probability
    # Smaller baskets at the usual pace: judged only where enough purchases
    # were expected for the average basket to mean something.
    spend_drop = (expected >= fd.min_expected_for_spend and 1 <= recent_n <= expected
                  and spend_ratio <= fd.max_ratio)
    if not (count_drop or spend_drop):
        return None
    evidence = tuple(str(eid) for ts, eid in state.recent_purchases if ts >= recent_start)
    if not evidence and state.recent_purchases:
        evidence = (str(state.recent_purchases[-1][1]),)
    window = f"last {recent_days:.0f} days vs the {baseline_days:.0f} days before"
    if count_drop:
        detail = (
            f"bought {plural(int(recent_n), 'time')} in the last {recent_days:.0f} days "
            f"where {expected:.1f} were usual"
        )
        return Fired(CODE, clamp_strength(1 - count_ratio), recent_n, round(expected, 2),
                     round(expected * fd.max_ratio, 2), window, evidence, detail)
    detail = (
        f"spent {recent_spend:.0f} in the last {recent_days:.0f} days "
        f"where {expected_spend:.0f} was usual"
    )
    return Fired(CODE, clamp_strength(1 - spend_ratio), round(recent_spend, 2),
                 round(expected_spend, 2), round(expected_spend * fd.max_ratio, 2),
                 window, evidence, detail)


def next_check(state: CustomerState, now: float, policy: Policy) -> float | None:
    """A quiet customer's recent count falls as buckets roll: look again at the next one."""
    if state.purchases < policy.frequency_drop.min_baseline_purchases:
        return None
    width = policy.history.bucket_days * DAY
    return (int(now // width) + 1) * width
