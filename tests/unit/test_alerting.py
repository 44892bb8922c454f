"""The alert life cycle: one alert per episode, escalation, hysteresis, stable ids."""

from __future__ import annotations

from stream_app.alerting import alert_id, assess
from stream_app.policy import Policy
from stream_app.state import CustomerState, apply_feedback

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


def _complaining(cid: str = "c1") -> CustomerState:
    s = buyer(7, 200, cid=cid)
    for day in (195, 197, 199):
        complaint(s, day, severity=4)
    return s


def test_feedback_contacted_quiets_escalation_for_a_while() -> None:
    s = _complaining()
    assert assess(s, epoch(200), POLICY, emitted_at=0) is not None
    apply_feedback(s, "contacted", epoch(212), POLICY)  # quiet for 14 days
    # OVERDUE joins during the quiet period: no page, the episode stays open...
    assert assess(s, epoch(225), POLICY, emitted_at=0) is None
    assert s.alerting.open and s.alerting.feedback == {"contacted": 1}
    assert "OVERDUE" in s.active
    # ...and once it is over, the new signal escalates.
    later = assess(s, epoch(227), POLICY, emitted_at=0)
    assert later is not None and "OVERDUE" in {x.code for x in later.signals}
    assert later.episode == 1


def test_feedback_false_alarm_ends_the_episode_and_do_not_contact_silences() -> None:
    s = _complaining()
    assert assess(s, epoch(200), POLICY, emitted_at=0) is not None
    apply_feedback(s, "false_alarm", epoch(201), POLICY)
    assert not s.alerting.open
    assert assess(s, epoch(202), POLICY, emitted_at=0) is None  # quiet after feedback
    other = _complaining("c2")
    apply_feedback(other, "do_not_contact", epoch(150), POLICY)
    assert assess(other, epoch(200), POLICY, emitted_at=0) is None
    assert other.risk > POLICY.alerting.open_at  # still scored, for look-ups


def test_churned_customers_are_silent_until_they_buy_again() -> None:
    s = _complaining()
    apply_feedback(s, "churned", epoch(199.5), POLICY)
    assert assess(s, epoch(200), POLICY, emitted_at=0) is None
    purchase(s, 230)
    for day in (231, 232, 233):
        complaint(s, day, severity=4)
    assert assess(s, epoch(234), POLICY, emitted_at=0) is not None


def test_a_signal_alerted_on_recently_does_not_open_a_new_episode() -> None:
    s = _complaining()
    assert assess(s, epoch(200), POLICY, emitted_at=0) is not None
    s.alerting.open = False  # as if the risk had dipped and the episode closed
    assert assess(s, epoch(205), POLICY, emitted_at=0) is None  # COMPLAINTS in cooldown
    assert assess(s, epoch(216), POLICY, emitted_at=0) is not None  # cooldown over
