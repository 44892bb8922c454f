"""COMPETITOR_PROBING: asking about competitors' prices or offers, or to match them.

From contact and complaint text (Hebrew and English, with the policy's
competitor names) and CRM tags.  A single mention is already worth a call.
"""

from __future__ import annotations

from ..policy import Policy
from ..state import CustomerState
from .base import Fired
from .notes import evaluate_notes, next_check_notes

CODE = "COMPETITOR_PROBING"
#: The state field without which this signal neither fires nor asks to be
#: woken: with no concern kept, the assessment does not call it.
SILENT_WITHOUT = "notes"


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    p = policy.competitor_probing
    return evaluate_notes(state, now, code=CODE, kind="competitor", window_days=p.window_days,
                          min_count=p.min_count, what="mentioned competitors")


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    return next_check_notes(state, now, "competitor", policy.competitor_probing.window_days)
