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
* **repeat buyers**: customers with at least two purchase rows before the
  cutoff; every ranking figure is also given for them alone, because most
  one-time buyers cannot be told apart by any score and dilute the rest.
* **Pareto/NBD fitted offline** baseline: the population model of
  :mod:`stream_app.core.model` fitted by maximum likelihood on every customer's
  ``(x, t_x, T)`` at the cutoff (in whole UTC days, as day-stamped data
  has them), ranking by expected purchases in the horizon, fewer = riskier:
  what the literature's model does with the same data and no stream.
* **calibration**: the risk read as a probability, ``risk / 100`` =
  P(no purchase in the next ``H`` days) with ``H`` the policy's model
  horizon, against its own label "no purchase in ``(cutoff, cutoff + H]``"
  (not the evaluation horizon: a probability is only checkable against the
  event it is a probability of).  Brier score (mean squared error), and the
  expected calibration error over **10 equal-width bins** of the predicted
  probability (``[0, 0.1)`` ... ``[0.9, 1]``): the count-weighted mean of
  ``|mean predicted - observed rate|``; equal width rather than deciles so
  that a score with many ties is not split at arbitrary places in a tie.
* **alerted**: at least one alert with event time in
  ``(cutoff - lookback, cutoff]``: the customers a team would have had on its
  list at the cutoff.  Precision and recall of "alerted" against "churned".
* **alerts per 1,000 customers per month**: alerts in the lookback window per
  1,000 customers in the population, per 30-day month: the load on the team.
* **threshold for a budget**: a team that can act on ``N`` alerts per 1,000
  customers per month works, each month, through a list of ``N`` per 1,000
  customers; the suggested threshold is the lowest risk whose share of
  customers at or above it at the cutoff is at most ``N / 1000`` (ties are
  kept whole, so the list never exceeds the budget unless the riskiest tie
  alone does), with the precision and recall of that list.
* **lead time**: for churned, alerted customers, days from the first alert of
  the episode still alerting in the lookback window (an episode may have
  opened before the window) to the customer's last purchase before the
  cutoff; positive when the alert came before the last purchase (the customer
  was still buying), negative when it came after (it noticed the silence).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core import model

DAY = 86400.0
MONTH_DAYS = 30.0
#: Shares of the population contacted at which precision is reported.
TOP_SHARES = (0.01, 0.10, 0.20)
#: Equal-width bins of the predicted probability for calibration.
CALIBRATION_BINS = 10
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


def purchase_stats(purchases: Sequence[float], cutoff: float) -> tuple[int, int, int]:
    """The model's ``(x, t_x, T)`` at the cutoff, in whole UTC days from the first purchase.

    ``x`` counts distinct purchase days after the first (two orders on one
    day are one purchase occasion, as the model assumes); whole days because
    transaction logs are mostly day-stamped, and the literature's figures
    on them are in days.
    """
    days = sorted({math.floor(t / DAY) for t in purchases if t <= cutoff})
    if not days:
        raise ValueError("no purchase before the cutoff")
    first = days[0]
    return len(days) - 1, days[-1] - first, math.floor(cutoff / DAY) - first


def fit_offline(stats: Sequence[tuple[int, int, int]], cutoff: float) -> model.ParetoNBD:
    """Pareto/NBD parameters by maximum likelihood over every customer at the cutoff."""
    today = math.floor(cutoff / DAY)
    cells = model.Cells()
    for x, t_x, T in stats:
        first = today - T
        cells.add(x, first, first + t_x)
    # The fit ages a customer from the middle of its first one-day bucket:
    # the middle of today keeps the ages the whole days the scores use.
    return model.fit(cells, today + 0.5)


