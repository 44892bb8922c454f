"""The evaluation's maths against values worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.core import model
from stream_app.offline.evaluation import (
    DAY,
    Split,
    at_threshold,
    auc,
    brier,
    evaluate_split,
    expected_calibration_error,
    frequency,
    label,
    precision_at,
    precision_recall,
    purchase_stats,
    recency_days,
    reliability,
    threshold_for_share,
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
    assert precision_recall(flags, labels) == pytest.approx((2 / 3, 2 / 3))
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


def test_purchase_stats_in_whole_days_from_the_first_purchase() -> None:
    # Two orders on day 10 are one purchase occasion; day 15 and day 40 are
    # repeats; the day-120 purchase is after the cutoff (day 100, 23:59).
    times = [10 * DAY + 3600, 10 * DAY + 7200, 15 * DAY, 40 * DAY + 600, 120 * DAY]
    assert purchase_stats(times, 100 * DAY + 86399) == (2, 30, 90)
    assert purchase_stats([50 * DAY], 100 * DAY) == (0, 0, 50)
    with pytest.raises(ValueError):
        purchase_stats([120 * DAY], 100 * DAY)


def test_brier_score() -> None:
    # (0.9-1)^2 + (0.2-0)^2 + (0.5-1)^2 = 0.01 + 0.04 + 0.25, over 3.
    assert brier([0.9, 0.2, 0.5], [True, False, True]) == pytest.approx(0.1)
    assert brier([], []) is None


def test_reliability_bins_and_calibration_error() -> None:
    probs = [0.05, 0.08, 0.15, 0.95, 1.0]
    labels = [False, True, True, True, True]
    table = reliability(probs, labels)
    assert len(table) == 10 and table[0].low == 0.0 and table[-1].high == 1.0
    assert [b.count for b in table] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]   # 1.0 in the last bin
    assert table[0].predicted == pytest.approx(0.065) and table[0].observed == 0.5
    assert table[1].predicted == pytest.approx(0.15) and table[1].observed == 1.0
    assert table[2].predicted is None and table[2].observed is None
    assert table[9].predicted == pytest.approx(0.975) and table[9].observed == 1.0
    # (2 |0.065 - 0.5| + 1 |0.15 - 1| + 2 |0.975 - 1|) / 5 = (0.87 + 0.85 + 0.05) / 5.
    assert expected_calibration_error(table) == pytest.approx(0.354)
    # Right on average in every bin: no calibration error.
    assert expected_calibration_error(
        reliability([0.25] * 4, [True, False, False, False])) == pytest.approx(0.0)
    assert expected_calibration_error(reliability([], [])) is None
    with pytest.raises(ValueError):
        reliability([1.2], [True])


def test_threshold_for_a_share_keeps_ties_whole() -> None:
    scores = [90, 80, 80, 50, 40, 30, 20, 10, 10, 0]
    labels = [True, True, False, True, False, False, True, False, False, False]
    # 3 places: 90 and the two 80s.  Precision 2/3; recall 2 of the 4 churners.
    t = threshold_for_share(scores, labels, 0.3)
    assert t is not None
    assert (t.threshold, t.customers, t.share) == (80, 3, 0.3)
    assert t.precision == pytest.approx(2 / 3) and t.recall == 0.5
    # 2 places: the tie of 80s would make 3, so only the 90.
    t = threshold_for_share(scores, labels, 0.2)
    assert t is not None and (t.threshold, t.customers, t.precision) == (90, 1, 1.0)
    # Half a place: even the riskiest alone exceeds it; its share says by how much.
    t = threshold_for_share(scores, labels, 0.05)
    assert t is not None and (t.threshold, t.share) == (90, 0.1)
    assert threshold_for_share([], [], 0.1) is None
    # At or above a threshold, as the worker opens an alert when the risk reaches it.
    a = at_threshold(scores, labels, 50)
    assert (a.customers, a.share, a.precision, a.recall) == (4, 0.4, 0.75, 0.75)


def test_evaluate_split_by_hand() -> None:
    d = DAY
    cutoff = 200 * d
    purchases = {
        "a": [10 * d, 100 * d, 190 * d],          # retained (buys day 220)
        "b": [20 * d, 60 * d],                    # churned, last purchase day 60
        "c": [180 * d],                           # churned, bought once, on day 180
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
    # The risk's own horizon (25 days) differs from the evaluation's (60).
    r = evaluate_split(purchases, risk, alerts, Split(cutoff, 60, 90, 25),
                       alert_threshold=30, budget_per_1000=250, offline=model.DEFAULT)
    assert r["customers"] == {"evaluated": 4, "churned": 2, "retained": 2, "churn_rate": 0.5,
                              "excluded_first_purchase_after_cutoff": 1}
    sc = r["scores"]
    # Risk: churners 80 and 30 against 10 and 30: 1 + 1 + 1 + 0.5 -> 3.5 / 4.
    assert sc["churnwatch"]["auc"] == 0.875
    # Recency (days): a 10, b 140, c 20, d 5 -> churners 140, 20 beat 10, 5: AUC 1.
    assert sc["recency"]["auc"] == 1.0
    # Frequency (fewer = riskier): a 3, b 2, c 1, d 2 -> churners -2, -1 vs -3, -2:
    # b: 1 + 0.5, c: 1 + 1 -> 3.5 / 4.
    assert sc["frequency"]["auc"] == 0.875
    # Top 1%, 10% and 20% of 4 customers are all the single riskiest: b, a churner.
    assert sc["churnwatch"]["precision_at_1pct"] == 1.0
    assert sc["churnwatch"]["precision_at_10pct"] == 1.0
    assert sc["churnwatch"]["precision_at_20pct"] == 1.0
    # Repeat buyers: a, b, d (c bought once); b alone churned.
    rb = r["repeat_buyers"]
    assert (rb["customers"], rb["churned"], rb["churn_rate"]) == (3, 1, round(1 / 3, 4))
    assert rb["scores"]["churnwatch"]["auc"] == 1.0        # 80 over 10 and 30
    assert rb["scores"]["frequency"]["auc"] == 0.75        # -2 over -3, tied with -2
    # The offline baseline ranks by the model's expected purchases in the
    # 60-day horizon, fewer = riskier; with parameters given, nothing is fitted.
    assert r["pareto_nbd_offline"] == {"params": [0.5, 30.0, 0.5, 182.5], "fitted": False}
    expected = {c: model.expected_purchases(model.DEFAULT, *purchase_stats(purchases[c], cutoff),
                                            60) for c in "abcd"}
    assert expected["b"] < expected["d"]                   # silent 140 days vs 5
    by_model = auc([-expected[c] for c in "abcd"], [False, True, True, False])
    assert by_model is not None and sc["pareto_nbd_offline"]["auc"] == round(by_model, 4)

    # Calibration at H = 25 days: a bought on day 220 (within 25 days), d only
    # on day 230, so "no purchase in 25 days" is a F, b T, c T, d T.
    cal = r["calibration"]
    assert cal["available"] and cal["horizon_days"] == 25 and cal["no_purchase_rate"] == 0.75
    ours = cal["churnwatch"]
    # (0.1-0)^2 + (0.8-1)^2 + 2 (0.3-1)^2 = 0.01 + 0.04 + 0.98, over 4.
    assert ours["brier"] == round(1.03 / 4, 4)
    # Bins: 0.1 -> [0.1, 0.2) off by 0.1; 0.3, 0.3 -> [0.3, 0.4) off by 0.7 each;
    # 0.8 -> [0.8, 0.9) off by 0.2: (0.1 + 1.4 + 0.2) / 4.
    assert ours["ece"] == round(1.7 / 4, 4)
    assert [b["count"] for b in ours["reliability"]] == [0, 1, 0, 2, 0, 0, 0, 0, 1, 0]
    assert ours["reliability"][3] == {"low": 0.3, "high": 0.4, "count": 2,
                                      "predicted": 0.3, "observed": 1.0}
    assert ours["mean_predicted"] == round(1.5 / 4, 4)
    assert cal["pareto_nbd_offline"]["reliability"] != ours["reliability"]

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
    # At the policy's threshold (30): b, c, d at the cutoff, 2 of them churners.
    assert a["policy_threshold"] == {"threshold": 30, "customers": 3, "share": 0.75,
                                     "per_1000_customers": 750.0,
                                     "precision": round(2 / 3, 4), "recall": 1.0}
    # A budget of 250 per 1,000 a month: one customer of 4, the riskiest (80).
    assert a["budget"]["per_1000_customers_per_month"] == 250
    assert a["budget"]["suggested"] == {"threshold": 80.0, "customers": 1, "share": 0.25,
                                        "per_1000_customers": 250.0, "precision": 1.0,
                                        "recall": 0.5}
    curve = r["curve"]
    for name in ("churnwatch", "recency", "frequency", "pareto_nbd_offline"):
        assert len(curve[name]) == len(curve["budgets"])
        assert curve[name][-1] == 0.5             # contacting everyone: the base rate
    assert curve["base_rate"] == 0.5


def test_calibration_is_not_measured_past_the_data() -> None:
    # Purchases end on day 250; the cutoff is day 200 and H 90 days: the
    # 40 unrecorded days would count as "no purchase".
    purchases = {"a": [10 * DAY, 250 * DAY], "b": [20 * DAY]}
    r = evaluate_split(purchases, {"a": 20.0, "b": 70.0}, {}, Split(200 * DAY, 45, 90, 90),
                       offline=model.DEFAULT)
    cal = r["calibration"]
    assert cal["available"] is False and "cutoff + 90 days" in cal["reason"]
    assert "churnwatch" not in cal


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


def test_the_table_shows_every_figure() -> None:
    from stream_app.offline.evaluate import table

    d = DAY
    purchases = {"a": [10 * d, 100 * d, 190 * d, 220 * d], "b": [20 * d, 60 * d],
                 "c": [180 * d], "d": [50 * d, 195 * d, 300 * d]}
    r = evaluate_split(purchases, {"a": 10.0, "b": 80.0, "c": 30.0, "d": 30.0}, {},
                       Split(200 * d, 60, 90, 90), offline=model.DEFAULT)
    r["split"] = {"cutoff": "1970-07-20T00:00:00Z", "horizon_days": 60,
                  "label_end": "1970-09-18T00:00:00Z", "lookback_days": 90}
    r["customers"]["without_state"] = 0
    r["alerts"]["total_before_cutoff"] = 0
    r["run"] = {"events_replayed": 9, "rows_rejected": 0, "dead_letters": 0,
                "replay_and_processing_seconds": 1.0, "events_per_second": 9.0,
                "total_seconds": 2.0}
    text = table(r, "hand")
    for row in ("churnwatch risk at the cutoff", "recency (days since purchase)",
                "frequency (fewer purchases)", "Pareto/NBD fitted offline",
                "repeat buyers (2+ purchases before the cutoff): 3",
                "P(no purchase in the next 90 days)", "churnwatch risk / 100",
                "the rate for everyone", "10 equal-width bins", "  80-90%",
                "at the policy's alert threshold, risk >= 30: 3 customers",
                "for a budget of 100 alerts per 1,000 customers per month",
                "risk >= 80: 1 customer at the cutoff (25.0%, 250 per 1,000)",
                "the riskiest tie alone is over the budget"):
        assert row in text, row
    # Only a bought within 60 days, and it has the lowest risk: AUC 1, and the
    # riskiest (b) is a churner, so 100% in every top share.
    line = next(ln for ln in text.splitlines() if ln.startswith("churnwatch risk at"))
    assert line.split()[5:9] == ["1.000", "100.0%", "100.0%", "100.0%"]


def test_a_budget_out_of_range_is_refused_naming_it(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from stream_app.interfaces.cli import main

    sales = tmp_path / "sales.csv"
    sales.write_text("customer_id,ts,amount\nc1,2024-01-05T10:00:00Z,10\n"
                     "c1,2024-03-05T10:00:00Z,12\n")
    code = main(["evaluate", "--purchases", str(sales), "--cutoff", "2024-02-01",
                 "--horizon", "30", "--budget", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "churnwatch evaluate: --budget 0: give alerts per 1,000 customers per month" in err
    assert "Traceback" not in err
