"""The ``--format`` mappings: one churn alert as the body a tool's API takes.

Each mapping takes the alert as it is on the topic (a dict following
``schemas/churn-alerts.v2.json``) and returns the JSON body to POST.  Every
body carries ``alert_id``, the idempotency key, so a receiver that ignores
the ``Idempotency-Key`` header can still de-duplicate.

* ``raw``: the alert itself, as the topic has it.
* ``braze``: Braze's ``POST /users/track``: one custom event for the user
  whose ``external_id`` is the customer id.
* ``hubspot``: HubSpot's custom behavioural events, ``POST /events/v3/send``:
  the event for the contact whose record id (``objectId``) or e-mail is the
  customer id.  HubSpot takes flat properties of strings and numbers only,
  each defined on the event first; the list codes are joined by commas.
* ``slack``: a Slack incoming-webhook message (Block Kit, with a plain
  ``text`` for notifications), for a team channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .config import SinkSettings

Alert = dict[str, Any]


def _codes(items: Any) -> list[str]:
    return [str(i.get("code")) for i in items or [] if isinstance(i, dict)]


def properties(alert: Alert) -> dict[str, Any]:
    """The alert's fields a marketing tool can filter and segment by, flat."""
    return {
        "alert_id": alert["alert_id"],
        "risk_score": alert.get("risk_score"),
        "horizon_days": alert.get("horizon_days"),
        "value_at_risk": alert.get("value_at_risk"),
        "severity": alert.get("severity"),
        "route": alert.get("route"),
        "episode": alert.get("episode"),
        "signals": _codes(alert.get("signals")),
        "actions": _codes(alert.get("actions")),
        "summary": alert.get("summary"),
        "emitted_at": alert.get("emitted_at"),
    }


def braze(alert: Alert, s: SinkSettings) -> dict[str, Any]:
    return {"events": [{
        "external_id": alert["customer_id"],
        "name": s.sink_event_name,
        "time": alert["ts"],
        "properties": properties(alert),
    }]}


def hubspot(alert: Alert, s: SinkSettings) -> dict[str, Any]:
    props = {k: (",".join(v) if isinstance(v, list) else v)
             for k, v in properties(alert).items() if v is not None}
    return {
        "eventName": s.sink_event_name,
        s.sink_hubspot_identity: alert["customer_id"],
        "occurredAt": alert["ts"],
        "properties": props,
    }


def _escape(text: Any) -> str:
    """Slack's mrkdwn treats ``&``, ``<`` and ``>`` as markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SEVERITY_MARK = {"low": ":large_blue_circle:", "medium": ":large_yellow_circle:",
                  "high": ":large_orange_circle:", "critical": ":red_circle:"}


def slack(alert: Alert, s: SinkSettings) -> dict[str, Any]:
    severity = str(alert.get("severity", ""))
    customer = _escape(alert["customer_id"])
    risk = alert.get("risk_score")
    headline = (f"{_SEVERITY_MARK.get(severity, ':warning:')} *{_escape(severity)}* churn "
                f"risk for customer `{customer}`"
                + (f": {risk:g}% chance of no purchase in {alert.get('horizon_days', 90):g} "
                   "days" if isinstance(risk, int | float) else ""))
    actions = [a for a in alert.get("actions") or [] if isinstance(a, dict)]
    fields = [
        {"type": "mrkdwn", "text": f"*Value at risk*\n{alert.get('value_at_risk', 0):,.2f}"},
        {"type": "mrkdwn", "text": f"*Route*\n{_escape(alert.get('route', ''))}"},
        {"type": "mrkdwn", "text": "*Signals*\n"
         + _escape(", ".join(_codes(alert.get("signals"))) or "none")},
        {"type": "mrkdwn", "text": f"*Episode*\n{alert.get('episode', '')}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": _escape(alert.get("summary", ""))}},
        {"type": "section", "fields": fields},
    ]
    if actions:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*What to do*\n"
                       + "\n".join(f"• {_escape(a.get('code'))}: {_escape(a.get('reason', ''))}"
                                   for a in actions)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                   f"alert {_escape(alert['alert_id'])} · tripped {_escape(alert.get('ts'))}"}]})
    return {"text": f"{_escape(severity)} churn risk for customer {customer}: "
                    f"{_escape(alert.get('summary', ''))}",
            "blocks": blocks}


MAPPINGS: dict[str, Callable[[Alert, SinkSettings], dict[str, Any]]] = {
    "braze": braze, "hubspot": hubspot, "slack": slack,
}


class NotAnAlert(ValueError):
    """The message cannot be delivered as an alert; the text says why."""

    def __init__(self, why: str, code: str) -> None:
        super().__init__(why)
        self.code = code


def parse(raw: bytes | None) -> Alert:
    """The alert in a message's value, with the fields every mapping needs."""
    if not raw:
        raise NotAnAlert("empty message", "empty")
    try:
        alert = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise NotAnAlert("not valid UTF-8 JSON", "not_json") from None
    if not isinstance(alert, dict):
        raise NotAnAlert("expected a JSON object (a churn alert)", "not_object")
    for name in ("alert_id", "customer_id", "ts"):
        if not isinstance(alert.get(name), str) or not alert[name]:
            raise NotAnAlert(f"missing required field {name!r} of a churn alert",
                             "missing_field")
    return alert


def body(raw: bytes, alert: Alert, s: SinkSettings) -> bytes:
    """The request body: the message's own bytes for ``raw``, else the mapping's."""
    if s.sink_format == "raw":
        return raw
    return orjson.dumps(MAPPINGS[s.sink_format](alert, s))