def brier(probs: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Mean squared difference between probability and outcome (0 is perfect)."""
    if not probs:
        return None
    return sum((p - y) ** 2 for p, y in zip(probs, labels, strict=True)) / len(probs)


@dataclass(frozen=True, slots=True)
class Bin:
    """One row of a reliability table: predictions in ``[low, high)``."""

    low: float
    high: float
    count: int
    predicted: float | None     # mean predicted probability in the bin
    observed: float | None      # share of the bin for whom the event happened


def reliability(probs: Sequence[float], labels: Sequence[bool],
                bins: int = CALIBRATION_BINS) -> list[Bin]:
    """Equal-width bins of the predicted probability; the last bin includes 1."""
    sums = [0.0] * bins
    hits = [0] * bins
    counts = [0] * bins
    for p, y in zip(probs, labels, strict=True):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"a probability must be in [0, 1], got {p!r}")
        b = min(bins - 1, int(p * bins))
        sums[b] += p
        hits[b] += bool(y)
        counts[b] += 1
    return [Bin(b / bins, (b + 1) / bins, counts[b],
                sums[b] / counts[b] if counts[b] else None,
                hits[b] / counts[b] if counts[b] else None) for b in range(bins)]


def expected_calibration_error(table: Sequence[Bin]) -> float | None:
    """Count-weighted mean gap between predicted and observed over the bins."""
    n = sum(b.count for b in table)
    if n == 0:
        return None
    return sum(b.count * abs(b.predicted - b.observed) for b in table
               if b.predicted is not None and b.observed is not None) / n


@dataclass(frozen=True, slots=True)
class AtThreshold:
    """Customers at or above a risk threshold: how many, and how right."""

    threshold: float
    customers: int
    share: float | None
    precision: float | None
    recall: float | None


def at_threshold(scores: Sequence[float], labels: Sequence[bool], threshold: float
                 ) -> AtThreshold:
    flags = [s >= threshold for s in scores]
    precision, recall = precision_recall(flags, labels)
    flagged = sum(flags)
    return AtThreshold(threshold, flagged, flagged / len(scores) if scores else None,
                       precision, recall)


def threshold_for_share(scores: Sequence[float], labels: Sequence[bool], share: float
                        ) -> AtThreshold | None:
    """The lowest threshold whose share at or above it is at most ``share``.

    Ties are kept whole (a threshold cannot split customers of equal risk);
    when even the highest score's tie exceeds the share, that score is
    returned, and its share says by how much the budget is exceeded.
    """
    n = len(scores)
    if n == 0:
        return None
    limit = share * n
    best: float | None = None
    above = 0
    values = sorted(set(scores), reverse=True)
    counts: dict[float, int] = {}
    for s in scores:
        counts[s] = counts.get(s, 0) + 1
    for v in values:
        if above + counts[v] > limit + 1e-9:
            break
        above += counts[v]
        best = v
    return at_threshold(scores, labels, values[0] if best is None else best)


@dataclass(frozen=True, slots=True)
class Split:
    cutoff: float
    horizon_days: float
    lookback_days: float
    #: H of the risk's probability, "no purchase in the next H days".
    model_horizon_days: float = 90.0


def _score_summary(scores: Sequence[float], labels: Sequence[bool]) -> dict[str, Any]:
    out: dict[str, Any] = {"auc": _round(auc(scores, labels))}
    for share in TOP_SHARES:
        out[f"precision_at_{round(share * 100)}pct"] = _round(precision_at(scores, labels, share))
    return out


def _round(x: float | None, places: int = 4) -> float | None:
    return None if x is None else round(x, places)


def _calibration(probs: Sequence[float], labels: Sequence[bool]) -> dict[str, Any]:
    table = reliability(probs, labels)
    return {
        "brier": _round(brier(probs, labels)),
        "ece": _round(expected_calibration_error(table)),
        "mean_predicted": _round(sum(probs) / len(probs) if probs else None),
        "reliability": [{"low": b.low, "high": b.high, "count": b.count,
                         "predicted": _round(b.predicted), "observed": _round(b.observed)}
                        for b in table],
    }


def _threshold_dict(t: AtThreshold | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"threshold": t.threshold, "customers": t.customers, "share": _round(t.share),
            "per_1000_customers": _round(None if t.share is None else 1000 * t.share, 1),
            "precision": _round(t.precision), "recall": _round(t.recall)}


def evaluate_split(purchases: Mapping[str, Sequence[float]], risk: Mapping[str, float],
                   alerts: Mapping[str, Sequence[tuple[float, int]]], split: Split,
                   alert_threshold: float = 30.0, budget_per_1000: float = 100.0,
                   offline: model.ParetoNBD | None = None) -> dict[str, Any]:
    """Every figure of the evaluation from plain data.

    ``purchases``: customer -> purchase times (all of them, before and after
    the cutoff); ``risk``: customer -> risk 0-100 at the cutoff (missing = 0,
    the caller reports how many); ``alerts``: customer -> (event time,
    episode) of each alert; ``alert_threshold``: the policy's risk at which
    an alert opens; ``budget_per_1000``: alerts per 1,000 customers per month
    the team can act on; ``offline``: the Pareto/NBD baseline's parameters
    (None: fitted here on the population at the cutoff).
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
    stats = [purchase_stats(purchases[c], cutoff) for c in customers]
    params = offline if offline is not None else (
        fit_offline(stats, cutoff) if stats else model.DEFAULT)
    pareto = [-model.expected_purchases(params, x, t_x, T, split.horizon_days)
              for x, t_x, T in stats]
    rankings = {"churnwatch": ours, "recency": recency, "frequency": fewer,
                "pareto_nbd_offline": pareto}

    repeat = [i for i, c in enumerate(customers) if frequency(purchases[c], cutoff) >= 2]
    repeat_labels = [labels[i] for i in repeat]

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
        "scores": {name: _score_summary(v, labels) for name, v in rankings.items()},
        "repeat_buyers": {
            "customers": len(repeat), "churned": sum(repeat_labels),
            "churn_rate": _round(sum(repeat_labels) / len(repeat) if repeat else None),
            "scores": {name: _score_summary([v[i] for i in repeat], repeat_labels)
                       for name, v in rankings.items()},
        },
        "pareto_nbd_offline": {"params": [params.r, params.alpha, params.s, params.beta],
                               "fitted": offline is None and bool(stats)},
        "calibration": _calibration_section(purchases, customers, ours, stats, params, split),
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
            "policy_threshold": _threshold_dict(at_threshold(ours, labels, alert_threshold)),
            "budget": {
                "per_1000_customers_per_month": budget_per_1000,
                "suggested": _threshold_dict(
                    threshold_for_share(ours, labels, budget_per_1000 / 1000)),
            },
        },
        "curve": {
            "budgets": list(BUDGETS),
            "base_rate": _round(churned / n if n else None),
            **{name: [_round(precision_at(v, labels, b)) for b in BUDGETS]
               for name, v in rankings.items()},
        },
    }


