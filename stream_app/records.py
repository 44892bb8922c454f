"""Typed records for every topic, mirroring ``schemas/*.json``.

The JSON Schemas are the public contract; these classes are its Python face.
``tests/unit/test_contracts.py`` keeps the two in step: field names, required
fields and enumerations must agree, and valid / invalid samples must be judged
the same way by both.

Records are built only after :mod:`stream_app.decoding` has validated the raw
bytes, so they carry no validation of their own (``validation=False`` keeps
construction cheap on the hot path).  ``include_metadata=False`` keeps Faust's
``__faust`` marker out of what downstream systems read.
"""

from __future__ import annotations

import faust

SCHEMA_VERSION = 1

DIRECTIONS = ("inbound", "outbound")
CONTACT_CHANNELS = ("phone", "email", "sms", "social", "chat", "in_person")
CONTACT_OUTCOMES = (
    "answered", "replied", "opened", "no_answer", "ignored", "bounced", "unsubscribed",
)
CONTACT_PURPOSES = ("service", "sales", "retention", "appreciation", "notice", "other")
PURCHASE_CHANNELS = ("store", "online", "phone", "app", "other")
COMPLAINT_CATEGORIES = (
    "service_quality", "sales", "technical_fault", "billing", "delivery", "other",
)
SIGNAL_CODES = (
    "FREQUENCY_DROP", "OVERDUE", "UNRESPONSIVE", "COMPLAINTS", "TECHNICAL_FAULTS",
    "COMPETITOR_PROBING", "COMPENSATION_ESCALATION", "HOSTILE_TONE", "NEGLECTED",
)
ACTION_CODES = (
    "LISTEN", "ACT_ON_COMPLAINT", "APPRECIATE", "PROACTIVE_NOTICE", "REACH_OUT", "WIN_BACK",
)
SEVERITIES = ("low", "medium", "high", "critical")
ROUTES = ("call_center", "marketing")
FEEDBACK_OUTCOMES = ("contacted", "retained", "churned", "false_alarm", "do_not_contact")


class _Input(faust.Record, include_metadata=False, validation=False, serializer="json"):
    """Fields every input event has."""

    event_id: str
    customer_id: str
    ts: str


class Purchase(_Input):
    amount: float
    currency: str | None = None
    channel: str | None = None


class Contact(_Input):
    direction: str
    channel: str
    outcome: str | None = None
    purpose: str | None = None
    text: str | None = None
    tags: list[str] | None = None


class Complaint(_Input):
    category: str
    severity: int
    compensation_requested: float | None = None
    text: str | None = None
    resolved: bool | None = None


class Feedback(_Input):
    """An alert's outcome, reported by the call centre or marketing system."""

    outcome: str
    alert_id: str | None = None
    note: str | None = None


class SignalEvidence(faust.Record, include_metadata=False, validation=False):
    """Why one signal fired: the value now against the customer's own baseline."""

    code: str
    value: float
    baseline: float | None
    threshold: float
    window: str
    evidence: list[str]
    detail: str


class Action(faust.Record, include_metadata=False, validation=False):
    """One retention-playbook step; ``channel`` says where to reach the customer."""

    code: str
    reason: str
    channel: str | None = None


class ChurnAlert(faust.Record, include_metadata=False, validation=False, serializer="json"):
    alert_id: str
    customer_id: str
    ts: str
    emitted_at: str
    risk_score: float
    severity: str
    signals: list[SignalEvidence]
    actions: list[Action]
    route: str
    summary: str
    summary_he: str
    episode: int
    schema_version: int = SCHEMA_VERSION


class DeadLetter(faust.Record, include_metadata=False, validation=False, serializer="json"):
    topic: str
    partition: int
    offset: int
    reason: str
    key: str | None
    value: str
    value_encoding: str
    received_at: str
    schema_version: int = SCHEMA_VERSION


#: Input topic kind -> record class.  The kind is the default topic name.
INPUT_RECORDS: dict[str, type[_Input]] = {
    "purchases": Purchase,
    "contacts": Contact,
    "complaints": Complaint,
    "feedback": Feedback,
}


def record_fields(cls: type[faust.Record]) -> dict[str, bool]:
    """Field name -> required, as Faust sees the class (used by the contract test)."""
    options = cls._options
    return {name: name not in options.optionalset for name in options.fields}

