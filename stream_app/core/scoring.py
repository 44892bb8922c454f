"""The risk: the probability that the customer buys nothing in the next H days.

The purchase model (:mod:`stream_app.core.model`, Pareto/NBD) turns the
customer's purchase days so far into that probability; the other signals
move it as odds multipliers from the policy (a complaint burst raises the
risk of a customer who still buys).  ``risk_score`` is the probability times
100, so "risk 83" reads "83 in 100 such customers buy nothing in 90 days",
something a person can check against what happened.  Also the severity band
and the route, by the value at risk (the risk times what the customer spent
over the last year).
"""

from __future__ import annotations

from collections.abc import Sequence

from . import model
from .policy import Policy, model_params
from .signals import Fired
from .state import CustomerState

#: The probability the odds are taken of is kept inside this, so that a
#: multiplier always moves it and the odds stay finite.
_EDGE = 1e-6


def odds_multiplier(code: str, policy: Policy) -> float:
    return float(getattr(policy.scoring, "odds_" + code.lower(), 1.0))


def basket_odds(state: CustomerState, policy: Policy) -> float:
    """The odds multiplier of the customer's mean basket against the typical one.

    ``(basket / typical) ** -[model].basket_elasticity``: the purchase model
    sees when and how often a customer buys, not how much, and on retail
    logs customers with bigger baskets come back more often than their
    purchase days alone say.  1 when the typical basket is not known yet
    (no fit) or the customer has no positive spend.
    """
    m = policy.model
    if m.basket_elasticity == 0.0 or m.typical_basket <= 0.0:
        return 1.0
    if state.purchases <= 0 or not state.spend > 0.0:
        return 1.0
    return float((state.spend / state.purchases / m.typical_basket) ** -m.basket_elasticity)


def purchase_risk(state: CustomerState, now: float, policy: Policy) -> float:
    """P(no purchase in the next ``[model].horizon_days``) from purchases alone:
    the purchase model's, moved by the customer's basket (:func:`basket_odds`)."""
    stats = state.purchase_days(now)
    if stats is None:
        return policy.model.no_purchase_risk
    x, t_x, T = stats
    p = model.no_purchase_probability(model_params(policy.model), x, t_x, T,
                                      policy.model.horizon_days)
    k = basket_odds(state, policy)
    if k == 1.0:
        return p
    p = min(1.0 - _EDGE, max(_EDGE, p))
    odds = p / (1.0 - p) * k
    return odds / (1.0 + odds)


def risk_probability(state: CustomerState, fired: Sequence[Fired], now: float,
                     policy: Policy) -> float:
    p = min(1.0 - _EDGE, max(_EDGE, purchase_risk(state, now, policy)))
    odds = p / (1.0 - p)
    for f in fired:
        m = odds_multiplier(f.code, policy)
        if m != 1.0:
            odds *= m ** f.strength
    return odds / (1.0 + odds)


def risk_score(state: CustomerState, fired: Sequence[Fired], now: float,
               policy: Policy) -> float:
    """The risk as a percentage (0-100, one decimal)."""
    return round(100.0 * risk_probability(state, fired, now, policy), 1)


def severity(risk: float, policy: Policy) -> str:
    s = policy.scoring
    if risk >= s.critical_at:
        return "critical"
    if risk >= s.high_at:
        return "high"
    if risk >= s.medium_at:
        return "medium"
    return "low"


def yearly_value(state: CustomerState, now: float, policy: Policy) -> float:
    return state.spend_last_year(now, policy.history.bucket_days)


def value_at_risk(risk: float, state: CustomerState, now: float, policy: Policy) -> float:
    """What the business stands to lose: the risk times the last year's spend."""
    return _at_risk(risk, yearly_value(state, now, policy))


def _at_risk(risk: float, value: float) -> float:
    return round(risk / 100.0 * value, 2)


def high_value(state: CustomerState, now: float, policy: Policy) -> bool:
    return yearly_value(state, now, policy) >= policy.scoring.high_value_spend


def route(risk: float, state: CustomerState, now: float, policy: Policy) -> str:
    """The customers worth a call go to the call centre; the rest, to automation."""
    value = yearly_value(state, now, policy)
    if (_at_risk(risk, value) >= policy.scoring.call_value_at_risk
            or value >= policy.scoring.high_value_spend):
        return "call_center"
    return "marketing"
