"""Each signal alone: fires when it should, quiet for steady customers and edge cases."""

from __future__ import annotations

import pytest

from stream_app.core.model import ParetoNBD
from stream_app.core.policy import Policy, policy_from_mapping
from stream_app.core.signals import complaints, frequency_drop, overdue
from stream_app.core.signals.base import poisson_cdf
from stream_app.core.state import DAY, CustomerState, new_state

from ..conftest import epoch
from ..helpers import buyer, complaint, purchase

POLICY = Policy()


# -- FREQUENCY_DROP ---------------------------------------------------------

def test_frequency_drop_fires_when_a_weekly_buyer_slows_down() -> None:
    s = buyer(7, 300)  # weekly for 300 days
    for day in (320, 345, 370):  # then every 25 days
        purchase(s, day)
    fired = frequency_drop.evaluate(s, epoch(380), POLICY)
    assert fired is not None
    assert fired.code == "FREQUENCY_DROP"
    assert fired.baseline is not None and fired.value < fired.baseline * 0.5
    assert fired.evidence  # cites the purchases in the recent window
    assert "where" in fired.detail and "usual" in fired.detail


def test_frequency_drop_quiet_for_a_steady_buyer() -> None:
    s = buyer(7, 400)
    assert frequency_drop.evaluate(s, epoch(402), POLICY) is None


def test_frequency_drop_needs_enough_history() -> None:
    s = buyer(7, 40)  # six weeks of history only, then silence
    assert frequency_drop.evaluate(s, epoch(100), POLICY) is None


def test_twice_a_year_buyer_is_not_dropping_after_a_quiet_season() -> None:
    s = buyer(182, 730)  # every six months for two years
    # 120 days after the last purchase: nothing bought in the recent window,
    # but 0.5 purchases were expected, so zero is not improbable.
    assert frequency_drop.evaluate(s, epoch(850), POLICY) is None


def test_frequency_drop_on_spend_at_the_usual_pace() -> None:
    s = buyer(5, 300, amount=100.0)
    day = 305.0
    while day < 390:
        purchase(s, day, amount=20.0)
        day += 5
    fired = frequency_drop.evaluate(s, epoch(390), POLICY)
    assert fired is not None and "spent" in fired.detail


