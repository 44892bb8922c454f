"""Typed records for every topic, mirroring ``schemas/*.json``.

The JSON Schemas are the public contract; these classes are its Python face.
``tests/unit/test_contracts.py`` keeps the two in step: field names, required
fields and enumerations must agree, and valid / invalid samples must be judged
the same way by both.

Records are built only after :mod:`stream_app.decoding` has validated the raw
bytes, so they carry no validation of their own (``validation=False`` keeps
construction cheap on the hot path; :func:`record_builder` goes further and
skips Faust's per-field descriptors).  ``include_metadata=False`` keeps Faust's
``__faust`` marker out of what downstream systems read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import faust
from faust.models.fields import (
    BooleanField,
    FieldDescriptor,
    FloatField,
    IntegerField,
    StringField,
)

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
    """An input message the worker could not use, always small enough to send.

    ``value`` is the original message whole when it is no larger than an
    event may be, else a prefix (``value_truncated``); the original is still
    at ``topic``/``partition``/``offset``, and ``value_sha256`` and
    ``value_size`` say which bytes it was.  ``reason_code`` is one of a
    closed set (:data:`stream_app.decoding.REASON_CODES`), for metrics and
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


_R = TypeVar("_R", bound=faust.Record)

#: Field types :func:`record_builder` supports.  With ``coerce`` on, Faust
#: stores ``float(v)`` for a float field (``amount: 10`` becomes ``10.0``),
#: ``int(v)``/``bool(v)`` for whole numbers and booleans and ``v`` itself for
#: a string or a generic field (``list[str]``): for a value that already has
#: the field's type, only the float widening changes anything.
_SUPPORTED = (FloatField, IntegerField, BooleanField, StringField, FieldDescriptor)


def record_builder(cls: type[_R]) -> Callable[[Mapping[str, Any]], _R]:
    """A constructor for ``cls`` that fills the instance as Faust's ``__init__`` would.

    Faust's generated ``__init__`` assigns every field through its descriptor
    (``__set__`` -> ``prepare_value`` -> ``should_coerce``), which made up about
    half of what decoding one event cost.  The builder writes the same
    ``__dict__`` -- ``__evaluated_fields__`` first, then every field in
    declaration order, coerced as Faust would, with the (coerced) default for a
    missing or null optional field -- so the record cannot be told from
    ``cls(**values)``: ``==``, ``repr``, ``asdict()``, ``dumps()`` and pickling
    all agree (``tests/unit/test_decoding.py`` compares them).

    ``values`` must already have been validated: every required field present
    and not null, every value of its field's type (a ``str`` for a string
    field, a number for a float field); keys that are not fields are ignored.
    Classes this shortcut would not be exact for (a custom ``__init__`` or
    ``__post_init__``, Faust validation, tagged fields, other field types) are
    refused when the builder is made, not silently mis-built.
    """
    options = cls._options
    if (cls.__init__ is not cls._model_init or cls.__new__ is not object.__new__
            or hasattr(cls, "__post_init__") or options.validation):
        raise TypeError(f"{cls.__name__}: only plain Faust records can use record_builder")
    names = tuple(options.fieldpos.values())
    floats: list[str] = []
    defaults: list[tuple[str, Any]] = []
    for name in names:
        descr = options.descriptors[name]
        if (type(descr) not in _SUPPORTED or not isinstance(descr, FieldDescriptor)
                or descr.tag or getattr(descr, "trim_whitespace", False)):
            raise TypeError(f"{cls.__name__}.{name}: record_builder does not support "
                            f"{type(descr).__name__} fields")
        if type(descr) is FloatField and descr.coerce:
            floats.append(name)
        # Faust assigns a missing field's default through the descriptor too.
        if name in options.defaults:
            default = descr.prepare_value(options.defaults[name])
            if default is not None:
                defaults.append((name, default))
    #: The ``__dict__`` of a record with no field given: every field, in order.
    blank = dict.fromkeys(("__evaluated_fields__", *names))
    new = object.__new__

    def build(values: Mapping[str, Any]) -> _R:
        state = blank.copy()
        state.update(values)  # one C call; the fields keep their places
        if len(state) != len(blank):  # values has other keys as well: field by field
            state = blank.copy()
            for name in names:
                state[name] = values.get(name)
        state["__evaluated_fields__"] = set()
        for name in floats:
            v = state[name]
            if v is not None:
                state[name] = float(v)
        for name, default in defaults:  # a missing or null field is None so far
            if state[name] is None:
                state[name] = default
        record: _R = new(cls)
        record.__dict__ = state
        return record

    return build
