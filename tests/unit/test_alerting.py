"""The alert life cycle: one alert per episode, escalation, hysteresis, stable ids."""

from __future__ import annotations

from stream_app.alerting import alert_id, assess
from stream_app.policy import Policy
from stream_app.state import CustomerState

from ..conftest import epoch
from ..helpers import buyer, complaint, purchase

POLICY = Policy()


def test_one_alert_per_episode_then_escalation_when_a_signal_joins() -> None:
    s = buyer(7, 200)
    for day in (195, 197, 199):
        complaint(s, day, severity=4)
    first = assess(s, epoch(200), POLICY, emitted_at=0)
    assert first is not None and [x.code for x in first.signals] == ["COMPLAINTS"]
    assert first.episode == 1
    assert {a.code for a in first.actions} >= {"ACT_ON_COMPLAINT", "LISTEN"}
    # Same signals, same risk: no second page.
    assert assess(s, epoch(201), POLICY, emitted_at=0) is None
    # The customer also stops buying: OVERDUE joins, the alert escalates.
    second = assess(s, epoch(225), POLICY, emitted_at=0)
    assert second is not None
    assert {x.code for x in second.signals} == {"COMPLAINTS", "OVERDUE"}
    assert second.episode == 1 and second.risk_score > first.risk_score
    assert second.alert_id != first.alert_id


def test_episode_closes_when_risk_falls_and_a_new_one_opens_later() -> None:
    s = buyer(7, 200)
    for day in (195, 197):
        complaint(s, day, severity=4)
    assert assess(s, epoch(200), POLICY, emitted_at=0) is not None
    for day in range(203, 260, 7):  # keeps buying; complaints age out
        purchase(s, day)
    assert assess(s, epoch(260), POLICY, emitted_at=0) is None
    assert s.alerting.open is False and s.risk == 0
    for day in (300, 302):
        complaint(s, day, severity=4)
    again = assess(s, epoch(303), POLICY, emitted_at=0)
    assert again is not None and again.episode == 2


def test_alert_id_is_deterministic_and_changes_with_its_inputs() -> None:
    a = alert_id("c1", 1, 0, ["COMPLAINTS"])
    assert a == alert_id("c1", 1, 0, ["COMPLAINTS"])
    assert len({a, alert_id("c2", 1, 0, ["COMPLAINTS"]), alert_id("c1", 2, 0, ["COMPLAINTS"]),
                alert_id("c1", 1, 1, ["COMPLAINTS"]), alert_id("c1", 1, 0, ["OVERDUE"])}) == 5


def test_state_round_trips_through_bytes() -> None:
    s = buyer(7, 200)
    complaint(s, 199, severity=5)
    assess(s, epoch(200), POLICY, emitted_at=0)
    again = CustomerState.from_bytes(s.to_bytes())
    assert again == s
    assert again.alerting.episode == 1


def test_route_sends_high_value_customers_to_the_call_centre() -> None:
    s = buyer(7, 200, amount=400.0)  # ~11,600 spent this year
    complaint(s, 199, severity=5)
    alert = assess(s, epoch(200), POLICY, emitted_at=0)
    assert alert is not None and alert.route == "call_center"
    cheap = buyer(7, 200, amount=5.0, cid="c2")
    complaint(cheap, 199, severity=5)
    alert = assess(cheap, epoch(200), POLICY, emitted_at=0)
    assert alert is not None and alert.route == "marketing"
