"""One risk score 0-100 from the active signals, its severity band and route.

Noisy-OR of the signals' weights scaled by their strength: each signal alone
can reach at most its weight, several together approach 100 without passing
it, and the score falls back as signals go away.  Weights live in the policy.
"""

from __future__ import annotations

from collections.abc import Sequence

from .policy import Policy
from .signals import Fired
from .state import CustomerState


def weight(code: str, policy: Policy) -> float:
    return float(getattr(policy.scoring, "weight_" + code.lower(), 0.0))


def risk_score(fired: Sequence[Fired], policy: Policy) -> float:
    keep = 1.0
    for f in fired:
        keep *= 1.0 - weight(f.code, policy) / 100.0 * f.strength
    return round(100.0 * (1.0 - keep), 1)


def severity(risk: float, policy: Policy) -> str:
    s = policy.scoring
    if risk >= s.critical_at:
        return "critical"
    if risk >= s.high_at:
        return "high"
    if risk >= s.medium_at:
        return "medium"
    return "low"


def high_value(state: CustomerState, now: float, policy: Policy) -> bool:
    return state.spend_last_year(now, policy.history.bucket_days) >= policy.scoring.high_value_spend


def route(risk: float, state: CustomerState, now: float, policy: Policy) -> str:
    """High risk or high value needs a person on the phone; the rest, automation."""
    if risk >= policy.scoring.high_at or high_value(state, now, policy):
        return "call_center"
    return "marketing"
