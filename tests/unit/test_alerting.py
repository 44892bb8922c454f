"""The alert life cycle: one alert per episode, escalation, hysteresis, stable ids."""

from __future__ import annotations

import pytest

from stream_app.core.alerting import alert_id, assess
from stream_app.core.policy import Policy, policy_from_mapping
from stream_app.core.records import ChurnAlert
from stream_app.core.report import report
from stream_app.core.state import CustomerState, apply_feedback

from ..conftest import epoch
from ..helpers import buyer, complaint, purchase

POLICY = Policy()


def _complaining(cid: str = "c1", amount: float = 50.0) -> CustomerState:
    """A customer who bought every month for a year (the last purchase on day
    360), then, two months on, complains three times in five days.

    The silence alone puts their chance of no purchase in 90 days at about a
    quarter; the complaint burst raises it past [alerting].open_at.  OVERDUE
    is not firing yet: for a monthly buyer a 70-day silence is not unusual.
    """
    s = buyer(30, 360, cid=cid, amount=amount)
    for day in (425, 427, 429):
        complaint(s, day, severity=4)
    return s


def test_one_alert_per_episode_then_escalation_when_a_signal_joins() -> None:
    s = _complaining()
    first = assess(s, epoch(430), POLICY, emitted_at=0)
    assert first is not None and [x.code for x in first.signals] == ["COMPLAINTS"]
    assert first.episode == 1
    assert first.risk_score >= POLICY.alerting.open_at
    assert {a.code for a in first.actions} >= {"ACT_ON_COMPLAINT", "LISTEN"}
    # Same signals, about the same risk: no second page.
    assert assess(s, epoch(431), POLICY, emitted_at=0) is None
    # The customer still does not buy: after 80 days of silence OVERDUE joins
    # and the alert escalates.
    second = assess(s, epoch(440), POLICY, emitted_at=0)
    assert second is not None
    assert {x.code for x in second.signals} == {"COMPLAINTS", "OVERDUE"}
    assert second.episode == 1 and second.risk_score > first.risk_score
    assert second.alert_id != first.alert_id


def test_without_the_complaints_the_same_silence_raises_no_alert() -> None:
    # The burst is what opens the episode: the same customer without it stays
    # below the threshold (and no signal would give a reason anyway).
    s = buyer(30, 360)
    assert assess(s, epoch(430), POLICY, emitted_at=0) is None
    quiet = report(s, POLICY, epoch(430))["risk_score"]
    assert quiet < POLICY.alerting.open_at
    complained = _complaining("c2")
    assert assess(complained, epoch(430), POLICY, emitted_at=0) is not None
    assert complained.risk > quiet


def test_episode_closes_when_risk_falls_and_a_new_one_opens_later() -> None:
    s = _complaining()
    assert assess(s, epoch(430), POLICY, emitted_at=0) is not None
    for day in range(431, 475, 7):  # buys again, weekly; the complaints age out
        purchase(s, day)
    assert assess(s, epoch(475), POLICY, emitted_at=0) is None
    assert s.alerting.open is False and s.risk < POLICY.alerting.close_below
    for day in (545, 547, 549):  # silent again for two months, complaining again
        complaint(s, day, severity=4)
    again = assess(s, epoch(550), POLICY, emitted_at=0)
    assert again is not None and again.episode == 2


def test_alert_id_is_deterministic_and_changes_with_its_inputs() -> None:
    a = alert_id("c1", 1, 0, ["COMPLAINTS"])
    assert a == alert_id("c1", 1, 0, ["COMPLAINTS"])
    assert len({a, alert_id("c2", 1, 0, ["COMPLAINTS"]), alert_id("c1", 2, 0, ["COMPLAINTS"]),
                alert_id("c1", 1, 1, ["COMPLAINTS"]), alert_id("c1", 1, 0, ["OVERDUE"])}) == 5


def test_state_round_trips_through_bytes() -> None:
    s = _complaining()
    assert assess(s, epoch(430), POLICY, emitted_at=0) is not None
    again = CustomerState.from_bytes(s.to_bytes())
    assert again == s
    assert again.alerting.episode == 1


def test_route_sends_the_customers_worth_a_call_to_the_call_centre() -> None:
    def alert_for(amount: float, policy: Policy = POLICY) -> ChurnAlert:
        s = _complaining(f"spends-{amount:g}", amount=amount)
        alert = assess(s, epoch(430), policy, emitted_at=0)
        assert alert is not None
        spent = s.spend_last_year(epoch(430), policy.history.bucket_days)
        assert alert.value_at_risk == round(alert.risk_score / 100 * spent, 2)
        assert alert.horizon_days == policy.model.horizon_days
        return alert

    call_at = POLICY.scoring.call_value_at_risk
    cheap, middling = alert_for(5.0), alert_for(100.0)
    # The same risk, different stakes: the value at risk decides.
    assert cheap.risk_score == middling.risk_score
    assert cheap.value_at_risk < call_at <= middling.value_at_risk
    assert cheap.route == "marketing" and middling.route == "call_center"
    # A high-value customer goes to the call centre whatever the value at risk.
    calls_rarely = policy_from_mapping({"scoring": {"call_value_at_risk": 1e6}})
    assert alert_for(100.0, calls_rarely).route == "marketing"
    assert alert_for(1000.0, calls_rarely).route == "call_center"


