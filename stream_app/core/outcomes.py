"""Whether an alert was right, once its horizon has passed: the worker measures itself.

An alert says "P(no purchase in the next H days) = risk". Each alert sent is
kept in the customer's state until that is settled:

* a purchase within the H days settles it as ``bought`` (the customer did
  buy, whatever the risk said);
* H days without one settle it as ``no_purchase`` (the timer sweep looks at
  the customer then);
* a ``churned`` or ``retained`` report on the feedback topic settles it as
  that outcome at once: the call centre knows before the horizon does.

Counted per outcome and risk decile, the settled alerts are the live
precision of the alerts and their calibration table (predicted against
observed, by decile), which Prometheus can chart from
``churnwatch_alert_outcomes_total``.  Pure functions over the state.
"""

from __future__ import annotations

from .state import DAY, CustomerState

#: Alerts kept waiting per customer: an episode sends a handful at most.
PENDING_KEPT = 8
OUTCOMES = ("bought", "no_purchase", "churned", "retained")


def expect(state: CustomerState, ts: float, risk: float, horizon_days: float) -> None:
    """Remember an alert sent at ``ts`` until its prediction matures."""
    pending = state.alerting.pending
    pending.append([ts, risk, horizon_days])
    del pending[:-PENDING_KEPT]


def settle(state: CustomerState, now: float, purchase_at: float | None = None,
           reported: str | None = None) -> list[tuple[float, str]]:
    """The alerts settled at event time ``now``: (risk in percent, outcome) each.

    ``purchase_at``: the time of a purchase being applied now;
    ``reported``: a feedback outcome being applied now.
    """
    pending = state.alerting.pending
    if not pending:
        return []
    settled: list[tuple[float, str]] = []
    keep: list[list[float]] = []
    for item in pending:
        ts, risk, horizon = item
        end = ts + horizon * DAY
        if reported in ("churned", "retained"):
            settled.append((risk, reported))
        elif purchase_at is not None and ts < purchase_at <= end:
            settled.append((risk, "bought"))
        elif now >= end:
            settled.append((risk, "no_purchase"))
        else:
            keep.append(item)
    pending[:] = keep
    return settled


def next_maturity(state: CustomerState) -> float | None:
    """When the first waiting alert's horizon ends (the sweep settles it then)."""
    pending = state.alerting.pending
    if not pending:
        return None
    return min(ts + horizon * DAY for ts, _, horizon in pending)


def decile(risk: float) -> str:
    """The risk's decile as a metric label: "0-10" ... "90-100"."""
    low = min(90, max(0, int(risk // 10) * 10))
    return f"{low}-{low + 10}"
