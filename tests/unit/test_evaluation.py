"""The evaluation's maths against values worked out by hand."""

from __future__ import annotations

import pytest

from stream_app.evaluation import (
    DAY,
    Split,
    auc,
    evaluate_split,
    frequency,
    label,
    precision_at,
    precision_recall,
    recency_days,
)


def test_auc_counts_pairs_and_ties_half() -> None:
    # Positives 0.9, 0.4; negatives 0.4, 0.1.  Pairs: (0.9>0.4) 1, (0.9>0.1) 1,
    # (0.4=0.4) 0.5, (0.4>0.1) 1  ->  3.5 / 4.
    assert auc([0.9, 0.4, 0.4, 0.1], [True, True, False, False]) == pytest.approx(0.875)


def test_auc_extremes_and_undefined() -> None:
    assert auc([3, 2, 1], [True, True, False]) == 1.0
    assert auc([1, 2, 3], [True, True, False]) == 0.0
    assert auc([5, 5, 5, 5], [True, False, True, False]) == 0.5
    assert auc([1, 2], [True, True]) is None


def test_auc_is_order_free() -> None:
    scores = [0.2, 0.7, 0.7, 0.1, 0.9, 0.3]
    labels = [False, True, False, False, True, True]
    # Pairs won by positives (0.7, 0.9, 0.3) over negatives (0.2, 0.7, 0.1):
    # 0.7: 1 + 0.5 + 1; 0.9: 3; 0.3: 1 + 0 + 1  ->  7.5 / 9.
    assert auc(scores, labels) == pytest.approx(7.5 / 9)
    assert auc(scores[::-1], labels[::-1]) == pytest.approx(7.5 / 9)


def test_precision_at_share_without_ties() -> None:
    scores = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    labels = [True, False, True, True, False, False, False, False, False, True]
    assert precision_at(scores, labels, 0.1) == 1.0     # top 1: the 10
    assert precision_at(scores, labels, 0.2) == 0.5     # 10, 9
    assert precision_at(scores, labels, 0.4) == 0.75    # 10, 9, 8, 7


def test_precision_at_share_splits_a_tied_group_by_its_rate() -> None:
    # Top 2 of 5: one score above the tie (a churner), then one place left for
    # a tied group of three with one churner among them: 1 + 1/3 out of 2.
    scores = [9, 5, 5, 5, 1]
    labels = [True, True, False, False, True]
    assert precision_at(scores, labels, 0.4) == pytest.approx((1 + 1 / 3) / 2)
    # Everyone tied: precision is the base rate whatever the share.
    assert precision_at([1, 1, 1, 1], [True, False, False, False], 0.5) == 0.25


def test_precision_recall() -> None:
    flags = [True, True, False, False, True]
    labels = [True, False, True, False, True]
    assert precision_recall(flags, labels) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert precision_recall([False, False], [True, False]) == (None, 0.0)


def test_labels_recency_and_frequency() -> None:
    cutoff = 100 * DAY
    assert label([10 * DAY, 50 * DAY], cutoff, 30) is True          # nothing after
    assert label([10 * DAY, 120 * DAY], cutoff, 30) is False        # bought on day 120
    assert label([10 * DAY, 140 * DAY], cutoff, 30) is True         # too late: day 140
    assert label([130 * DAY], cutoff, 30) is None                   # first purchase after
    assert label([10 * DAY, cutoff], cutoff, 30) is True            # at the cutoff = before
    assert recency_days([10 * DAY, 60 * DAY, 120 * DAY], cutoff) == 40
    assert frequency([10 * DAY, 60 * DAY, 120 * DAY], cutoff) == 2


def test_evaluate_split_by_hand() -> None:
    d = DAY
    cutoff = 200 * d
    purchases = {
        "a": [10 * d, 100 * d, 190 * d],          # retained (buys day 220)
        "b": [20 * d, 60 * d],                    # churned, last purchase day 60
        "c": [150 * d, 180 * d],                  # churned, last purchase day 180
        "d": [50 * d, 195 * d],                   # retained (buys day 230)
        "e": [250 * d],                           # first purchase after: excluded
    }
    purchases["a"].append(220 * d)
    purchases["d"].append(230 * d)
    risk = {"a": 10.0, "b": 80.0, "c": 30.0, "d": 30.0}
    alerts = {
        # Days 20 and 100 are before the 90-day lookback; day 100 opened the
        # episode (2) that is still alerting in it.
        "b": [(20 * d, 1), (100 * d, 2), (150 * d, 2), (170 * d, 2)],
        "c": [(170 * d, 1)],
        "a": [(205 * d, 1)],                      # after the cutoff: not counted
        "d": [(120 * d, 3)],
    }
    r = evaluate_split(purchases, risk, alerts, Split(cutoff, 60, 90))
    assert r["customers"] == {"evaluated": 4, "churned": 2, "retained": 2, "churn_rate": 0.5,
                              "excluded_first_purchase_after_cutoff": 1}
    # Risk: churners 80 and 30 against 10 and 30: 1 + 1 + 1 + 0.5 -> 3.5 / 4.
    assert r["scores"]["churnwatch"]["auc"] == 0.875
    # Recency (days): a 10, b 140, c 20, d 5 -> churners 140, 20 beat 10, 5: AUC 1.
    assert r["scores"]["recency"]["auc"] == 1.0
    # Frequency (fewer = riskier): a 3, b 2, c 2, d 2 -> churners -2,-2 vs -3,-2:
    # (1 + 0.5) * 2 -> 3 / 4.
    assert r["scores"]["frequency"]["auc"] == 0.75
    # Top 10% and 20% of 4 customers are both the single riskiest: b, a churner.
    assert r["scores"]["churnwatch"]["precision_at_10pct"] == 1.0
    assert r["scores"]["churnwatch"]["precision_at_20pct"] == 1.0
    a = r["alerts"]
    assert a["in_lookback"] == 4                  # b's 150 and 170, c's 170, d's 120
    assert a["customers_alerted"] == 3
    assert a["precision"] == round(2 / 3, 4)
    assert a["recall"] == 1.0
    assert a["per_1000_customers_per_month"] == round(4 / 4 * 1000 / 3, 2)
    # Lead: b 60 - 100 = -40 (episode 2 began on day 100), c 180 - 170 = +10
    # -> median -15.
    assert a["median_lead_days"] == -15.0
    assert a["lead_time_customers"] == 2
    curve = r["curve"]
    assert len(curve["budgets"]) == len(curve["churnwatch"]) == len(curve["recency"])
    assert curve["base_rate"] == 0.5
    assert curve["churnwatch"][-1] == 0.5         # contacting everyone: the base rate


def test_auc_agrees_with_counting_every_pair() -> None:
    import random

    rng = random.Random(3)
    for _ in range(20):
        n = rng.randint(2, 40)
        scores = [float(rng.randint(0, 6)) for _ in range(n)]  # many ties
        labels = [rng.random() < 0.4 for _ in range(n)]
        pos = [s for s, y in zip(scores, labels, strict=True) if y]
        neg = [s for s, y in zip(scores, labels, strict=True) if not y]
        if not pos or not neg:
            assert auc(scores, labels) is None
            continue
        wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
        assert auc(scores, labels) == pytest.approx(wins / (len(pos) * len(neg)))
