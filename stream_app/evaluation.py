"""The maths of ``churnwatch evaluate``: labels, baselines and metrics, as pure functions.

Kept apart from the orchestration (broker, worker, replay) so that every
figure the evaluation reports can be checked by hand in a unit test.

Definitions (the README repeats them):

* **population**: customers with at least one purchase before the cutoff;
  customers whose first purchase comes after it are excluded (nothing to
  predict from), as are customers with contacts or complaints but no purchase.
* **churned**: no purchase in ``(cutoff, cutoff + horizon]``.
* **risk**: Churnwatch's risk score of the customer's state at the cutoff;
  **recency** baseline: days since the last purchase (more = riskier);
  **frequency** baseline: purchases before the cutoff (fewer = riskier).
* **AUC**: the Mann-Whitney U statistic over (churned, retained) pairs, ties
  counted one half, i.e. the probability that a random churner is ranked
  riskier than a random retained customer.
* **precision at k%**: the share of churners among the k% riskiest; when the
  boundary falls inside a group of equal scores, the tied group contributes
  its churn rate for the places left (the expectation under random
  tie-breaking), so a score with many ties is not flattered or punished by
  the order customers happen to be listed in.
* **alerted**: at least one alert with event time in
  ``(cutoff - lookback, cutoff]``: the customers a team would have had on its
  list at the cutoff.  Precision and recall of "alerted" against "churned".
* **alerts per 1,000 customers per month**: alerts in the lookback window per
  1,000 customers in the population, per 30-day month: the load on the team.
* **lead time**: for churned, alerted customers, days from the first alert of
  the episode still alerting in the lookback window (an episode may have
  opened before the window) to the customer's last purchase before the
  cutoff; positive when the alert came before the last purchase (the customer
  was still buying), negative when it came after (it noticed the silence).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DAY = 86400.0
MONTH_DAYS = 30.0
#: Shares of the population contacted at which precision is reported.
TOP_SHARES = (0.10, 0.20)
#: Alert budgets (share of customers contacted) of the precision curve.
BUDGETS = tuple(round(i / 100, 2) for i in range(1, 101))


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Mann-Whitney AUC with mid-ranks for ties; None when a class is empty."""
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid_rank = (i + j) / 2 + 1  # ranks are 1-based
        rank_sum += mid_rank * sum(1 for k in order[i:j + 1] if labels[k])
        i = j + 1
    u = rank_sum - pos * (pos + 1) / 2
    return u / (pos * neg)


def precision_at(scores: Sequence[float], labels: Sequence[bool], share: float
                 ) -> float | None:
    """Share of positives among the ``share`` highest scores, ties in expectation."""
    n = len(scores)
    if n == 0:
        return None
    k = max(1, round(share * n))
    cut = sorted(scores, reverse=True)[k - 1]
    above = [y for s, y in zip(scores, labels, strict=True) if s > cut]
    tied = [y for s, y in zip(scores, labels, strict=True) if s == cut]
    hits = sum(above) + (k - len(above)) * sum(tied) / len(tied)
    return hits / k


def precision_recall(flags: Sequence[bool], labels: Sequence[bool]
                     ) -> tuple[float | None, float | None]:
    """Precision and recall of a yes/no prediction (None where undefined)."""
    tp = sum(1 for f, y in zip(flags, labels, strict=True) if f and y)
    flagged = sum(flags)
    positives = sum(labels)
    return (tp / flagged if flagged else None, tp / positives if positives else None)


def label(purchases: Sequence[float], cutoff: float, horizon_days: float) -> bool | None:
    """True = churned, False = retained, None = not in the population."""
    before = [t for t in purchases if t <= cutoff]
    if not before:
        return None
    end = cutoff + horizon_days * DAY
    return not any(cutoff < t <= end for t in purchases)


def recency_days(purchases: Sequence[float], cutoff: float) -> float:
    return (cutoff - max(t for t in purchases if t <= cutoff)) / DAY


def frequency(purchases: Sequence[float], cutoff: float) -> int:
    return sum(1 for t in purchases if t <= cutoff)


@dataclass(frozen=True, slots=True)
class Split:
    cutoff: float
    horizon_days: float
    lookback_days: float


def _score_summary(scores: Sequence[float], labels: Sequence[bool]) -> dict[str, Any]:
    out: dict[str, Any] = {"auc": _round(auc(scores, labels))}
    for share in TOP_SHARES:
        out[f"precision_at_{round(share * 100)}pct"] = _round(precision_at(scores, labels, share))
    return out


def _round(x: float | None, places: int = 4) -> float | None:
    return None if x is None else round(x, places)


def evaluate_split(purchases: Mapping[str, Sequence[float]], risk: Mapping[str, float],
                   alerts: Mapping[str, Sequence[tuple[float, int]]], split: Split
                   ) -> dict[str, Any]:
    """Every figure of the evaluation from plain data.

    ``purchases``: customer -> purchase times (all of them, before and after
    the cutoff); ``risk``: customer -> risk at the cutoff (missing = 0, the
    caller reports how many); ``alerts``: customer -> (event time, episode)
    of each alert.
    """
    cutoff = split.cutoff
    customers: list[str] = []
    labels: list[bool] = []
    excluded = 0
    for cid in sorted(purchases):
        y = label(purchases[cid], cutoff, split.horizon_days)
        if y is None:
            excluded += 1
            continue
        customers.append(cid)
        labels.append(y)
    ours = [risk.get(c, 0.0) for c in customers]
    recency = [recency_days(purchases[c], cutoff) for c in customers]
    fewer = [-float(frequency(purchases[c], cutoff)) for c in customers]

    since = cutoff - split.lookback_days * DAY
    windowed = {c: sorted(a for a in alerts.get(c, ()) if since < a[0] <= cutoff)
                for c in customers}
    flags = [bool(windowed[c]) for c in customers]
    precision, recall = precision_recall(flags, labels)
    in_window = sum(len(v) for v in windowed.values())
    leads = []
    for c, y in zip(customers, labels, strict=True):
        if y and windowed[c]:
            episode = windowed[c][-1][1]
            first = min(t for t, e in alerts[c] if e == episode and t <= cutoff)
            leads.append((max(t for t in purchases[c] if t <= cutoff) - first) / DAY)
    n = len(customers)
    churned = sum(labels)
    months = split.lookback_days / MONTH_DAYS
    return {
        "customers": {
            "evaluated": n, "churned": churned, "retained": n - churned,
            "churn_rate": _round(churned / n if n else None),
            "excluded_first_purchase_after_cutoff": excluded,
        },
        "scores": {
            "churnwatch": _score_summary(ours, labels),
            "recency": _score_summary(recency, labels),
            "frequency": _score_summary(fewer, labels),
        },
        "alerts": {
            "in_lookback": in_window,
            "customers_alerted": sum(flags),
            "alerted_share": _round(sum(flags) / n if n else None),
            "precision": _round(precision),
            "recall": _round(recall),
            "per_1000_customers_per_month": _round(
                in_window / n * 1000 / months if n and months else None, 2),
            "median_lead_days": _round(statistics.median(leads) if leads else None, 1),
            "lead_time_customers": len(leads),
        },
        "curve": {
            "budgets": list(BUDGETS),
            "base_rate": _round(churned / n if n else None),
            "churnwatch": [_round(precision_at(ours, labels, b)) for b in BUDGETS],
            "recency": [_round(precision_at(recency, labels, b)) for b in BUDGETS],
            "frequency": [_round(precision_at(fewer, labels, b)) for b in BUDGETS],
        },
    }