def _calibration_section(purchases: Mapping[str, Sequence[float]], customers: Sequence[str],
                         ours: Sequence[float], stats: Sequence[tuple[int, int, int]],
                         params: model.ParetoNBD, split: Split) -> dict[str, Any]:
    """The risk as P(no purchase in H days), against what happened in those H days.

    Refused (``available`` false, with the reason) when the purchases end
    before cutoff + H: customers would count as not buying in days that
    were never recorded.
    """
    h = split.model_horizon_days
    end = split.cutoff + h * DAY
    last = max((t for ts in purchases.values() for t in ts), default=0.0)
    out: dict[str, Any] = {"horizon_days": h, "bins": CALIBRATION_BINS,
                           "binning": "equal-width"}
    if last < end - DAY:
        out["available"] = False
        out["reason"] = (f"the purchases end before cutoff + {h:g} days, so "
                         "'no purchase in the next H days' cannot be checked")
        return out
    truth = [bool(label(purchases[c], split.cutoff, h)) for c in customers]
    out["available"] = True
    out["no_purchase_rate"] = _round(sum(truth) / len(truth) if truth else None)
    out["churnwatch"] = _calibration([min(1.0, max(0.0, r / 100)) for r in ours], truth)
    out["pareto_nbd_offline"] = _calibration(
        [model.p_no_purchase(params, x, t_x, T, h) for x, t_x, T in stats], truth)
    return out
