"""Outcomes as feedback events, validated exactly as the worker will validate them.

The console's buttons and ``POST /feedback`` both end here: the event is
encoded and handed to :func:`stream_app.core.decoding.decode`, the function
the worker runs on every message of the feedback topic.  What it refuses is
never sent, so nothing the console writes can end up as a dead letter, and a
CRM gets the same reason back that the dead letter would have carried.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from ...core.alerting import iso
from ...core.decoding import Rejected, decode
from ...core.records import FEEDBACK_OUTCOMES, asdict


@dataclass(frozen=True, slots=True)
class Outcome:
    """A valid feedback event, ready for the topic."""

    key: bytes
    value: bytes
    event: dict[str, Any]


class OutcomeError(ValueError):
    """Why the event was refused, worded for the person or CRM that sent it."""


def validate(event: Any) -> Outcome:
    """``event`` (parsed JSON) as the worker would take it, or :class:`OutcomeError`."""
    if not isinstance(event, dict):
        raise OutcomeError(f"expected a JSON object, got {type(event).__name__}")
    outcome = event.get("outcome")
    if outcome is not None and outcome not in FEEDBACK_OUTCOMES:
        raise OutcomeError(f"unknown outcome {str(outcome)[:40]!r}: the outcomes are "
                           f"{', '.join(FEEDBACK_OUTCOMES)}")
    cid = event.get("customer_id")
    key = cid.encode() if isinstance(cid, str) else None
    value = orjson.dumps(event)
    result = decode("feedback", key, value)
    if isinstance(result, Rejected):
        raise OutcomeError(result.reason)
    return Outcome(key or b"", value, asdict(result.record))


def from_request(body: Any, now: float | None = None) -> Outcome:
    """A CRM's event: ``event_id`` and ``ts`` may be left out (a fresh id, now)."""
    if isinstance(body, dict):
        body = {**body}
        body.setdefault("event_id", f"console-{uuid.uuid4()}")
        body.setdefault("ts", iso(time.time() if now is None else now))
    return validate(body)


def from_button(customer_id: str, outcome: str, at: float, alert_id: str | None,
                note: str | None) -> Outcome:
    """An agent's click on the card.  ``at`` is the customer's own time (the
    worker's clock for them), so the outcome lands in their event time even
    when the history being shown is a replay of the past."""
    event: dict[str, Any] = {"event_id": f"console-{uuid.uuid4()}", "customer_id": customer_id,
                             "ts": iso(at), "outcome": outcome}
    if alert_id:
        event["alert_id"] = alert_id
    if note and note.strip():
        event["note"] = note.strip()
    return validate(event)
