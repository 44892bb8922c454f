"""The contact- and text-based signals, and NEGLECTED."""

from __future__ import annotations

from stream_app.core.policy import Policy, Text
from stream_app.core.signals import (
    compensation_escalation,
    competitor_probing,
    hostile_tone,
    neglected,
    technical_faults,
    unresponsive,
)
from stream_app.core.state import new_state

from ..conftest import epoch
from ..helpers import buyer, complaint, contact

POLICY = Policy()


# -- UNRESPONSIVE ---------------------------------------------------------------

def test_unresponsive_on_a_streak_of_unanswered_days() -> None:
    s = buyer(7, 200)
    for day in (150, 160, 170):
        contact(s, day, outcome="answered")
    for day in (180, 188, 196):
        contact(s, day, channel="sms", outcome="ignored")
    fired = unresponsive.evaluate(s, epoch(197), POLICY)
    assert fired is not None and fired.value == 3
    assert len(fired.evidence) == 3 and "sms" in fired.detail


def test_a_burst_of_our_own_calls_in_one_day_is_not_silence() -> None:
    s = buyer(7, 200)
    contact(s, 150, outcome="answered")
    for hour in range(8):
        contact(s, 190 + hour / 24, outcome="no_answer")
    assert len(s.outreach_day) == 2  # two days of outreach, not nine attempts
    assert unresponsive.evaluate(s, epoch(191), POLICY) is None


def test_the_customer_calling_back_answers_that_days_outreach() -> None:
    s = buyer(7, 200)
    for day in (180, 188):
        contact(s, day, outcome="no_answer")
    contact(s, 196, outcome="no_answer")
    contact(s, 196.5, direction="inbound", outcome=None)
    assert unresponsive.evaluate(s, epoch(197), POLICY) is None


def test_unsubscribe_is_unresponsive_at_once() -> None:
    s = buyer(7, 200)
    contact(s, 199, channel="email", outcome="unsubscribed")
    fired = unresponsive.evaluate(s, epoch(200), POLICY)
    assert fired is not None and "unsubscribed" in fired.detail


def test_the_sweep_is_woken_when_ageing_starts_the_rate_drop_and_not_before() -> None:
    s = buyer(7, 200)
    for day in (10, 20, 30, 40):
        contact(s, day, outcome="answered")
    # In the window: half answered, the newest two not: no streak, rate 0.5.
    for day, outcome in ((150, "answered"), (152, "answered"), (154, "answered"),
                         (170, "ignored"), (175, "ignored"), (185, "answered"),
                         (190, "ignored"), (195, "ignored")):
        contact(s, day, outcome=outcome)
    now = epoch(200)
    assert unresponsive.evaluate(s, now, POLICY) is None
    due = unresponsive.next_check(s, now, POLICY)
    assert due is not None and due > now
    # Day 150 ageing out leaves 3 of 7 answered (0.43, not yet far enough);
    # day 152 leaves 2 of 6 (0.33 <= 0.4 x 1.0): the sweep wakes then.
    assert unresponsive.evaluate(s, due, POLICY) is not None
    assert unresponsive.evaluate(s, due - 86400, POLICY) is None


def test_ageing_that_cannot_change_unresponsive_wakes_nobody() -> None:
    s = buyer(7, 200)
    for day in (150, 170, 190):
        contact(s, day, outcome="answered")
    now = epoch(200)
    assert unresponsive.evaluate(s, now, POLICY) is None
    assert unresponsive.next_check(s, now, POLICY) is None


def test_a_firing_unresponsive_is_looked_at_as_each_day_ages_out() -> None:
    s = buyer(7, 200)
    for day in (180, 188, 196):
        contact(s, day, channel="sms", outcome="ignored")
    now = epoch(197)
    assert unresponsive.evaluate(s, now, POLICY) is not None
    due = unresponsive.next_check(s, now, POLICY)
    assert due is not None
    # The streak shrinks when its oldest day leaves the 60-day window.
    assert unresponsive.evaluate(s, due, POLICY) is None
    assert unresponsive.evaluate(s, due - 86400, POLICY) is not None


# -- text-based -------------------------------------------------------------------

def test_technical_faults_from_complaints_and_contact_text() -> None:
    s = buyer(7, 200)
    complaint(s, 180, category="technical_fault")
    contact(s, 190, direction="inbound", outcome=None, text="והראוטר שוב לא עובד")
    fired = technical_faults.evaluate(s, epoch(200), POLICY)
    assert fired is not None and fired.value == 2
    assert "לא עובד" in fired.detail


def test_one_fault_is_bad_luck() -> None:
    s = buyer(7, 200)
    complaint(s, 190, category="technical_fault")
    assert technical_faults.evaluate(s, epoch(200), POLICY) is None


