"""Typed records for every topic, mirroring ``schemas/*.json``.

The JSON Schemas are the public contract; these classes are its Python face.
``tests/unit/test_contracts.py`` keeps the two in step: field names, required
fields and enumerations must agree, and valid / invalid samples must be judged
the same way by both.

Plain slotted dataclasses, not Faust records: the core imports no Faust, and
orjson writes a dataclass (nested ones too) as the JSON object of its fields,
in declaration order, which is what the output topics carry.  Records are
built only after :mod:`stream_app.core.decoding` has validated the raw bytes,
so they carry no validation of their own.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

SCHEMA_VERSION = 1
#: The churn-alerts topic's version (schemas/churn-alerts.v2.json).
ALERT_SCHEMA_VERSION = 2

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


@dataclass(slots=True)
class _Input:
    """Fields every input event has."""

    event_id: str
    customer_id: str
    ts: str


@dataclass(slots=True)
class Purchase(_Input):
    amount: float
    currency: str | None = None
    channel: str | None = None


@dataclass(slots=True)
class Contact(_Input):
    direction: str
    channel: str
    outcome: str | None = None
    purpose: str | None = None
    text: str | None = None
    tags: list[str] | None = None


@dataclass(slots=True)
class Complaint(_Input):
    category: str
    severity: int
    compensation_requested: float | None = None
    text: str | None = None
    resolved: bool | None = None


@dataclass(slots=True)
class Feedback(_Input):
    """An alert's outcome, reported by the call centre or marketing system."""

    outcome: str
    alert_id: str | None = None
    note: str | None = None


@dataclass(slots=True)
class SignalEvidence:
    """Why one signal fired: the value now against the customer's own baseline."""

    code: str
    value: float
    baseline: float | None
    threshold: float
    window: str
    evidence: list[str]
    detail: str


@dataclass(slots=True)
class Action:
    """One retention-playbook step; ``channel`` says where to reach the customer."""

    code: str
    reason: str
    channel: str | None = None


@dataclass(slots=True)
class ChurnAlert:
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
    #: The horizon of the risk (its probability is of no purchase in this many days).
    horizon_days: float = 90.0
    value_at_risk: float = 0.0
    #: Version 2: ``risk_score`` is that probability in percent.
    schema_version: int = ALERT_SCHEMA_VERSION


@dataclass(slots=True)
class DeadLetter:
    """An input message the worker could not use, always small enough to send.

    ``value`` is the original message whole when it is no larger than an
    event may be, else a prefix (``value_truncated``); the original is still
    at ``topic``/``partition``/``offset``, and ``value_sha256`` and
    ``value_size`` say which bytes it was.  ``reason_code`` is one of a
    closed set (:data:`stream_app.core.decoding.REASON_CODES`), for metrics and
    filters; ``reason`` is the text a person reads.
    """

    topic: str
    partition: int
    offset: int
    reason: str
    key: str | None
    value: str
    value_encoding: str
    received_at: str
    reason_code: str = "other"
    value_size: int = 0
    value_sha256: str = ""
    value_truncated: bool = False
    schema_version: int = SCHEMA_VERSION


#: Any input event.
InputRecord = Purchase | Contact | Complaint | Feedback

#: Input topic kind -> record class.  The kind is the default topic name.
INPUT_RECORDS: dict[str, type[InputRecord]] = {
    "purchases": Purchase,
    "contacts": Contact,
    "complaints": Complaint,
    "feedback": Feedback,
}


def asdict(record: Any) -> dict[str, Any]:
    """The record as plain data (nested records too), as it is written to a topic."""
    return dataclasses.asdict(record)


def record_fields(cls: type[Any]) -> dict[str, bool]:
    """Field name -> required (used by the contract test)."""
    return {f.name: f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            for f in dataclasses.fields(cls)}


_R = TypeVar("_R")


def _float_fields(cls: type[Any]) -> frozenset[str]:
    """The fields typed ``float`` or ``float | None``, from the resolved hints
    (the annotations themselves are strings here)."""
    hints = typing.get_type_hints(cls)
    return frozenset(name for name, hint in hints.items()
                     if hint is float or hint == (float | None))


def record_builder(cls: type[_R]) -> Callable[[Mapping[str, Any]], _R]:
    """A constructor for ``cls`` from validated values, as the decoder needs it.

    A float field takes ``float(v)`` (``amount: 10`` is ``10.0``, so a record
    reads the same whether the producer wrote ``10`` or ``10.0``); a missing
    or null optional field takes its default; keys that are not fields are
    ignored.  ``values`` must already have been validated: every required
    field present and not null, every value of its field's type.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = tuple(f.name for f in fields)
    floats = _float_fields(cls)
    defaults = {f.name: f.default for f in fields
                if f.default is not dataclasses.MISSING and f.default is not None}

    def build(values: Mapping[str, Any]) -> _R:
        args = []
        for name in names:
            v = values.get(name)
            if v is None:
                v = defaults.get(name)
            elif name in floats:
                v = float(v)
            args.append(v)
        return cls(*args)

    return build
