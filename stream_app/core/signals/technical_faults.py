"""TECHNICAL_FAULTS: the customer keeps running into technical or service failures.

Counts events (technical-fault complaints, and contacts or complaints whose
text or tags speak of faults) in the window: one failure is bad luck, a
repeated one is a reason to leave, and a reason to warn them before the next.
"""

from __future__ import annotations

from ..policy import Policy
from ..state import CustomerState
from .base import Fired
from .notes import evaluate_notes, next_check_notes

CODE = "TECHNICAL_FAULTS"
#: The state field without which this signal neither fires nor asks to be
#: woken: with no concern kept, the assessment does not call it.
SILENT_WITHOUT = "notes"


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    p = policy.technical_faults
    return evaluate_notes(state, now, code=CODE, kind="fault", window_days=p.window_days,
                          min_count=p.min_count, what="reported faults")


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    return next_check_notes(state, now, "fault", policy.technical_faults.window_days)
