"""The console's picture of the cluster: every alert and outcome, from the topics.

Built by reading ``churn-alerts`` and ``feedback`` from the beginning, so it
is the same in every console process and a restart rebuilds it; nothing is
kept anywhere else.  Alerts are keyed by ``alert_id`` (a redelivered alert
is the same alert) and feedback by ``event_id``; an episode (customer,
episode number) is shown by its latest alert, and its status comes from the
outcomes reported for it.

Pure: no Kafka, no HTTP.  The follower feeds it; the views query it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...core.decoding import parse_ts
from ...core.records import FEEDBACK_OUTCOMES, ROUTES, SEVERITIES, SIGNAL_CODES

#: Outcomes that end an episode (as the worker's ``apply_feedback`` does).
CLOSING = frozenset({"retained", "false_alarm", "churned", "do_not_contact"})
#: What the queue can show: ``open`` is ``new`` and ``contacted`` together.
STATUSES = ("open", "new", "contacted", "closed", "all")
SORTS = ("value", "risk", "newest")
_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def _ts(record: dict[str, Any]) -> float:
    t = parse_ts(str(record.get("ts", "")))
    return t if isinstance(t, float) else 0.0


@dataclass(frozen=True, slots=True)
class Filter:
    """A queue or ``GET /alerts`` question.  Empty tuples mean "any"."""

    routes: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    status: str = "open"
    customer: str = ""
    sort: str = "value"


class FilterError(ValueError):
    """A filter value that is not one of the known ones (the message says which are)."""


def _choices(name: str, text: str | None, allowed: Iterable[str]) -> tuple[str, ...]:
    allowed = tuple(allowed)
    values = tuple(v.strip() for v in (text or "").split(",") if v.strip())
    wrong = [v for v in values if v not in allowed]
    if wrong:
        raise FilterError(f"{name}: {', '.join(wrong)} is not one of {', '.join(allowed)}")
    return values


def _day(name: str, text: str | None, end: bool) -> float | None:
    """A date (the whole day, UTC) or an RFC 3339 time."""
    if not text:
        return None
    text = text.strip()
    if len(text) == 10:
        text += "T23:59:59.999999Z" if end else "T00:00:00Z"
    t = parse_ts(text)
    if isinstance(t, str):
        raise FilterError(f"{name}: give a date such as 2025-06-30 or a time such as "
                          f"2025-06-30T12:00:00Z, got {text[:40]!r}")
    return t


def parse_filter(query: Any, default_status: str = "open") -> Filter:
    """The filter in a request's query string (any mapping of str to str)."""
    status = query.get("status") or default_status
    if status not in STATUSES:
        raise FilterError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    sort = query.get("sort") or "value"
    if sort not in SORTS:
        raise FilterError(f"sort: {sort!r} is not one of {', '.join(SORTS)}")
    return Filter(
        routes=_choices("route", query.get("route"), ROUTES),
        severities=_choices("severity", query.get("severity"), SEVERITIES),
        signals=_choices("signal", query.get("signal"), SIGNAL_CODES),
        since=_day("since", query.get("since"), end=False),
        until=_day("until", query.get("until"), end=True),
        status=status, customer=(query.get("customer") or "").strip(), sort=sort)


@dataclass(slots=True)
class Row:
    """One episode in the queue: its latest alert and what was reported about it."""

    alert: dict[str, Any]
    status: str
    outcomes: list[dict[str, Any]]
    #: The episode's first alert (when it was opened).
    opened: str


