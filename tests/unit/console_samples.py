"""Alerts and feedback shaped as the topics carry them, for the console's tests."""

from __future__ import annotations

from typing import Any


def alert(customer: str, episode: int = 1, ts: str = "2025-03-01T10:00:00Z", risk: float = 60.0,
          value: float = 500.0, severity: str = "high", route: str = "call_center",
          codes: tuple[str, ...] = ("COMPLAINTS",), n: int = 0,
          evidence: tuple[str, ...] = ("k1",)) -> dict[str, Any]:
    return {
        "alert_id": f"{customer}-{episode}-{n}", "customer_id": customer, "ts": ts,
        "emitted_at": ts, "risk_score": risk, "severity": severity,
        "signals": [{"code": c, "value": 2.0, "baseline": None, "threshold": 2.0,
                     "window": "last 30 days", "evidence": list(evidence),
                     "detail": f"{c.lower()} detail"} for c in codes],
        "actions": [{"code": "ACT_ON_COMPLAINT", "reason": "resolve the complaint",
                     "channel": "phone"}],
        "route": route, "summary": f"Customer {customer} (high risk)",
        "summary_he": f"לקוח {customer} (סיכון גבוה)", "episode": episode,
        "horizon_days": 90.0, "value_at_risk": value, "schema_version": 2,
    }


def feedback(customer: str, outcome: str, ts: str = "2025-03-02T10:00:00Z",
             alert_id: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or f"fb-{customer}-{outcome}-{ts}", "customer_id": customer,
            "ts": ts, "outcome": outcome, "alert_id": alert_id, "note": None}