def test_competitor_probing_in_hebrew_with_prefixes_cites_the_words() -> None:
    s = buyer(7, 200)
    contact(s, 195, direction="inbound", outcome=None,
            text="וכשהמחיר אצל המתחרים זול יותר, למה שאשאר?")
    fired = competitor_probing.evaluate(s, epoch(200), POLICY)
    assert fired is not None
    assert "המתחרים" in fired.detail and "זול יותר" in fired.detail


def test_competitor_names_come_from_the_policy() -> None:
    policy = Policy(text=Text(competitors=("Partner", "בזק")))
    s = buyer(7, 200)
    contact(s, 195, direction="inbound", outcome=None, text="שמעתי שמבזק נותנים יותר",
            policy=policy)
    assert competitor_probing.evaluate(s, epoch(200), policy) is not None
    plain = buyer(7, 200, cid="c2")
    contact(plain, 195, direction="inbound", outcome=None, text="שמעתי שמבזק נותנים יותר")
    assert competitor_probing.evaluate(plain, epoch(200), POLICY) is None


def test_competitor_probing_from_crm_tags() -> None:
    s = buyer(7, 200)
    contact(s, 195, direction="inbound", outcome=None, tags=["price-match"])
    fired = competitor_probing.evaluate(s, epoch(200), POLICY)
    assert fired is not None and "#price-match" in fired.detail


def test_hostile_tone_english_and_hebrew_and_negation() -> None:
    s = buyer(7, 200)
    contact(s, 195, direction="inbound", outcome=None, text="זו חוצפה, אתם מזלזלים")
    assert hostile_tone.evaluate(s, epoch(200), POLICY) is not None
    calm = buyer(7, 200, cid="c2")
    contact(calm, 195, direction="inbound", outcome=None,
            text="Your agent was not rude at all, thanks")
    assert hostile_tone.evaluate(calm, epoch(200), POLICY) is None


def test_compensation_escalation_on_rising_demands() -> None:
    s = buyer(7, 200)
    complaint(s, 150, compensation=50)
    complaint(s, 190, compensation=150)
    fired = compensation_escalation.evaluate(s, epoch(200), POLICY)
    assert fired is not None and "rising" in fired.detail
    one = buyer(7, 200, cid="c2")
    complaint(one, 190, compensation=50)
    assert compensation_escalation.evaluate(one, epoch(200), POLICY) is None


def test_one_large_compensation_demand_is_enough() -> None:
    s = buyer(7, 200)
    complaint(s, 190, compensation=900)
    assert compensation_escalation.evaluate(s, epoch(200), POLICY) is not None


# -- NEGLECTED --------------------------------------------------------------------

def test_a_valuable_customer_we_never_call_is_neglected() -> None:
    s = buyer(5, 300, amount=200.0)  # ~14,600 a year
    contact(s, 100)  # our last call
    due = neglected.next_check(s, epoch(150), POLICY)
    assert due is not None
    assert neglected.evaluate(s, due - 2, POLICY) is None
    fired = neglected.evaluate(s, due, POLICY)
    assert fired is not None and "heard nothing from us" in fired.detail


def test_neglect_is_looked_at_again_as_it_grows_and_when_the_customer_s_worth_fades(
) -> None:
    s = buyer(5, 300, amount=100.0)  # ~7,300 a year, then nothing
    contact(s, 10)
    onset = neglected.next_check(s, epoch(20), POLICY)
    assert onset == epoch(130) + 1.0  # the limit (120 days) reached
    strengths = []
    now = onset
    while (due := neglected.next_check(s, now, POLICY)) is not None and due > now:
        fired = neglected.evaluate(s, due, POLICY)
        if fired is None:
            break
        strengths.append(fired.strength)
        now = due
    # Stronger at every wake while the silence grows...
    assert strengths == sorted(strengths) and len(set(strengths)) == len(strengths) > 2
    # ...until old purchases leave the year and the customer is no longer
    # valuable enough: the last wake is the moment it stops, not later.
    assert due is not None and neglected.evaluate(s, due, POLICY) is None
    assert neglected.evaluate(s, due - 2.0, POLICY) is not None
    assert s.spend_last_year(due, POLICY.history.bucket_days) < (
        POLICY.neglected.min_spend_last_year)


def test_a_small_customer_is_not_neglected() -> None:
    s = buyer(30, 300, amount=20.0)
    assert neglected.evaluate(s, epoch(300), POLICY) is None


def test_a_customer_who_never_bought_is_not_neglected() -> None:
    s = new_state("lead")
    contact(s, 0, direction="inbound", outcome=None)
    assert neglected.next_check(s, epoch(0), POLICY) is None
