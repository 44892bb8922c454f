"""COMPENSATION_ESCALATION: demanding compensation more often, or for more money.

Demands come from complaints' ``compensation_requested`` and from text
("refund", "פיצוי", ...).  Fires on repeated demands in the window, or one
large demand; stronger when the amounts rise.
"""

from __future__ import annotations

from ..policy import Policy
from ..state import CustomerState
from .base import Fired, clamp_strength, plural
from .notes import next_check_notes, recent

CODE = "COMPENSATION_ESCALATION"
#: The state field without which this signal neither fires nor asks to be
#: woken: with no concern kept, the assessment does not call it.
SILENT_WITHOUT = "notes"


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    p = policy.compensation_escalation
    notes = recent(state, "compensation", now, p.window_days)
    if not notes:  # policy values are positive: no demand, no signal
        return None
    events = list(dict.fromkeys(str(n.event_id) for n in notes))
    amounts = [float(n.amount) for n in notes if n.amount]
    largest = max(amounts, default=0.0)
    if len(events) < p.min_count and largest < p.large_amount:
        return None
    rising = len(amounts) >= 2 and amounts[-1] > amounts[0]
    detail = f"demanded compensation {plural(len(events), 'time')} in {p.window_days} days"
    if amounts:
        detail += f" (amounts {', '.join(f'{a:g}' for a in amounts[-4:])}"
        detail += ", rising)" if rising else ")"
    strength = clamp_strength(0.5 * len(events) / p.min_count + (0.25 if rising else 0.0))
    if largest >= p.large_amount:
        strength = max(strength, 0.75)
    return Fired(CODE, strength, float(len(events)), None, float(p.min_count),
                 f"last {p.window_days} days", tuple(events), detail)


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    return next_check_notes(state, now, "compensation",
                            policy.compensation_escalation.window_days)
