"""OVERDUE: a silence since the last purchase the purchase model finds unusual.

Silence produces no event, so this is judged by the timer sweep in event
time: ``next_check`` tells the sweep the moment the silence becomes unusual.
"Unusual" is the purchase model's (:mod:`stream_app.core.model`): how often a
customer still buying at the rate shown so far would go this long without a
purchase.  That rate comes from the customer's own purchase days and the
population's numbers, the latter worth at most ``[overdue].prior_purchases``
purchases (see :func:`silence_params`), so nobody is judged against a fixed
gap, nor by the other customers' rhythm: a customer who bought weekly is
late after weeks, one who buys twice a year after many months.
"""

from __future__ import annotations

import math

from ..model import ParetoNBD, silence_probability
from ..policy import Policy, model_params
from ..state import DAY, CustomerState
from .base import Fired, days, plural

CODE = "OVERDUE"


def silence_params(policy: Policy) -> ParetoNBD:
    """The population numbers a silence is judged by: the policy's, with the
    rate's shape capped at ``[overdue].prior_purchases`` (its mean kept).

    The shape ``r`` is how many purchases' worth of evidence the population
    lends a customer's own rate.  A fitted population whose customers mostly
    buy alike gets a large ``r``, and then a customer with one or two
    purchases is judged by the others' rhythm, not by their own: in a
    population of weekly buyers a twice-a-year buyer's first long silence
    looks unusual.  Capped, the population only fills in what the customer
    has not shown yet, and a few purchases of the customer's own outweigh it.
    """
    p = model_params(policy.model)
    cap = policy.overdue.prior_purchases
    if p.r <= cap:
        return p
    return ParetoNBD(cap, p.alpha * cap / p.r, p.s, p.beta)


def _rate(state: CustomerState, policy: Policy) -> tuple[float, float, float]:
    """(r + x, alpha + t_x, the late threshold in days) as of the last purchase.

    Kept in the state's memo: it changes only with a purchase (or new
    population numbers), and every assessment asks for it twice.
    """
    assert state.first_purchase_ts is not None and state.last_purchase_ts is not None
    key = (state.repeat_days, state.first_purchase_ts, state.last_purchase_ts, policy)
    memo = state.memo.get(CODE)
    if memo is not None and memo[0] == key:
        return memo[1]  # type: ignore[no-any-return]
    p = silence_params(policy)
    t_x = (state.last_purchase_ts - state.first_purchase_ts) / DAY
    shape, scale = p.r + state.repeat_days, p.alpha + t_x
    q = policy.overdue.max_silence_probability
    limit = max(policy.overdue.min_days, scale * math.expm1(-math.log(q) / shape))
    rate = (shape, scale, limit)
    state.memo[CODE] = (key, rate)
    return rate


def typical_gap_days(state: CustomerState, policy: Policy) -> float:
    """The expected days between purchases of a living customer like this one."""
    shape, scale, _ = _rate(state, policy)
    return scale / shape


def threshold_days(state: CustomerState, policy: Policy) -> float:
    """The silence after which the customer is late: where a silence this long
    happens at most ``[overdue].max_silence_probability`` of the time.

    Closed form: the model's silence probability is
    ``((alpha + t_x) / (alpha + t_x + d)) ** (r + x)`` for ``d`` days.
    """
    return _rate(state, policy)[2]


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    if state.last_purchase_ts is None or state.first_purchase_ts is None:
        return None
    since = days(now - state.last_purchase_ts)
    limit = threshold_days(state, policy)
    if since <= limit:
        return None
    stats = state.purchase_days(now)
    assert stats is not None
    chance = silence_probability(silence_params(policy), *stats)
    per_100 = max(1, round(100 * chance)) if chance >= 0.005 else 0
    often = (f"happens {per_100} {'time' if per_100 == 1 else 'times'} in 100" if per_100
             else "happens less than once in 200")
    detail = f"no purchase for {plural(round(since), 'day')}; for this customer a silence " \
             f"this long {often}"
    evidence = (state.recent_purchase_ids[-1],) if state.recent_purchase_ids else ()
    q = policy.overdue.max_silence_probability
    strength = round(min(1.0, max(0.5, 1.0 - 0.5 * chance / q)), 3)
    return Fired(CODE, strength, round(since, 1), round(typical_gap_days(state, policy), 1),
                 round(limit, 1), f"since {plural(round(since), 'day')}", evidence, detail)


#: While late, the customer is looked at again as the silence grows by this
#: share: the risk keeps rising with the silence and may reach the alert
#: threshold at any of these looks.
REVIEW_SHARE = 0.1


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    """When the customer turns late, then as the silence grows, and when they lapse."""
    if state.last_purchase_ts is None or state.first_purchase_ts is None:
        return None
    last = state.last_purchase_ts
    late = last + threshold_days(state, policy) * DAY + 1.0
    best = late if late > now else now + max(DAY, REVIEW_SHARE * (now - last))
    lapsed = last + policy.overdue.lapsed_days * DAY + 1.0
    if now < lapsed < best:
        best = lapsed
    return best