def test_feedback_contacted_quiets_escalation_for_a_while() -> None:
    s = _complaining()
    assert assess(s, epoch(430), POLICY, emitted_at=0) is not None
    apply_feedback(s, "contacted", epoch(431), POLICY)  # quiet for 14 days
    # OVERDUE joins during the quiet period: no page, the episode stays open...
    assert assess(s, epoch(440), POLICY, emitted_at=0) is None
    assert s.alerting.open and s.alerting.feedback == {"contacted": 1}
    assert "OVERDUE" in s.active
    # ...and once it is over, the new signal escalates.
    later = assess(s, epoch(446), POLICY, emitted_at=0)
    assert later is not None and "OVERDUE" in {x.code for x in later.signals}
    assert later.episode == 1


def test_feedback_false_alarm_ends_the_episode_and_do_not_contact_silences() -> None:
    s = _complaining()
    assert assess(s, epoch(430), POLICY, emitted_at=0) is not None
    apply_feedback(s, "false_alarm", epoch(431), POLICY)
    assert not s.alerting.open
    assert assess(s, epoch(432), POLICY, emitted_at=0) is None  # quiet after feedback
    other = _complaining("c2")
    apply_feedback(other, "do_not_contact", epoch(380), POLICY)
    assert assess(other, epoch(430), POLICY, emitted_at=0) is None
    looked_up = report(other, POLICY, epoch(430))  # still scored, for look-ups
    assert looked_up["risk_score"] > POLICY.alerting.open_at
    assert looked_up["episode"]["suppressed"] == "do_not_contact"


def test_churned_customers_are_silent_until_they_buy_again() -> None:
    back, gone = _complaining("back"), _complaining("gone")
    for s in (back, gone):
        apply_feedback(s, "churned", epoch(429.5), POLICY)
        assert assess(s, epoch(430), POLICY, emitted_at=0) is None
    purchase(back, 460)
    for s in (back, gone):
        for day in (525, 527, 529):
            complaint(s, day, severity=4)
    assert assess(back, epoch(530), POLICY, emitted_at=0) is not None
    # Without the purchase the reported loss stands, however high the risk.
    assert assess(gone, epoch(530), POLICY, emitted_at=0) is None
    looked_up = report(gone, POLICY, epoch(530))
    assert looked_up["risk_score"] > POLICY.alerting.open_at
    assert looked_up["episode"]["suppressed"] == "lost"


def test_a_signal_alerted_on_recently_does_not_open_a_new_episode() -> None:
    # A short cooldown, so that it ends before OVERDUE joins (day 439).
    policy = policy_from_mapping({"alerting": {"cooldown_days": 5}})
    s = _complaining()
    assert assess(s, epoch(430), policy, emitted_at=0) is not None
    s.alerting.open = False  # as if the risk had dipped and the episode closed
    assert assess(s, epoch(433), policy, emitted_at=0) is None  # COMPLAINTS in cooldown
    assert s.risk >= policy.alerting.open_at and s.active == ["COMPLAINTS"]
    reopened = assess(s, epoch(436), policy, emitted_at=0)  # cooldown over
    assert reopened is not None and [x.code for x in reopened.signals] == ["COMPLAINTS"]
    assert reopened.episode == 2


def test_a_bigger_basket_lowers_the_odds_by_the_elasticity_once_the_typical_is_known() -> None:
    from stream_app.core.scoring import basket_odds, purchase_risk

    small, big = buyer(20, 200, amount=25.0), buyer(20, 200, amount=100.0)
    now = epoch(260)
    # Not known yet (no fit): the basket does not count.
    assert Policy().model.typical_basket == 0.0
    assert basket_odds(big, Policy()) == 1.0
    known = policy_from_mapping({"model": {"typical_basket": 50.0}})
    e = known.model.basket_elasticity
    assert e == 0.2
    assert basket_odds(big, known) == 2.0 ** -e and basket_odds(small, known) == 2.0 ** e
    plain = purchase_risk(big, now, Policy())
    assert plain == purchase_risk(small, now, Policy())  # the same purchase days

    def odds(p: float) -> float:
        return p / (1 - p)

    assert odds(purchase_risk(big, now, known)) == pytest.approx(odds(plain) * 2.0 ** -e)
    assert odds(purchase_risk(small, now, known)) == pytest.approx(odds(plain) * 2.0 ** e)
    off = policy_from_mapping({"model": {"typical_basket": 50.0, "basket_elasticity": 0}})
    assert purchase_risk(big, now, off) == plain
