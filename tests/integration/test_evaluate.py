"""``churnwatch evaluate`` end to end: its own broker and worker, real alerts and state.

Two small runs (a synthetic population, a slice of CDNOW); the counts are
checked against the data recomputed here independently, and the figures
against what is known about each data set.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_app.core.policy import Policy
from stream_app.interfaces.cli import main
from stream_app.offline.datasets import cdnow_file
from stream_app.offline.synthetic import generate

pytestmark = pytest.mark.integration

DAY = 86400.0


def run_evaluate(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "report.json"
    png = tmp_path / "precision.png"
    assert main(["evaluate", *args, "--json", str(out), "--plot", str(png)]) == 0
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    return report


RANKINGS = ("churnwatch", "recency", "frequency", "pareto_nbd_offline")


def check_shape(r: dict[str, Any]) -> None:
    assert set(r) >= {"dataset", "customers", "scores", "repeat_buyers", "calibration",
                      "pareto_nbd_offline", "alerts", "curve", "split", "run"}
    rb = r["repeat_buyers"]
    assert 0 < rb["customers"] < r["customers"]["evaluated"]
    for name in RANKINGS:
        for m in (r["scores"][name], rb["scores"][name]):
            assert set(m) == {"auc", "precision_at_1pct", "precision_at_10pct",
                              "precision_at_20pct"}
            assert 0.0 <= m["auc"] <= 1.0
            assert 0.0 <= m["precision_at_1pct"] <= 1.0
        assert len(r["curve"][name]) == len(r["curve"]["budgets"]) == 100
        # Contacting everyone finds exactly the churn rate, whatever the ranking.
        assert r["curve"][name][-1] == r["customers"]["churn_rate"]
    assert r["pareto_nbd_offline"]["fitted"] is True
    cal = r["calibration"]
    assert cal["available"] and cal["horizon_days"] == r["split"]["model_horizon_days"] == 90
    for name in ("churnwatch", "pareto_nbd_offline"):
        table = cal[name]["reliability"]
        assert len(table) == 10
        assert sum(b["count"] for b in table) == r["customers"]["evaluated"]
        assert 0.0 <= cal[name]["ece"] <= 1.0 and 0.0 <= cal[name]["brier"] <= 1.0
    a = r["alerts"]
    assert set(a) >= {"precision", "recall", "per_1000_customers_per_month",
                      "median_lead_days", "customers_alerted", "total_before_cutoff",
                      "policy_threshold", "budget"}
    assert 0 <= a["customers_alerted"] <= r["customers"]["evaluated"]
    assert a["in_lookback"] <= a["total_before_cutoff"]
    assert a["policy_threshold"]["threshold"] == Policy().alerting.open_at
    suggested = a["budget"]["suggested"]
    assert a["budget"]["per_1000_customers_per_month"] == 100.0
    # The list for the budget fits it (unless the riskiest tie alone does not).
    assert suggested["per_1000_customers"] <= 100.0 or suggested["threshold"] == max(
        b["threshold"] for b in (suggested, a["policy_threshold"]))
    assert r["customers"]["without_state"] == 0
    assert r["run"]["dead_letters"] == 0 and r["run"]["rows_rejected"] == 0


def test_evaluate_synthetic_population(tmp_path: Path) -> None:
    customers = 120
    r = run_evaluate(tmp_path, "--dataset", "synthetic", "--customers", str(customers))
    check_shape(r)
    pop = generate(customers=customers, days=540, seed=7)
    cutoff = datetime.fromisoformat(r["split"]["cutoff"]).timestamp()
    end = cutoff + 90 * DAY
    bought: dict[str, list[float]] = {}
    for e in pop.events:
        if e.topic == "purchases":
            bought.setdefault(e.customer_id, []).append(e.ts)
    before = {c for c, ts in bought.items() if min(ts) <= cutoff}
    churned = {c for c in before if not any(cutoff < t <= end for t in bought[c])}
    assert r["run"]["events_replayed"] == sum(1 for e in pop.events if e.ts <= cutoff)
    assert r["customers"]["evaluated"] == len(before)
    assert r["customers"]["churned"] == len(churned)
    assert r["customers"]["excluded_first_purchase_after_cutoff"] == len(bought) - len(before)
    # The generator's churners show the signs: the risk ranks them clearly
    # above chance, and the alerts find more churners than chance would.
    assert r["scores"]["churnwatch"]["auc"] > 0.7
    assert r["alerts"]["customers_alerted"] > 0
    assert r["alerts"]["precision"] > r["customers"]["churn_rate"]


@pytest.mark.parametrize(("cutoff", "horizon"), [
    (None, 180),            # the data set's own split
    ("1997-06-30", 273),    # another split, given as options
])
def test_evaluate_a_slice_of_cdnow(tmp_path: Path, cutoff: str | None, horizon: int) -> None:
    share = 0.03
    options = [] if cutoff is None else ["--cutoff", cutoff, "--horizon", str(horizon)]
    r = run_evaluate(tmp_path, "--dataset", "cdnow", "--sample", str(share), *options)
    check_shape(r)
    day = cutoff or "1997-09-30"
    assert r["split"]["cutoff"] == f"{day}T23:59:59Z"
    assert r["split"]["horizon_days"] == horizon
    rows: list[tuple[str, str]] = []
    for line in cdnow_file().read_text().splitlines()[1:]:
        cid, date, _, _ = line.split()
        if zlib.crc32(cid.encode()) < int(share * 2**32):
            rows.append((cid, date))
    start = datetime.fromisoformat(day).replace(hour=23, minute=59, second=59, tzinfo=UTC)
    first, stop = start.strftime("%Y%m%d"), (start + timedelta(days=horizon)).strftime("%Y%m%d")
    h90 = (start + timedelta(days=90)).strftime("%Y%m%d")
    before = {c for c, d in rows if d <= first}
    retained = {c for c, d in rows if c in before and first < d <= stop}
    bought_in_90 = {c for c, d in rows if c in before and first < d <= h90}
    repeat = {c for c in before if sum(1 for k, d in rows if k == c and d <= first) >= 2}
    # CDNOW customers all first bought in the first quarter of 1997: at the
    # earlier cutoff none is excluded either.
    assert r["customers"]["evaluated"] == len(before)
    assert r["customers"]["excluded_first_purchase_after_cutoff"] == len(
        {c for c, _ in rows}) - len(before)
    assert r["customers"]["churned"] == len(before) - len(retained)
    assert r["repeat_buyers"]["customers"] == len(repeat)
    # Calibration is judged at the risk's 90 days, whatever the horizon.
    assert r["calibration"]["no_purchase_rate"] == round(1 - len(bought_in_90) / len(before), 4)
    assert r["run"]["events_replayed"] == sum(1 for _, d in rows if d <= first)
    # On either split, recency and the offline Pareto/NBD, the known strong
    # predictors on CDNOW, rank well above chance (a 3% slice is noisy).
    assert r["scores"]["recency"]["auc"] > 0.65
    assert r["scores"]["pareto_nbd_offline"]["auc"] > 0.65
    assert r["repeat_buyers"]["scores"]["pareto_nbd_offline"]["auc"] > 0.6
