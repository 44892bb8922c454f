"""FREQUENCY_DROP: buying less often, or spending less, than the customer's own past.

The recent window (the current event-time bucket and the ones before it) is
compared with the customer's own baseline (the buckets before that, counted
only from the customer's first purchase).  It fires only when the recent count
is both a small share of what the baseline predicts *and* improbably low under
a Poisson model of that rate: a customer who buys twice a year expects 0.5
purchases in 90 days, sees none with probability 0.6, and is left alone.

Enough history to judge: ``min_baseline_purchases`` purchases over at least
``min_baseline_days`` of baseline (defaults: 4 purchases over 90 days).

Without a new purchase the answer changes only as time passes; the timer
sweep judges it at bucket boundaries (see :func:`next_check`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from typing import Any

from ..policy import FrequencyDrop, History, Policy
from ..state import DAY, CustomerState
from .base import Fired, clamp_strength, plural, poisson_cdf

try:
    # The compiled twin of _judge's yes/no and of _scan (setup.py); the
    # functions below stay the reference, and run where it was not built.
    from ._frequency_drop import Kernel
except ImportError:  # pragma: no cover - exercised where no compiler was found
    Kernel = None

CODE = "FREQUENCY_DROP"
#: Its entry in CustomerState.memo: the scan for the next drop.
_AHEAD = CODE + "@ahead"

#: What a drop was judged on: whether the count dropped (else the spend),
#: recent count and spend, their expected values, the two ratios, the recent
#: and baseline spans in days, and when the recent window starts.
_Drop = tuple[bool, float, float, float, float, float, float, float, float, float]


def _judge(state: CustomerState, now: float, policy: Policy) -> _Drop | None:
    """The drop at ``now``, or None if there is none (or too little history)."""
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
    # The buckets are in order: the baseline and the recent window are two
    # adjacent slices.
    idxs, counts, spends = state.bucket_idx, state.bucket_count, state.bucket_spend
    base = bisect_left(idxs, baseline_from)
    recent = bisect_left(idxs, recent_from)
    end = bisect_right(idxs, current)
    base_n, recent_n = float(sum(counts[base:recent])), float(sum(counts[recent:end]))
    if base_n < fd.min_baseline_purchases:
        return None
    expected = base_n / baseline_days * recent_days
    count_ratio = recent_n / expected
    # The Poisson tail only where the ratio already says "drop": it is the
    # costly half of the test, and most customers fail the cheap one.
    count_drop = (count_ratio <= fd.max_ratio
                  and poisson_cdf(int(recent_n), expected) <= fd.max_probability)
    # Smaller baskets at the usual pace: judged only where enough purchases
    # were expected for the average basket to mean something.
    spend_judged = expected >= fd.min_expected_for_spend and 1 <= recent_n <= expected
    if not (count_drop or spend_judged):
        return None  # no drop, whatever was spent: the spend is not summed
    base_spend, recent_spend = float(sum(spends[base:recent])), float(sum(spends[recent:end]))
    expected_spend = base_spend / baseline_days * recent_days
    spend_ratio = recent_spend / expected_spend if expected_spend > 0 else 1.0
    spend_drop = spend_judged and spend_ratio <= fd.max_ratio
    if not (count_drop or spend_drop):
        return None
    return (count_drop, recent_n, recent_spend, expected, expected_spend, count_ratio,
            spend_ratio, recent_days, baseline_days, recent_start)


#: (the policy's [frequency_drop], its [history]) -> their kernel.  A refit
#: makes a new Policy but keeps these two sections, so this stays small; the
#: sections are kept in the value, so that their ids are not reused.
_KERNELS: dict[tuple[int, int], tuple[FrequencyDrop, History, Any]] = {}


def kernel(policy: Policy) -> Any:
    """The compiled kernel for ``policy``, or None where it was not built."""
    if Kernel is None:
        return None
    fd, h = policy.frequency_drop, policy.history
    found = _KERNELS.get((id(fd), id(h)))
    if found is None:
        found = _KERNELS[id(fd), id(h)] = (fd, h, Kernel(fd, h))
    return found[2]


def _drop(state: CustomerState, now: float, policy: Policy) -> _Drop | None:
    """:func:`_judge`, after the kernel's quick no where it is built."""
    k = kernel(policy)
    if k is not None and not k.drops(state, now):
        return None
    return _judge(state, now, policy)