@dataclass
class AlertIndex:
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: customer -> their alerts, in event-time order.
    by_customer: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: (customer, episode) -> [first alert, latest alert].
    episodes: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    feedback: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_customer_feedback: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Goes up by one with every change: the live view asks whether it moved.
    version: int = 0

    def add_alert(self, alert: dict[str, Any]) -> bool:
        """Take one alert from the topic; False if it was already known."""
        aid = alert.get("alert_id")
        cid = alert.get("customer_id")
        if not isinstance(aid, str) or not isinstance(cid, str) or aid in self.alerts:
            return False
        self.alerts[aid] = alert
        mine = self.by_customer.setdefault(cid, [])
        keys = [(_ts(a), a.get("emitted_at", "")) for a in mine]
        mine.insert(bisect.bisect_right(keys, (_ts(alert), alert.get("emitted_at", ""))),
                    alert)
        key = (cid, int(alert.get("episode", 0)))
        ep = self.episodes.get(key)
        if ep is None:
            self.episodes[key] = [alert, alert]
        else:
            if _ts(alert) < _ts(ep[0]):
                ep[0] = alert
            if _ts(alert) >= _ts(ep[1]):
                ep[1] = alert
        self.version += 1
        return True

    def add_feedback(self, event: dict[str, Any]) -> bool:
        """Take one feedback event (already valid); False if it was already known."""
        eid, cid = event.get("event_id"), event.get("customer_id")
        if not isinstance(eid, str) or not isinstance(cid, str) or eid in self.feedback:
            return False
        self.feedback[eid] = event
        mine = self.by_customer_feedback.setdefault(cid, [])
        mine.insert(bisect.bisect_right([_ts(f) for f in mine], _ts(event)), event)
        self.version += 1
        return True

    def episode_of(self, event: dict[str, Any]) -> int | None:
        """The episode a feedback event is about: its alert's, or else the
        customer's latest episode alerted on at or before the event's time."""
        cid = event["customer_id"]
        alert = self.alerts.get(event.get("alert_id") or "")
        if alert is not None and alert["customer_id"] == cid:
            return int(alert["episode"])
        at = _ts(event)
        before = [a for a in self.by_customer.get(cid, ()) if _ts(a) <= at]
        return int(before[-1]["episode"]) if before else None

    def outcomes(self, customer_id: str, episode: int) -> list[dict[str, Any]]:
        return [f for f in self.by_customer_feedback.get(customer_id, ())
                if self.episode_of(f) == episode]

    @staticmethod
    def status_of(outcomes: list[dict[str, Any]]) -> str:
        if any(f.get("outcome") in CLOSING for f in outcomes):
            return "closed"
        return "contacted" if outcomes else "new"

    def rows(self, f: Filter) -> list[Row]:
        """The episodes that match, in the filter's order (riskiest money first)."""
        found = []
        for (cid, number), (first, latest) in self.episodes.items():
            a = latest
            if f.customer and f.customer.lower() not in cid.lower():
                continue
            if f.routes and a.get("route") not in f.routes:
                continue
            if f.severities and a.get("severity") not in f.severities:
                continue
            if f.signals and not set(f.signals) & {s.get("code") for s in a.get("signals", ())}:
                continue
            t = _ts(a)
            if (f.since is not None and t < f.since) or (f.until is not None and t > f.until):
                continue
            outcomes = self.outcomes(cid, number)
            status = self.status_of(outcomes)
            if f.status == "open" and status == "closed":
                continue
            if f.status in ("new", "contacted", "closed") and status != f.status:
                continue
            found.append(Row(a, status, outcomes, str(first.get("ts", ""))))

        def key(r: Row) -> tuple[float, ...]:
            a = r.alert
            risk, value = float(a.get("risk_score", 0)), float(a.get("value_at_risk", 0))
            if f.sort == "newest":
                return (-_ts(a), -value)
            if f.sort == "risk":
                return (-risk, -value, -_ts(a))
            return (-value, -risk, -_ts(a))

        found.sort(key=key)
        return found

    def history(self, customer_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The customer's alerts and feedback, oldest first."""
        return (list(self.by_customer.get(customer_id, ())),
                list(self.by_customer_feedback.get(customer_id, ())))

    def customers(self, text: str, limit: int = 20) -> list[str]:
        """Customers with alerts or feedback whose id contains ``text`` (exact match first)."""
        needle = text.strip().lower()
        if not needle:
            return []
        ids = set(self.by_customer) | set(self.by_customer_feedback)
        hits = sorted((c for c in ids if needle in c.lower()),
                      key=lambda c: (c.lower() != needle, not c.lower().startswith(needle), c))
        return hits[:limit]

    def counts(self) -> dict[str, int]:
        statuses = [self.status_of(self.outcomes(cid, n)) for cid, n in self.episodes]
        return {"alerts": len(self.alerts), "episodes": len(self.episodes),
                "feedback": len(self.feedback),
                **{s: statuses.count(s) for s in ("new", "contacted", "closed")}}


#: The outcome buttons, in the order the card shows them, with their labels.
OUTCOME_LABELS: dict[str, str] = {
    "contacted": "Contacted", "retained": "Retained", "false_alarm": "False alarm",
    "churned": "Churned", "do_not_contact": "Do not contact",
}
assert tuple(sorted(OUTCOME_LABELS)) == tuple(sorted(FEEDBACK_OUTCOMES))
SEVERITY_RANK = _SEVERITY_RANK
