"""The churn signals: each a small pure module with ``CODE`` and ``evaluate``.

Add a signal by writing a module with ``CODE``, ``evaluate`` and, if silence
or ageing can change its answer, ``next_check``; then list it here and give it
an odds multiplier in the policy's ``[scoring]`` (``odds_<code>``).  A signal
that can say nothing while a state field is empty (no complaints kept, no
concerns noted) names it in ``SILENT_WITHOUT``: its ``evaluate`` must then
return None and its ``next_check`` None for every such state, and the
assessment skips it there (a unit test holds every signal to that).
"""

from __future__ import annotations

from types import ModuleType

from . import (
    compensation_escalation,
    competitor_probing,
    complaints,
    frequency_drop,
    hostile_tone,
    neglected,
    overdue,
    technical_faults,
    unresponsive,
)
from .base import Evaluate, Fired, NextCheck

#: Evaluation order is also the order signals are listed in an alert.
MODULES: tuple[ModuleType, ...] = (
    overdue,
    frequency_drop,
    complaints,
    technical_faults,
    compensation_escalation,
    competitor_probing,
    hostile_tone,
    unresponsive,
    neglected,
)
EVALUATORS: tuple[Evaluate, ...] = tuple(m.evaluate for m in MODULES)
NEXT_CHECKS: tuple[NextCheck, ...] = tuple(m.next_check for m in MODULES)
CODES: tuple[str, ...] = tuple(m.CODE for m in MODULES)
#: Per signal, the state field it is silent without (None: none).
SILENT_WITHOUT: tuple[str | None, ...] = tuple(getattr(m, "SILENT_WITHOUT", None)
                                               for m in MODULES)

__all__ = ["CODES", "EVALUATORS", "MODULES", "NEXT_CHECKS", "SILENT_WITHOUT", "Fired"]
