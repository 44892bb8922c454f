"""The churn signals: each a small pure module with ``CODE`` and ``evaluate``.

Add a signal by writing a module with ``CODE``, ``evaluate`` and, if silence
or ageing can change its answer, ``next_check``; then list it here.
"""

from __future__ import annotations

from . import complaints, frequency_drop, overdue
from .base import Evaluate, Fired, NextCheck

#: Evaluation order is also the order signals are listed in an alert.
EVALUATORS: tuple[Evaluate, ...] = (
    overdue.evaluate,
    frequency_drop.evaluate,
    complaints.evaluate,
)
NEXT_CHECKS: tuple[NextCheck, ...] = (
    overdue.next_check,
    frequency_drop.next_check,
    complaints.next_check,
)

__all__ = ["EVALUATORS", "NEXT_CHECKS", "Fired"]