def _key(state: CustomerState, policy: Policy) -> tuple[int, float | None, Policy]:
    """What a judgement depends on besides the time: the buckets change only
    with a purchase, which counts it."""
    return (state.purchases, state.first_purchase_ts, policy)


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    drop = _drop(state, now, policy)
    if drop is None:
        return None
    (count_drop, recent_n, recent_spend, expected, expected_spend, count_ratio,
     spend_ratio, recent_days, baseline_days, recent_start) = drop
    max_ratio = policy.frequency_drop.max_ratio
    ids = state.recent_purchase_ids
    evidence = tuple(ids[bisect_left(state.recent_purchase_ts, recent_start):])
    if not evidence and ids:
        evidence = (ids[-1],)
    window = f"last {recent_days:.0f} days vs the {baseline_days:.0f} days before"
    if count_drop:
        detail = (
            f"bought {plural(int(recent_n), 'time')} in the last {recent_days:.0f} days "
            f"where {expected:.1f} were usual"
        )
        return Fired(CODE, clamp_strength(1 - count_ratio), recent_n, round(expected, 2),
                     round(expected * max_ratio, 2), window, evidence, detail)
    detail = (
        f"spent {recent_spend:.0f} in the last {recent_days:.0f} days "
        f"where {expected_spend:.0f} was usual"
    )
    return Fired(CODE, clamp_strength(1 - spend_ratio), round(recent_spend, 2),
                 round(expected_spend, 2), round(expected_spend * max_ratio, 2),
                 window, evidence, detail)


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    """The next bucket boundary at which the answer differs from a firing-free one.

    A quiet customer's recent count falls as buckets roll, so the sweep judges
    the signal at bucket boundaries.  While it fires, its figures change at
    every boundary (and it may stop): the next one.  While it does not, only
    a boundary at which it would fire matters, and without a new purchase
    (which is assessed anyway) the buckets are fixed, so that boundary is
    known now: the first one at which the drop appears, or none once every
    purchase has left the baseline.
    """
    if state.purchases < policy.frequency_drop.min_baseline_purchases:
        return None
    width = policy.history.bucket_days * DAY
    following = int(now // width) + 1
    if firing:
        # The next boundary whatever the scan would find (at the earliest, that one).
        return following * width
    first = _first_drop_bucket(state, following, policy)
    if first == following:
        return following * width
    if firing is None:
        firing = _drop(state, now, policy) is not None
    if firing:
        return following * width
    return None if first is None else first * width


def _first_drop_bucket(state: CustomerState, start: int, policy: Policy) -> int | None:
    """The first bucket index from ``start`` on whose start time shows a drop.

    Kept in the state's memo for as long as its purchases are the same: a
    customer is assessed at every event and every wake, and the answer
    changes only with a purchase.  The memo holds the range already scanned:
    [scanned from, first drop or None = none at all from there].
    """
    key = _key(state, policy)
    memo = state.memo.get(_AHEAD)
    if memo is not None and memo[0] == key:
        scanned_from, ahead = memo[1], memo[2]
        if scanned_from <= start and (ahead is None or start <= ahead):
            return int(ahead) if ahead is not None else None
    k = kernel(policy)
    found = _scan(state, start, policy) if k is None else k.first_drop(state, start)
    state.memo[_AHEAD] = (key, start, found)
    return found


def _scan(state: CustomerState, start: int, policy: Policy) -> int | None:
    """The first drop at a boundary from ``start`` on, as :func:`_judge` finds it.

    Window sums from running totals over the buckets (oldest first) instead
    of a pass per boundary: this runs after every purchase.  Counts are whole
    numbers, so the count test is exact; sums of spend may differ from
    :func:`_judge`'s in the last bit, so the spend test errs towards a drop
    and every drop found is confirmed by :func:`_judge` itself.
    """
    idxs = state.bucket_idx
    if not idxs or state.first_purchase_ts is None:
        return None
    fd = policy.frequency_drop
    width = policy.history.bucket_days * DAY
    recent_days = (fd.recent_buckets - 1) * policy.history.bucket_days  # at a boundary
    if recent_days <= 0:
        return None
    if len(state.bucket_count) != len(state.bucket_spend):
        raise ValueError("the bucket count and spend columns differ in length")
    # Running totals, summed in the same order as a loop would (the same floats).
    counts = list(accumulate(state.bucket_count, initial=0.0))
    spends = list(accumulate(state.bucket_spend, initial=0.0))
    newest = idxs[-1]
    first_bucket_start = int(state.first_purchase_ts // width) * width
    for c in range(start, int(newest) + fd.recent_buckets + fd.baseline_buckets):
        recent_from = c - fd.recent_buckets + 1
        baseline_from = recent_from - fd.baseline_buckets
        baseline_days = (recent_from * width
                         - max(baseline_from * width, first_bucket_start)) / DAY
        if baseline_days < fd.min_baseline_days:
            continue
        i, j = bisect_left(idxs, baseline_from), bisect_left(idxs, recent_from)
        k = bisect_right(idxs, c)
        base_n = counts[j] - counts[i]
        if base_n >= fd.min_baseline_purchases:
            recent_n = counts[k] - counts[j]
            expected = base_n / baseline_days * recent_days
            drop = (recent_n / expected <= fd.max_ratio
                    and poisson_cdf(int(recent_n), expected) <= fd.max_probability)
            if not drop and expected >= fd.min_expected_for_spend and 1 <= recent_n <= expected:
                expected_spend = (spends[j] - spends[i]) / baseline_days * recent_days
                drop = (expected_spend > 0 and (spends[k] - spends[j]) / expected_spend
                        <= fd.max_ratio * (1 + 1e-9))
            if drop and _judge(state, c * width, policy) is not None:
                return c
        if recent_from > newest:
            # From here on the recent window is empty and the baseline long
            # enough; as buckets roll, the baseline only loses purchases and
            # grows no shorter, so the expected count only falls: a drop not
            # seen now is seen at no later boundary either.
            return None
    return None
