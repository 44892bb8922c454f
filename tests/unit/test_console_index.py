"""The console's queue: the cluster's alerts and outcomes as the topics tell them."""

from __future__ import annotations

import pytest

from stream_app.interfaces.console.index import AlertIndex, Filter, FilterError, parse_filter

from .console_samples import alert, feedback


def test_the_queue_shows_each_episode_once_by_its_latest_alert_riskiest_money_first() -> None:
    ix = AlertIndex()
    ix.add_alert(alert("A", risk=40, value=900, ts="2025-03-01T00:00:00Z"))
    ix.add_alert(alert("A", risk=70, value=1200, ts="2025-03-05T00:00:00Z", n=1))
    ix.add_alert(alert("B", risk=95, value=100))
    ix.add_alert(alert("C", risk=50, value=5000))
    assert not ix.add_alert(alert("B", risk=95, value=100)), "a redelivered alert is the same"
    rows = ix.rows(Filter())
    assert [(r.alert["customer_id"], r.alert["risk_score"]) for r in rows] == [
        ("C", 50), ("A", 70), ("B", 95)]
    assert rows[1].opened == "2025-03-01T00:00:00Z"
    assert [r.alert["customer_id"] for r in ix.rows(Filter(sort="risk"))] == ["B", "A", "C"]


def test_outcomes_mark_episodes_worked_and_closing_ones_leave_the_open_queue() -> None:
    ix = AlertIndex()
    ix.add_alert(alert("A"))
    ix.add_alert(alert("B"))
    ix.add_alert(alert("C"))
    ix.add_feedback(feedback("A", "contacted"))
    ix.add_feedback(feedback("B", "retained", alert_id="B-1-0"))
    # Feedback dated before any alert of the customer, with no alert id: about no episode.
    ix.add_feedback(feedback("C", "false_alarm", ts="2024-01-01T00:00:00Z"))
    assert {r.alert["customer_id"]: r.status for r in ix.rows(Filter())} == {
        "A": "contacted", "C": "new"}
    assert [r.alert["customer_id"] for r in ix.rows(Filter(status="closed"))] == ["B"]
    assert len(ix.rows(Filter(status="all"))) == 3
    # A new episode after the customer was retained is open again.
    ix.add_alert(alert("B", episode=2, ts="2025-06-01T00:00:00Z"))
    assert {(r.alert["customer_id"], r.alert["episode"]) for r in ix.rows(Filter())} == {
        ("A", 1), ("B", 2), ("C", 1)}
    assert ix.counts()["closed"] == 1


def test_filters_by_route_severity_signal_and_date() -> None:
    ix = AlertIndex()
    ix.add_alert(alert("A", route="marketing", severity="medium", codes=("OVERDUE",),
                       ts="2025-01-10T00:00:00Z"))
    ix.add_alert(alert("B", codes=("COMPLAINTS", "HOSTILE_TONE"), ts="2025-02-10T00:00:00Z"))

    def ids(**query: str) -> list[str]:
        return sorted(r.alert["customer_id"] for r in ix.rows(parse_filter(query)))

    assert ids(route="marketing") == ["A"]
    assert ids(severity="high,critical") == ["B"]
    assert ids(signal="HOSTILE_TONE") == ["B"]
    assert ids(since="2025-02-01") == ["B"]
    assert ids(until="2025-01-10") == ["A"]
    assert ids(customer="b") == ["B"]
    with pytest.raises(FilterError, match="severity: urgent is not one of low"):
        parse_filter({"severity": "urgent"})
    with pytest.raises(FilterError, match="since: give a date"):
        parse_filter({"since": "last week"})


def test_search_finds_the_exact_id_first() -> None:
    ix = AlertIndex()
    for cid in ("C0012", "C001", "XC001"):
        ix.add_alert(alert(cid))
    assert ix.customers("c001") == ["C001", "C0012", "XC001"]
    assert ix.customers("  ") == []
