"""HOSTILE_TONE: resentful, confrontational language toward staff.

Matched by curated Hebrew and English lexicons with negation handled ("you
were not rude" is not hostile); the words are quoted so the agent knows what
was said before calling.
"""

from __future__ import annotations

from ..policy import Policy
from ..state import CustomerState
from .base import Fired
from .notes import evaluate_notes, next_check_notes

CODE = "HOSTILE_TONE"
#: The state field without which this signal neither fires nor asks to be
#: woken: with no concern kept, the assessment does not call it.
SILENT_WITHOUT = "notes"


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    p = policy.hostile_tone
    return evaluate_notes(state, now, code=CODE, kind="hostile", window_days=p.window_days,
                          min_count=p.min_count, what="used hostile language")


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    return next_check_notes(state, now, "hostile", policy.hostile_tone.window_days)
