"""What a signal returns, and the helpers signals share.

A signal is a pure function ``evaluate(state, now, policy) -> Fired | None``
over the compact customer state at event time ``now``; optionally also
``next_check(state, now, policy, firing=None) -> float | None``, the event time
at which the answer can change although no event arrives (silence, ageing
windows).  The timer sweep uses that to look at each customer exactly when it
matters.  ``firing`` is whether the signal fires at ``now``: the sweep has
just asked, so a signal that needs to know does not ask again; None (not
known) makes it ask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ..policy import Policy
from ..state import DAY, CustomerState


@dataclass(frozen=True, slots=True)
class Fired:
    code: str
    #: 0.5..1: how far past the threshold; the signal's odds multiplier is raised to it.
    strength: float
    value: float
    baseline: float | None
    threshold: float
    window: str
    evidence: tuple[str, ...]
    #: One clause a person can read aloud ("bought once in 75 days, 6 expected").
    detail: str


class Evaluate(Protocol):
    def __call__(self, state: CustomerState, now: float, policy: Policy) -> Fired | None: ...


class NextCheck(Protocol):
    def __call__(self, state: CustomerState, now: float, policy: Policy,
                 firing: bool | None = None) -> float | None: ...


def clamp_strength(x: float) -> float:
    return round(min(1.0, max(0.5, x)), 3)


def poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean): how likely a count this low is by chance."""
    if mean <= 0:
        return 1.0
    term = math.exp(-mean)
    total = term
    for i in range(1, k + 1):
        term *= mean / i
        total += term
    return min(1.0, total)


#: How far into a silence (as multiples of the signal's limit) a silence
#: signal is looked at again: its strength, and so the risk, grows with it.
STEPS = (1.0, 1.2, 1.4, 1.6, 2.0)


def next_step(origin: float, limit_days: float, now: float) -> float | None:
    """The first moment after ``now`` at which a silence since ``origin`` reaches a step.

    None once the last step (full strength) is behind.
    """
    for k in STEPS:  # ascending, and the limit is positive: the first later one
        t = origin + (limit_days * k) * DAY + 1.0
        if t > now:
            return t
    return None


def days(seconds: float) -> float:
    return seconds / 86400.0


def plural(n: float, word: str) -> str:
    n_txt = f"{n:g}" if isinstance(n, int) or float(n).is_integer() else f"{n:.1f}"
    return f"{n_txt} {word}{'' if n == 1 else 's'}"
