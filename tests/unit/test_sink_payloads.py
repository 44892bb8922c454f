"""The ``--format`` mappings, each delivered to a local endpoint that checks
the body as the tool's API documents it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest

from stream_app.core.alerting import alert_id
from stream_app.core.records import Action, ChurnAlert, SignalEvidence, asdict
from stream_app.interfaces.sink import payloads
from stream_app.interfaces.sink.config import SinkSettings, validate
from stream_app.interfaces.sink.delivery import deliver

from .test_contracts import validator
from .test_sink_delivery import Endpoint, Request


def alert(n: int = 2, customer: str = "C000123") -> ChurnAlert:
    return ChurnAlert(
        alert_id=alert_id(customer, n, 0, ["FREQUENCY_DROP", "COMPLAINTS"]),
        customer_id=customer, ts="2025-06-01T09:30:00Z",
        emitted_at="2025-06-01T09:30:02Z", risk_score=71.5, severity="high",
        signals=[SignalEvidence("FREQUENCY_DROP", 0.2, 1.1, 0.5, "90d", ["p1"], "buys less"),
                 SignalEvidence("COMPLAINTS", 3, 0, 2, "30d", ["k1", "k2", "k3"],
                                "3 complaints")],
        actions=[Action("ACT_ON_COMPLAINT", "3 open complaints <billing & delivery>", "phone"),
                 Action("REACH_OUT", "silent for 40 days")],
        route="call_center", summary="Buys less and complained 3 times <billing>.",
        summary_he="קונה פחות", episode=n, horizon_days=90.0, value_at_risk=412.3)


def raw(a: ChurnAlert) -> bytes:
    return orjson.dumps(a)


def test_the_sample_is_a_valid_alert() -> None:
    validator("churn-alerts").validate(asdict(alert()))


BRAZE_EVENT = {
    "type": "object", "required": ["external_id", "name", "time", "properties"],
    "properties": {"external_id": {"type": "string"}, "name": {"type": "string"},
                   "time": {"type": "string", "format": "date-time"},
                   "properties": {"type": "object"}},
}
BRAZE = {"type": "object", "required": ["events"], "additionalProperties": False,
         "properties": {"events": {"type": "array", "minItems": 1, "items": BRAZE_EVENT}}}
HUBSPOT = {
    "type": "object", "required": ["eventName", "occurredAt", "properties"],
    "oneOf": [{"required": ["objectId"]}, {"required": ["email"]}],
    "properties": {"eventName": {"type": "string"}, "occurredAt": {"type": "string"},
                   "objectId": {"type": "string"}, "email": {"type": "string"},
                   # flat: strings and numbers only
                   "properties": {"type": "object", "additionalProperties":
                                  {"type": ["string", "number"]}}},
}
SLACK = {
    "type": "object", "required": ["text", "blocks"],
    "properties": {"text": {"type": "string", "minLength": 1},
                   "blocks": {"type": "array", "maxItems": 50, "items": {
                       "type": "object", "required": ["type"],
                       "properties": {"type": {"enum": ["section", "context", "header",
                                                        "divider"]}}}}},
}
SHAPES = {"braze": BRAZE, "hubspot": HUBSPOT, "slack": SLACK}


@pytest.fixture
def checking() -> Iterator[Endpoint]:
    """An endpoint that answers 400 to a body not in its tool's documented shape."""

    def answer(r: Request, n: int) -> tuple[int, dict[str, str], bytes]:
        fmt = r.path.strip("/")
        try:
            if fmt in SHAPES:
                jsonschema.validate(r.json, SHAPES[fmt])
            else:
                validator("churn-alerts").validate(r.json)
        except jsonschema.ValidationError as exc:
            return 400, {}, exc.message.encode()
        return (204 if fmt == "hubspot" else 200), {}, b""

    e = Endpoint(answer=answer)
    yield e
    e.close()


