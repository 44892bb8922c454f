"""The JSON Schemas (the public contract) and the Python records/decoder agree.

Field names, required fields and enumerations must match, and the decoder
must accept and refuse the same samples the schemas do.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings

from stream_app.core import records
from stream_app.core.alerting import assess
from stream_app.core.decoding import COMMON, TS_PATTERN, Decoded, Rejected, _String, decode
from stream_app.core.policy import Policy
from stream_app.engine.processing import dead_letter

from ..conftest import epoch
from ..helpers import buyer, complaint
from ..timestamps import BOUNDARIES, timestamps

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
INPUTS = ("purchases", "contacts", "complaints", "feedback")


def schema(name: str) -> dict[str, Any]:
    version = 2 if name == "churn-alerts" else 1
    doc: dict[str, Any] = json.loads((SCHEMAS / f"{name}.v{version}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema(name), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("kind", INPUTS)
def test_input_records_mirror_their_schema(kind: str) -> None:
    doc = schema(kind)
    fields = records.record_fields(records.INPUT_RECORDS[kind])
    props = set(doc["properties"]) - {"schema_version"}
    assert set(fields) == props
    assert {n for n, required in fields.items() if required} == set(doc["required"])


@pytest.mark.parametrize("name, cls", [("churn-alerts", records.ChurnAlert),
                                       ("dead-letters", records.DeadLetter)])
def test_output_records_mirror_their_schema(name: str, cls: type) -> None:
    doc = schema(name)
    assert set(records.record_fields(cls)) == set(doc["properties"])
    assert set(doc["required"]) == set(doc["properties"])  # outputs always carry every field


def _enum(doc: dict[str, Any], field: str) -> set[Any]:
    return set(doc["properties"][field]["enum"]) - {None}


def test_enumerations_agree() -> None:
    contacts, complaints = schema("contacts"), schema("complaints")
    assert _enum(contacts, "direction") == set(records.DIRECTIONS)
    assert _enum(contacts, "channel") == set(records.CONTACT_CHANNELS)
    assert _enum(contacts, "outcome") == set(records.CONTACT_OUTCOMES)
    assert _enum(contacts, "purpose") == set(records.CONTACT_PURPOSES)
    assert _enum(complaints, "category") == set(records.COMPLAINT_CATEGORIES)
    assert _enum(schema("purchases"), "channel") == set(records.PURCHASE_CHANNELS)
    alerts = schema("churn-alerts")["properties"]
    assert set(alerts["signals"]["items"]["properties"]["code"]["enum"]) == set(
        records.SIGNAL_CODES)
    assert set(alerts["actions"]["items"]["properties"]["code"]["enum"]) == set(
        records.ACTION_CODES)
    assert set(alerts["severity"]["enum"]) == set(records.SEVERITIES)
    assert set(alerts["route"]["enum"]) == set(records.ROUTES)
    assert _enum(schema("feedback"), "outcome") == set(records.FEEDBACK_OUTCOMES)


BASE = {"event_id": "e1", "customer_id": "c1", "ts": "2025-03-01T10:00:00+02:00"}
VALID = [
    ("purchases", {**BASE, "amount": 12.5}),
    ("purchases", {**BASE, "amount": 0, "currency": "ILS", "channel": "online",
                   "note": "unknown fields are ignored"}),
    ("purchases", {**BASE, "ts": "2025-03-01T08:00:00Z", "amount": 3, "currency": None}),
    ("contacts", {**BASE, "direction": "outbound", "channel": "sms", "outcome": "no_answer"}),
    ("contacts", {**BASE, "direction": "inbound", "channel": "phone", "purpose": "service",
                  "text": "שלום, יש לי בעיה", "tags": ["price"]}),
    ("complaints", {**BASE, "category": "technical_fault", "severity": 5,
                    "compensation_requested": 200, "text": "broken again"}),
    ("complaints", {**BASE, "category": "billing", "severity": 1, "schema_version": 1}),
    ("feedback", {**BASE, "outcome": "retained", "alert_id": "a1", "note": "happy again"}),
    ("feedback", {**BASE, "outcome": "do_not_contact"}),
    ("purchases", {**BASE, "ts": "2025-12-02T07:28:20z", "amount": 1}),  # RFC 3339 allows 'z'
    ("purchases", {**BASE, "ts": "2025-12-02t07:28:20.123456789-00:00", "amount": 1}),
]
INVALID = [
    ("purchases", {**BASE}),  # no amount
    ("purchases", {**BASE, "amount": "12"}),
    ("purchases", {**BASE, "amount": -1}),
    ("purchases", {**BASE, "amount": True}),
    ("purchases", {**BASE, "amount": 1, "currency": "shekel"}),
    ("purchases", {**BASE, "amount": 1, "ts": "2025-03-01T10:00:00"}),  # no offset
    ("purchases", {**BASE, "amount": 1, "ts": "yesterday"}),
    ("purchases", {**BASE, "amount": 1, "ts": "20251202T100000Z"}),  # ISO 8601 basic form
    ("purchases", {**BASE, "amount": 1, "ts": "2025-W49-2T10:00Z"}),  # ISO 8601 week date
    ("purchases", {**BASE, "amount": 1, "ts": "2025-12-02 10:00:00Z"}),
    ("purchases", {**BASE, "amount": 1, "ts": "2025-02-29T10:00:00Z"}),
    ("purchases", {**BASE, "amount": 1, "ts": "1989-12-31T23:59:59Z"}),
    ("purchases", {"event_id": "e1", "ts": BASE["ts"], "amount": 1}),  # no customer
    ("purchases", {**BASE, "customer_id": "", "amount": 1}),
    ("contacts", {**BASE, "direction": "sideways", "channel": "phone"}),
    ("contacts", {**BASE, "direction": "inbound", "channel": "pigeon"}),
    ("contacts", {**BASE, "direction": "inbound", "channel": "phone", "tags": "price"}),
    ("contacts", {**BASE, "direction": "inbound", "channel": "phone", "outcome": "maybe"}),
    ("complaints", {**BASE, "category": "weather", "severity": 3}),
    ("complaints", {**BASE, "category": "billing", "severity": 6}),
    ("complaints", {**BASE, "category": "billing", "severity": 2.5}),
    ("complaints", {**BASE, "category": "billing", "severity": 2, "schema_version": 2}),
    ("feedback", {**BASE, "outcome": "maybe"}),
    ("feedback", {**BASE}),
]


@pytest.mark.parametrize("kind, sample", VALID)
def test_valid_samples_pass_schema_and_decoder(kind: str, sample: dict[str, Any]) -> None:
    validator(kind).validate(sample)
    result = decode(kind, b"c1", orjson.dumps(sample))
    assert isinstance(result, Decoded), result


@pytest.mark.parametrize("kind, sample", INVALID)
def test_invalid_samples_fail_schema_and_decoder(kind: str, sample: dict[str, Any]) -> None:
    assert list(validator(kind).iter_errors(sample)), "schema accepted it"
    result = decode(kind, b"c1", orjson.dumps(sample))
    assert isinstance(result, Rejected), result


def test_every_input_schema_states_the_decoders_event_time_contract() -> None:
    ts_rule = COMMON["ts"][1]
    assert isinstance(ts_rule, _String)
    for kind in INPUTS:
        ts = schema(kind)["properties"]["ts"]
        assert ts["pattern"] == TS_PATTERN, kind
        assert ts["maxLength"] == ts_rule.max_len, kind


def _agree_on(ts: Any) -> None:
    """The schema and the decoder accept, or both refuse, an event with this ``ts``."""
    event = {**BASE, "ts": ts, "amount": 1}
    by_schema = not list(validator("purchases").iter_errors(event))
    by_decoder = decode("purchases", b"c1", orjson.dumps(event))
    assert by_schema == isinstance(by_decoder, Decoded), (ts, by_decoder)


@settings(max_examples=2000, deadline=None)
@given(ts=timestamps())
def test_schema_and_decoder_agree_on_every_timestamp(ts: str) -> None:
    _agree_on(ts)


@pytest.mark.parametrize("ts", BOUNDARIES)
def test_schema_and_decoder_agree_at_the_ends_of_the_year_range(ts: str) -> None:
    _agree_on(ts)


def test_emitted_alerts_and_dead_letters_match_their_schemas() -> None:
    # A monthly buyer for a year, silent for two months, who then complains.
    s = buyer(30, 360)
    for day in (425, 427, 429):
        complaint(s, day, severity=4)
    policy = Policy()
    alert = assess(s, epoch(430), policy, emitted_at=epoch(430))
    assert alert is not None
    encoded = orjson.loads(orjson.dumps(alert))
    validator("churn-alerts").validate(encoded)
    assert encoded["schema_version"] == 2
    assert encoded["horizon_days"] == policy.model.horizon_days
    assert 0 < encoded["value_at_risk"] < s.spend
    # The summary says what the number means.
    percent = f"{alert.risk_score:.0f}%"
    assert (f"({alert.severity} risk: {percent} chance of no purchase in "
            f"{policy.model.horizon_days:g} days)") in alert.summary
    assert f"{percent} שלא יקנה ב-{policy.model.horizon_days:g} הימים הקרובים" in alert.summary_he
    letter = dead_letter("purchases", 2, 17, b"c1", b"\xff\xfe not utf-8", "not valid JSON")
    encoded = orjson.loads(orjson.dumps(letter))
    validator("dead-letters").validate(encoded)
    assert encoded["value_encoding"] == "base64"


def test_only_version_2_of_the_alert_schema_is_published() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("churn-alerts.*.json")) == ["churn-alerts.v2.json"]
    assert records.ALERT_SCHEMA_VERSION == 2
    assert "Version 2" in schema("churn-alerts")["description"]


def test_every_signal_has_a_schema_code_an_odds_multiplier_and_a_hebrew_clause() -> None:
    from dataclasses import fields, replace

    from stream_app.core.playbook import _clause_he
    from stream_app.core.policy import Scoring
    from stream_app.core.scoring import odds_multiplier, risk_probability
    from stream_app.core.signals import CODES, Fired

    assert set(CODES) == set(records.SIGNAL_CODES)
    keys = {f.name: f for f in fields(Scoring)}
    assert {k for k in keys if k.startswith("odds_")} == {"odds_" + c.lower() for c in CODES}
    assert not [k for k in keys if k.startswith("weight_")]  # the old premise is gone
    state, now = buyer(30, 360), epoch(400)
    for code in CODES:
        key = "odds_" + code.lower()
        assert keys[key].metadata.get("doc"), key
        default = odds_multiplier(code, Policy())
        assert default == getattr(Policy().scoring, key) and default >= 1.0, code
        # The key is the one the score reads: at full strength the odds are
        # multiplied by it, at half strength by its square root.
        policy = replace(Policy(), scoring=replace(Policy().scoring, **{key: 4.0}))
        base = risk_probability(state, [], now, policy)
        for strength, factor in ((1.0, 4.0), (0.5, 2.0)):
            fired = Fired(code, strength, 3.0, 1.0, 2.0, "w", (), "d")
            p = risk_probability(state, [fired], now, policy)
            assert p / (1 - p) == pytest.approx(factor * base / (1 - base)), (code, strength)
        fired = Fired(code, 1.0, 3.0, 1.0, 2.0, "w", (), "d")
        assert _clause_he(fired) != code
    # Every signal but the silence and the slower buying, which the purchase
    # model already counts, raises the risk.
    assert {c for c in CODES if odds_multiplier(c, Policy()) > 1.0} == set(CODES) - {
        "OVERDUE", "FREQUENCY_DROP"}