def _boundary_by_boundary(s: CustomerState, now: float) -> float | None:
    """When a sweep that looked at every bucket boundary would find the answer changed.

    While the signal fires: the next boundary (its figures change there).
    While it does not: the first boundary at which it fires, looked for well
    past the point where every purchase has left the baseline.
    """
    width = POLICY.history.bucket_days * DAY
    following = int(now // width) + 1
    if frequency_drop.evaluate(s, now, POLICY) is not None:
        return following * width
    for c in range(following, following + 40):
        if frequency_drop.evaluate(s, c * width, POLICY) is not None:
            return c * width
    return None


@pytest.mark.parametrize("shape", ["weekly then slowing", "monthly then gone",
                                   "young and quiet", "twice a year"])
def test_frequency_drop_wakes_only_where_a_boundary_sweep_would_see_a_change(
        shape: str) -> None:
    s = {"weekly then slowing": lambda: buyer(7, 300),
         "monthly then gone": lambda: buyer(30, 400, amount=80.0),
         "young and quiet": lambda: buyer(9, 45),
         "twice a year": lambda: buyer(182, 730)}[shape]()
    last = s.last_purchase_ts
    assert last is not None
    later = [last + d * DAY for d in (0.5, 3, 29, 61, 95, 140, 200, 333, 500, 20, 1)]
    for now in later:  # the memo of the scan ahead is kept across calls, back and forth
        assert frequency_drop.next_check(s, now, POLICY) == _boundary_by_boundary(s, now), now
    if shape == "weekly then slowing":
        # A purchase changes the buckets: nothing may be answered from before it.
        day = (last - epoch(0)) / DAY
        for step in (25, 50, 75):
            purchase(s, day + step)
            now = epoch(day + step + 1)
            assert frequency_drop.next_check(s, now, POLICY) == _boundary_by_boundary(s, now)
    wakes = [frequency_drop.next_check(s, now, POLICY) for now in later]
    if shape == "twice a year":
        assert wakes == [None] * len(later)  # zero in 60 days is no drop for them


def test_a_drop_is_found_ahead_without_waking_at_every_boundary() -> None:
    s = buyer(3, 300)  # every three days, then nothing
    width = POLICY.history.bucket_days * DAY
    now = epoch(301)
    due = frequency_drop.next_check(s, now, POLICY)
    assert due is not None and due > (int(now // width) + 1) * width  # a boundary skipped
    assert frequency_drop.evaluate(s, due - width, POLICY) is None
    assert frequency_drop.evaluate(s, due, POLICY) is not None


def test_the_memo_is_not_part_of_the_state() -> None:
    s = buyer(7, 300)
    frequency_drop.next_check(s, epoch(301), POLICY)
    assert s.memo
    again = CustomerState.from_bytes(s.to_bytes())
    assert again == s and not again.memo
    assert b"memo" not in s.to_bytes()


def test_poisson_cdf_matches_known_values() -> None:
    assert poisson_cdf(0, 2.0) == pytest.approx(0.135335, rel=1e-5)
    assert poisson_cdf(2, 2.0) == pytest.approx(0.676676, rel=1e-5)
    assert poisson_cdf(0, 0.0) == 1.0


# -- OVERDUE -------------------------------------------------------------------

def _silence_chance(repeat_days: int, t_x: float, silence: float, policy: Policy) -> float:
    """How often a customer still buying at the rate shown by ``t_x`` goes ``silence``
    days without a purchase: the Gamma-Poisson closed form, written out here so
    the signal is checked against the formula rather than against itself."""
    m = policy.model
    return float(((m.alpha + t_x) / (m.alpha + t_x + silence)) ** (m.r + repeat_days))


def test_overdue_fires_when_a_regular_buyers_silence_turns_unusual() -> None:
    s = buyer(10, 200)  # 21 purchase days, the last on day 200
    # The expected gap of this customer: (alpha + t_x) / (r + x) days.
    gap = (POLICY.model.alpha + 200) / (POLICY.model.r + 20)
    q = POLICY.overdue.max_silence_probability
    assert _silence_chance(20, 200, 27, POLICY) > q > _silence_chance(20, 200, 28, POLICY)
    assert overdue.evaluate(s, epoch(200 + 27), POLICY) is None
    fired = overdue.evaluate(s, epoch(200 + 28), POLICY)
    assert fired is not None
    assert fired.value == 28.0
    assert fired.baseline == pytest.approx(gap, abs=0.05)
    assert 27 < fired.threshold < 28
    assert fired.evidence == (s.recent_purchase_ids[-1],)
    per_100 = round(100 * _silence_chance(20, 200, 28, POLICY))
    assert per_100 == 9
    assert fired.detail == ("no purchase for 28 days; for this customer a silence this "
                            "long happens 9 times in 100")


def test_a_weekly_buyer_is_late_after_a_few_weeks_not_before_min_days() -> None:
    s = buyer(7, 364)  # weekly for a year
    # The model alone would call 18 days late; never before [overdue].min_days.
    assert _silence_chance(52, 364, 18, POLICY) < POLICY.overdue.max_silence_probability
    assert POLICY.overdue.min_days == 21
    assert overdue.evaluate(s, epoch(364 + 20), POLICY) is None
    fired = overdue.evaluate(s, epoch(364 + 22), POLICY)
    assert fired is not None and fired.threshold == 21.0
    assert "no purchase for 22 days" in fired.detail and "times in 100" in fired.detail
    # A longer silence is a rarer one: the signal grows stronger with it.
    later = overdue.evaluate(s, epoch(364 + 35), POLICY)
    assert later is not None and later.strength > fired.strength


def test_overdue_next_check_is_the_moment_the_customer_turns_late() -> None:
    s = buyer(10, 200)
    due = overdue.next_check(s, epoch(201), POLICY)
    assert due is not None
    assert overdue.evaluate(s, due - 2, POLICY) is None
    assert overdue.evaluate(s, due, POLICY) is not None


def test_one_time_buyer_is_judged_by_the_populations_numbers() -> None:
    # A population of regular buyers (a purchase every alpha / r = 30 days,
    # customers much alike), trusted for all of its r = 4 purchases' worth:
    # a one-time buyer is late after alpha * (q ** (-1 / r) - 1) days, about 93.
    regular = policy_from_mapping({"model": {"r": 4.0, "alpha": 120.0},
                                   "overdue": {"prior_purchases": 4.0}})
    limit = 120.0 * (0.1 ** (-1 / 4.0) - 1)
    assert 93 < limit < 94
    s = new_state("once")
    purchase(s, 0)
    assert overdue.evaluate(s, epoch(93), regular) is None
    fired = overdue.evaluate(s, epoch(94), regular)
    assert fired is not None
    assert fired.baseline == pytest.approx(30.0)
    assert fired.detail == ("no purchase for 94 days; for this customer a silence this "
                            "long happens 10 times in 100")
    much_later = overdue.evaluate(s, epoch(300), regular)
    assert much_later is not None and "1 time in 100" in much_later.detail
    # The default population differs a lot (r = 0.5): one purchase says little
    # about the rate, and a year's silence is common for such a customer.
    assert _silence_chance(0, 0, 365, POLICY) > 0.25
    assert overdue.evaluate(s, epoch(365), POLICY) is None


def test_the_population_lends_a_silence_at_most_prior_purchases_of_evidence() -> None:
    # Fitted on a population of weekly-ish buyers much alike (r = 2), with
    # the default cap (half a purchase, the mean rate kept): the twice-a-year
    # buyer's first silence is judged by what the customer showed, not by
    # the others' rhythm.
    fitted = policy_from_mapping({"model": {"r": 2.0, "alpha": 28.0}})
    cap = fitted.overdue.prior_purchases
    assert cap == 0.5
    weak = overdue.silence_params(fitted)
    assert (weak.r, weak.alpha) == (cap, pytest.approx(28.0 * cap / 2.0))
    assert weak.r / weak.alpha == pytest.approx(2.0 / 28.0)  # the mean rate is kept
    assert overdue.silence_params(POLICY) == ParetoNBD(POLICY.model.r, POLICY.model.alpha,
                                                       POLICY.model.s, POLICY.model.beta)
    once = new_state("once")
    purchase(once, 0)
    assert overdue.evaluate(once, epoch(150), fitted) is None
    uncapped = policy_from_mapping({"model": {"r": 2.0, "alpha": 28.0},
                                    "overdue": {"prior_purchases": 2.0}})
    assert overdue.evaluate(once, epoch(150), uncapped) is not None
    # A regular buyer's own purchases outweigh either: late at about the same day.
    s = buyer(10, 300)
    days = [next(d for d in range(301, 400)
                 if overdue.evaluate(s, epoch(d), policy) is not None)
            for policy in (fitted, uncapped)]
    assert abs(days[0] - days[1]) <= 2


def test_seasonal_buyer_with_one_long_gap_is_not_late_early() -> None:
    s = new_state("seasonal")
    purchase(s, 0)
    purchase(s, 170)  # one long gap: this customer's rate is a slow one
    assert overdue.evaluate(s, epoch(170 + 200), POLICY) is None
    # ...while a customer who showed a fast rate is late long before that.
    fast = buyer(10, 170, cid="fast")
    assert overdue.evaluate(fast, epoch(170 + 60), POLICY) is not None


def test_same_day_purchases_are_not_gaps() -> None:
    s = new_state("basket")
    for hour in range(5):
        purchase(s, 10 + hour / 24)
    assert list(s.gaps) == []


# -- COMPLAINTS ----------------------------------------------------------------

def test_complaints_fire_on_a_burst() -> None:
    s = buyer(7, 200)
    for day in (190, 195, 198):
        complaint(s, day, severity=3)
    fired = complaints.evaluate(s, epoch(200), POLICY)
    assert fired is not None
    assert fired.value == 9.0
    assert len(fired.evidence) == 3
    assert "billing" in fired.detail


def test_one_mild_complaint_is_not_a_signal() -> None:
    s = buyer(7, 200)
    complaint(s, 195, severity=2)
    assert complaints.evaluate(s, epoch(200), POLICY) is None


def test_one_critical_complaint_is_a_signal() -> None:
    s = buyer(7, 200)
    complaint(s, 195, severity=5)
    assert complaints.evaluate(s, epoch(200), POLICY) is not None


def test_a_habitual_complainer_is_judged_against_their_own_volume() -> None:
    s = buyer(7, 400)
    for day in range(40, 370, 10):  # a severity-3 complaint every 10 days, always
        complaint(s, day, severity=3)
    # 3 complaints in the last 30 days is this customer's normal.
    assert complaints.evaluate(s, epoch(372), POLICY) is None


def test_complaints_age_out_of_the_window() -> None:
    s = buyer(7, 200)
    for day in (190, 192):
        complaint(s, day, severity=4)
    assert complaints.evaluate(s, epoch(200), POLICY) is not None
    due = complaints.next_check(s, epoch(200), POLICY)
    assert due is not None
    assert complaints.evaluate(s, due, POLICY) is None


def test_histories_stay_in_time_order_whatever_order_events_come_in() -> None:
    import random

    from stream_app.core.state import KeptComplaint, _insert

    rng = random.Random(5)
    for _ in range(200):
        items: list[KeptComplaint] = []
        expected: list[KeptComplaint] = []
        for n in range(rng.randrange(1, 12)):
            item = KeptComplaint(rng.choice([1.0, 2.0, 3.0, 3.0, 4.0]), f"k{n}", "billing", 3)
            _insert(items, item)
            expected.append(item)
            expected.sort(key=lambda x: x.ts)
        assert items == expected  # same order, equal times in arrival order