def post(endpoint: Endpoint, fmt: str, a: ChurnAlert, **changes: Any) -> Request:
    s = validate(SinkSettings(sink_url=endpoint.url.rsplit("/", 2)[0] + "/" + fmt,
                              sink_format=fmt, **changes))
    data = raw(a)

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            body = payloads.body(data, payloads.parse(data), s)
            outcome = await deliver(session, s, a.alert_id, body, lambda: False,
                                    lambda _: asyncio.sleep(0, False))
            assert outcome.delivered, outcome.detail

    asyncio.run(go())
    r = endpoint.requests[-1]
    assert r.headers["idempotency-key"] == a.alert_id
    return r


def test_raw_posts_the_alert_as_the_topic_has_it(checking: Endpoint) -> None:
    a = alert()
    r = post(checking, "raw", a)
    assert r.body == raw(a)


def test_braze_users_track(checking: Endpoint) -> None:
    r = post(checking, "braze", alert(), sink_event_name="churn_risk")
    (event,) = r.json["events"]
    assert event["external_id"] == "C000123" and event["name"] == "churn_risk"
    assert event["time"] == "2025-06-01T09:30:00Z"
    p = event["properties"]
    assert p["alert_id"] == alert().alert_id and p["risk_score"] == 71.5
    assert p["signals"] == ["FREQUENCY_DROP", "COMPLAINTS"]
    assert p["actions"] == ["ACT_ON_COMPLAINT", "REACH_OUT"]
    assert (p["severity"], p["route"], p["value_at_risk"]) == ("high", "call_center", 412.3)


@pytest.mark.parametrize("identity", ["objectId", "email"])
def test_hubspot_custom_behavioural_event(checking: Endpoint, identity: str) -> None:
    a = alert(customer="ann@example.com" if identity == "email" else "C000123")
    r = post(checking, "hubspot", a, sink_event_name="pe1234567_churn_alert",
             sink_hubspot_identity=identity)
    body = r.json
    assert body["eventName"] == "pe1234567_churn_alert"
    assert body[identity] == a.customer_id
    assert body["occurredAt"] == a.ts
    p = body["properties"]
    assert p["alert_id"] == a.alert_id and p["signals"] == "FREQUENCY_DROP,COMPLAINTS"
    assert p["risk_score"] == 71.5 and p["episode"] == 2


def test_slack_message_for_a_team_channel(checking: Endpoint) -> None:
    r = post(checking, "slack", alert())
    body = r.json
    assert "C000123" in body["text"] and "high" in body["text"]
    text = orjson.dumps(body).decode()
    assert "71.5%" in text and "FREQUENCY_DROP, COMPLAINTS" in text
    assert alert().alert_id in text, "the idempotency key is in the payload too"
    # Slack's markup characters are escaped, so a summary cannot make a link.
    assert "&lt;billing &amp; delivery&gt;" in text and "<billing" not in text


def test_a_body_in_the_wrong_shape_is_what_the_checking_endpoint_refuses(
        checking: Endpoint) -> None:
    """The endpoint's checks can fail: a raw alert is not a Braze request."""
    s = validate(SinkSettings(sink_url=checking.url.rsplit("/", 2)[0] + "/braze"))

    async def go() -> str:
        async with aiohttp.ClientSession() as session:
            o = await deliver(session, s, "a", raw(alert()), lambda: False,
                              lambda _: asyncio.sleep(0, False))
            return o.verdict

    assert asyncio.run(go()) == "refused"


@pytest.mark.parametrize(("value", "code"), [
    (b"", "empty"), (b"{not json", "not_json"), (b"[1]", "not_object"),
    (b'{"customer_id": "c", "ts": "2025-01-01T00:00:00Z"}', "missing_field"),
])
def test_a_message_that_is_not_an_alert_is_named(value: bytes, code: str) -> None:
    with pytest.raises(payloads.NotAnAlert) as err:
        payloads.parse(value)
    assert err.value.code == code
