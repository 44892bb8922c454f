"""COMPLAINTS: complaining more often or more severely than the customer used to.

Count and severity-weighted volume (sum of severities) in a window, against
the customer's own volume per window over the complaint history; a single
complaint of critical severity is enough on its own.  ``next_check`` is when
the oldest complaint in the window ages out, so the risk decays on time.
"""

from __future__ import annotations

from ..policy import Policy
from ..state import DAY, CustomerState
from .base import Fired, clamp_strength, plural

CODE = "COMPLAINTS"
#: The state field without which this signal neither fires nor asks to be
#: woken: with no complaint kept, the assessment does not call it.
SILENT_WITHOUT = "complaints"


def evaluate(state: CustomerState, now: float, policy: Policy) -> Fired | None:
    c = policy.complaints
    if not state.complaints:
        return None
    start = now - c.window_days * DAY
    recent = [x for x in state.complaints if start < x.ts <= now]
    if not recent:
        return None
    weighted = float(sum(x.severity for x in recent))
    older = sum(x.severity for x in state.complaints if x.ts <= start)
    history_days = min(
        policy.history.complaint_days - c.window_days, (start - state.first_ts) / DAY
    )
    baseline = older / history_days * c.window_days if history_days >= c.window_days else 0.0
    threshold = max(c.min_weighted, baseline * c.baseline_multiple)
    critical = [x for x in recent if x.severity >= c.critical_severity]
    if not (critical or (len(recent) >= c.min_count and weighted >= threshold)):
        return None
    categories = sorted({x.category for x in recent})
    detail = (
        f"{plural(len(recent), 'complaint')} in {c.window_days} days "
        f"({', '.join(cat.replace('_', ' ') for cat in categories)}; "
        f"worst severity {max(x.severity for x in recent)}/5)"
    )
    # A critical complaint weighs fully on its own: never leave one unanswered.
    strength = 1.0 if critical else clamp_strength(weighted / (2 * threshold))
    return Fired(CODE, strength, weighted, round(baseline, 2),
                 threshold, f"last {c.window_days} days",
                 tuple(str(x.event_id) for x in recent), detail)


def next_check(state: CustomerState, now: float, policy: Policy,
               firing: bool | None = None) -> float | None:
    if not state.complaints:
        return None
    start = now - policy.complaints.window_days * DAY
    recent = [x.ts for x in state.complaints if start < x.ts <= now]
    return min(recent) + policy.complaints.window_days * DAY + 1.0 if recent else None
