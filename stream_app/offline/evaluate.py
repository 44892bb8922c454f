"""``churnwatch evaluate``: would this have caught the customers we lost, and how early?

Runs the real pipeline, not a re-implementation of it: the history before the
cutoff is replayed through a broker and a worker (both started here unless a
broker is given), the worker's own alerts are collected from the alerts
topic, and each customer's state is read back from the state table's
changelog and scored at the cutoff with the project's pure scoring
functions.  What the data shows after the cutoff labels each customer; the
figures come from :mod:`stream_app.offline.evaluation`.

On a broker that is given (``--broker-url``), the run uses topics and a
consumer group of its own (``<run id>-purchases`` ...), so it neither reads
nor disturbs what is already there; its own worker is started either way,
because the figures are only honest for a worker that saw exactly this data.
"""

from __future__ import annotations

import contextlib
import io
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from kafka import TopicPartition

from ..core.alerting import evaluate_signals, iso
from ..core.decoding import BadTimestamp, parse_event_time
from ..core.scoring import risk_probability
from ..core.settings import OUTPUT_TOPIC_FIELDS, TOPIC_FIELDS, Settings
from ..core.state import CustomerState
from ..engine.processing import MODEL_PREFIX, is_customer_key, read_fit
from ..kafka import clients
from ..kafka.admin import create_topics
from ..kafka.broker import LocalBroker, free_port
from .evaluation import DAY, Split, evaluate_split
from .harness import (
    Collected,
    WorkerStopped,
    consume_outputs,
    finish_reading,
    running_worker,
    wait_processed,
)
from .mapping import Loaded, MappedEvent
from .progress import Progress
from .replay import send

#: The risk's horizon when the policy names none: "no purchase in the next 90 days".
DEFAULT_MODEL_HORIZON = 90.0
#: Alerts per 1,000 customers per month a team can act on, when not given.
DEFAULT_BUDGET = 100.0

#: After the last commit, how long the changelog may take to show every customer.
STATE_WAIT_SECONDS = 60


class EvaluationError(RuntimeError):
    """The run could not produce honest figures; the message says why and what to do."""


def split_events(loaded: Loaded, cutoff: float, horizon_days: float
                 ) -> tuple[list[MappedEvent], dict[str, list[float]]]:
    """Events to replay (up to the cutoff) and every customer's purchase times.

    Refuses a horizon that runs past the data: customers would be called
    churned for purchases that were simply never recorded.
    """
    replay = [e for e in loaded.events if e.ts <= cutoff]
    purchases: dict[str, list[float]] = {}
    for e in loaded.events:
        if e.kind == "purchases":
            purchases.setdefault(e.customer_id, []).append(e.ts)
    if not replay:
        raise EvaluationError(f"no events before the cutoff {iso(cutoff)}; pick a later "
                              "--cutoff")
    last = max((t for ts in purchases.values() for t in ts), default=0.0)
    end = cutoff + horizon_days * DAY
    if last < end - DAY:
        raise EvaluationError(
            f"the purchases end on {iso(last)[:10]} but cutoff + horizon is {iso(end)[:10]}: "
            "the labels would count unrecorded months as churn. Use an earlier --cutoff or "
            "a shorter --horizon")
    return replay, purchases


def read_states(s: Settings, expect: dict[str, float], timeout: float,
                progress: Progress, fits: dict[int, bytes] | None = None
                ) -> dict[str, CustomerState]:
    """Each customer's latest state from the changelog (and into ``fits``, each
    partition's purchase-model fit, when the worker fitted one).

    ``expect`` maps customer -> event time of their last replayed event; the
    read goes on until every such customer's state has reached it (the
    worker commits offsets and writes the changelog separately), or timeout.
    """
    consumer = clients.consumer(s, enable_auto_commit=False, consumer_timeout_ms=1000,
                                max_partition_fetch_bytes=4 << 20)
    latest: dict[bytes, bytes] = {}
    states: dict[str, CustomerState] = {}
    try:
        parts = [TopicPartition(s.state_changelog_topic, p) for p in range(s.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + timeout
        while True:
            changed: set[bytes] = set()
            for m in consumer:
                if m.key is not None and m.value is not None:
                    latest[m.key] = m.value
                    changed.add(m.key)
            for key in changed:
                if not is_customer_key(key):
                    if fits is not None and key.startswith(MODEL_PREFIX):
                        fits[int(key[len(MODEL_PREFIX):])] = latest[key]
                    continue  # the worker's alert checkpoints and fits
                try:
                    st = CustomerState.from_bytes(latest[key])
                except (KeyError, TypeError, ValueError):
                    continue  # a state this version cannot read
                states[st.customer_id] = st
            behind = [c for c, ts in expect.items()
                      if c not in states or states[c].last_ts < ts]
            progress.show(f"  reading state: {len(states):,} customers, "
                          f"{len(behind):,} not yet up to date",
                          100 * (len(expect) - len(behind)) / max(1, len(expect)))
            if not behind or time.monotonic() > deadline:
                return states
    finally:
        consumer.close()


def model_horizon_days(policy: Any) -> float:
    """H of the risk's probability: the policy's ``[model].horizon_days``, else 90 days."""
    return float(getattr(getattr(policy, "model", None), "horizon_days", DEFAULT_MODEL_HORIZON))


def score_at(states: dict[str, CustomerState], cutoff: float, s: Settings,
             fits: dict[int, bytes] | None = None) -> dict[str, float]:
    """Risk of every customer at the cutoff, with the policy the worker ran with
    and the population numbers it had fitted for the customer's partition."""
    base = s.policy()
    policies = {p: read_fit(raw, base)[0] for p, raw in (fits or {}).items()}
    scores = {}
    for cid, st in states.items():
        policy = policies.get(st.partition, base)
        # Unrounded: the alert's one decimal would tie thousands of customers
        # near 100% whom the probability itself tells apart.
        scores[cid] = 100.0 * risk_probability(st, evaluate_signals(st, cutoff, policy),
                                               cutoff, policy)
    return scores


@contextlib.contextmanager
def _broker(base: Settings, broker_url: str | None, workdir: Path, run_id: str
            ) -> Iterator[Settings]:
    common: dict[str, Any] = {"app_id": run_id, "data_dir": str(workdir / "state"),
                              "web_port": free_port()}
    if broker_url:
        topics = {name: f"{run_id}-{getattr(base, name)}"
                  for name in (*TOPIC_FIELDS.values(), *OUTPUT_TOPIC_FIELDS)}
        yield base.with_overrides(broker_url=broker_url, **topics, **common)
        return
    with LocalBroker(log_path=workdir / "broker.log") as broker:
        yield base.with_overrides(broker_url=broker.url, broker_profile="local", **common)


def run(base: Settings, loaded: Loaded, cutoff: float, horizon_days: float,
        lookback_days: float, broker_url: str | None = None,
        out: TextIO | None = None, progress: Progress | None = None,
        budget_per_1000: float = DEFAULT_BUDGET) -> dict[str, Any]:
    """The whole evaluation; returns the report as plain data (what ``--json`` writes)."""
    started = time.monotonic()
    log = out.write if out is not None else (lambda _text: 0)
    progress = progress or Progress(io.StringIO())
    replay, purchases = split_events(loaded, cutoff, horizon_days)
    last_event: dict[str, float] = {}
    for e in replay:
        last_event[e.customer_id] = e.ts
    workdir = Path(tempfile.mkdtemp(prefix="churnwatch-evaluate-"))
    run_id = f"churnwatch-eval-{secrets.token_hex(4)}"
    with _broker(base, broker_url, workdir, run_id) as s:
        log(f"Broker {s.bootstrap_servers}; run {run_id}; worker log {workdir / 'worker.log'}\n")
        create_topics(s)
        with running_worker(s, workdir / "worker.log") as worker:
            got, stop = Collected(), threading.Event()
            reader = threading.Thread(target=consume_outputs,
                                      args=(s, got, stop, lambda _a: None), daemon=True)
            reader.start()
            log(f"Replaying {len(replay):,} events up to {iso(cutoff)}...\n")
            sent = send(s, replay, len(replay), progress)
            progress.phase()
            try:
                wait_processed(s, worker, sent.offsets, got, progress, workdir / "worker.log")
            except WorkerStopped as exc:
                raise EvaluationError(str(exc)) from None
            processed_at = time.monotonic()
            progress.phase()
            fits: dict[int, bytes] = {}
            states = read_states(s, last_event, STATE_WAIT_SECONDS, progress, fits)
            finish_reading(got, stop, reader)
            progress.clear()
    risk = score_at(states, cutoff, s, fits)
    alerts: dict[str, list[tuple[float, int]]] = {}
    for a in got.alerts:
        try:
            t = parse_event_time(a["ts"])
        except BadTimestamp:
            continue
        alerts.setdefault(a["customer_id"], []).append((t, int(a["episode"])))
    policy = s.policy()
    h = model_horizon_days(policy)
    try:
        report = evaluate_split(purchases, risk, alerts,
                                Split(cutoff, horizon_days, lookback_days, h),
                                alert_threshold=policy.alerting.open_at,
                                budget_per_1000=budget_per_1000)
    except ModuleNotFoundError as exc:
        if exc.name != "numpy":
            raise
        raise EvaluationError("the offline Pareto/NBD baseline is fitted with numpy: "
                              "pip install 'churnwatch[eval]'") from None
    population = {c for c, ts in purchases.items() if min(ts) <= cutoff}
    stale = sorted(c for c in population
                   if c not in states or states[c].last_ts < last_event.get(c, 0.0))
    replay_seconds = processed_at - started
    report["split"] = {"cutoff": iso(cutoff), "horizon_days": horizon_days,
                       "label_end": iso(cutoff + horizon_days * DAY),
                       "lookback_days": lookback_days, "model_horizon_days": h}
    report["alerts"]["total_before_cutoff"] = sum(
        1 for ts in alerts.values() for t, _ in ts if t <= cutoff)
    report["customers"]["without_state"] = len(stale)
    report["run"] = {
        "events_replayed": sent.events,
        "rows_read": loaded.rows,
        "rows_rejected": loaded.rejected,
        "dead_letters": len(got.dead_letters),
        "broker": broker_url or "embedded",
        "replay_and_processing_seconds": round(replay_seconds, 1),
        "events_per_second": round(sent.events / max(replay_seconds, 1e-6), 1),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    return report


def parse_cutoff(text: str, end_of_day: bool = True) -> float:
    """A date is the end of that day (UTC): its purchases count as before the cutoff."""
    dt = datetime.fromisoformat(text)
    if len(text) <= 10 and end_of_day:
        dt = dt.replace(hour=23, minute=59, second=59)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def num(x: float | None, places: int = 3) -> str:
    return "-" if x is None else f"{x:.{places}f}"


RANKINGS = {"churnwatch": "churnwatch risk at the cutoff",
            "recency": "recency (days since purchase)",
            "frequency": "frequency (fewer purchases)",
            "pareto_nbd_offline": "Pareto/NBD fitted offline"}


def _ranking_cells(m: dict[str, Any]) -> str:
    return (f"{num(m['auc']):>7}{pct(m['precision_at_1pct']):>8}"
            f"{pct(m['precision_at_10pct']):>8}{pct(m['precision_at_20pct']):>8}")


def _threshold_text(t: dict[str, Any] | None) -> str:
    if t is None:
        return "-"
    who = "customer" if t["customers"] == 1 else "customers"
    return (f"risk >= {t['threshold']:g}: {t['customers']:,} {who} at the cutoff "
            f"({pct(t['share'])}, {t['per_1000_customers']:g} per 1,000), precision "
            f"{pct(t['precision'])}, recall {pct(t['recall'])}")


def _calibration_lines(cal: dict[str, Any]) -> list[str]:
    h = cal["horizon_days"]
    if not cal.get("available"):
        return [f"calibration at {h:g} days: not measured ({cal['reason']})"]
    rate = cal["no_purchase_rate"]
    lines = [
        f"calibration  the risk read as P(no purchase in the next {h:g} days), against no "
        f"purchase in (cutoff, cutoff + {h:g} days]: {pct(rate)} of customers",
        f"{'':<32}{'Brier':>7}{'ECE':>8}{'mean':>8}",
    ]
    names = {"churnwatch": "churnwatch risk / 100", "pareto_nbd_offline": RANKINGS[
        "pareto_nbd_offline"]}
    for key, text in names.items():
        m = cal[key]
        lines.append(f"{text:<32}{num(m['brier']):>7}{num(m['ece']):>8}"
                     f"{pct(m['mean_predicted']):>8}")
    if rate is not None:
        lines.append(f"{'the rate for everyone':<32}{num(rate * (1 - rate)):>7}"
                     f"{num(0.0):>8}{pct(rate):>8}")
    lines += [
        f"reliability  ({cal['bins']} equal-width bins of the predicted probability; ECE = "
        "their count-weighted mean |predicted - observed|)",
        f"{'  predicted':<14}{'churnwatch: mean':>17}{'observed':>10}{'customers':>11}"
        f"{'Pareto/NBD: mean':>19}{'observed':>10}{'customers':>11}",
    ]
    for ours, theirs in zip(cal["churnwatch"]["reliability"],
                            cal["pareto_nbd_offline"]["reliability"], strict=True):
        span = f"  {100 * ours['low']:.0f}-{100 * ours['high']:.0f}%"
        lines.append(f"{span:<14}{pct(ours['predicted']):>17}{pct(ours['observed']):>10}"
                     f"{ours['count']:>11,}{pct(theirs['predicted']):>19}"
                     f"{pct(theirs['observed']):>10}{theirs['count']:>11,}")
    return lines


def table(report: dict[str, Any], name: str) -> str:
    """The report for people."""
    c, a, sp, r = report["customers"], report["alerts"], report["split"], report["run"]
    sc, rb = report["scores"], report["repeat_buyers"]
    lines = [
        f"Evaluation of {name}: cutoff {sp['cutoff']}, horizon {sp['horizon_days']:g} days "
        f"(to {sp['label_end'][:10]}), alerts counted in the {sp['lookback_days']:g} days "
        "before the cutoff",
        f"customers  {c['evaluated']:,} evaluated, {c['churned']:,} churned "
        f"({pct(c['churn_rate'])}), {c['retained']:,} retained; "
        f"{c['excluded_first_purchase_after_cutoff']:,} excluded (first purchase after the "
        f"cutoff); {c['without_state']:,} without up-to-date state",
        f"           repeat buyers (2+ purchases before the cutoff): {rb['customers']:,}, "
        f"{rb['churned']:,} churned ({pct(rb['churn_rate'])})",
        "",
        f"{'':<32}{'all customers':^31}  {'repeat buyers':^31}",
        f"{'ranking by':<32}{'AUC':>7}{'top 1%':>8}{'top 10%':>8}{'top 20%':>8}  "
        f"{'AUC':>7}{'top 1%':>8}{'top 10%':>8}{'top 20%':>8}",
    ]
    for key, text in RANKINGS.items():
        lines.append(f"{text:<32}{_ranking_cells(sc[key])}  {_ranking_cells(rb['scores'][key])}")
    rate, rrate = pct(c["churn_rate"]), pct(rb["churn_rate"])
    lines.append(f"{'random (the churn rate)':<32}{'0.500':>7}{rate:>8}{rate:>8}{rate:>8}  "
                 f"{'0.500':>7}{rrate:>8}{rrate:>8}{rrate:>8}")
    lines += ["", *_calibration_lines(report["calibration"])]
    lead = a["median_lead_days"]
    budget = a["budget"]
    lines += [
        "",
        f"alerts     {a['customers_alerted']:,} customers alerted "
        f"({pct(a['alerted_share'])}): precision {pct(a['precision'])}, "
        f"recall {pct(a['recall'])}",
        f"           {a['per_1000_customers_per_month']} alerts per 1,000 customers per "
        f"month; {a['total_before_cutoff']:,} alerts before the cutoff in all",
        "           median lead time " + ("-" if lead is None else
                                          f"{lead:+.0f} days (the alerting episode's first "
                                          "alert to the last purchase, "
                                          f"{a['lead_time_customers']:,} churners)"),
        "           at the policy's alert threshold, " + _threshold_text(a["policy_threshold"]),
        f"           for a budget of {budget['per_1000_customers_per_month']:g} alerts per "
        "1,000 customers per month, a monthly list at",
        "           " + _threshold_text(budget["suggested"]) + (
            " (the riskiest tie alone is over the budget)"
            if budget["suggested"] is not None and budget["suggested"]["per_1000_customers"]
            > budget["per_1000_customers_per_month"] + 0.05 else ""),
        "",
        f"run        {r['events_replayed']:,} events replayed ({r['rows_rejected']:,} rows "
        f"rejected, {r['dead_letters']} dead letters) in {r['replay_and_processing_seconds']:.0f}"
        f" s ({r['events_per_second']:,.0f}/s); {r['total_seconds']:.0f} s in all",
    ]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path, name: str) -> None:
    """Precision against the share contacted, and the risk's reliability diagram.

    Two panels in one file: how well it ranks (beside the baselines) and
    whether its number can be read as a probability.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EvaluationError("--plot needs matplotlib: pip install 'churnwatch[eval]'") from None
    curve, a = report["curve"], report["alerts"]
    x = [100 * b for b in curve["budgets"]]
    fig, (ax, rel) = plt.subplots(1, 2, figsize=(14, 5.5), dpi=110,
                                  gridspec_kw={"width_ratios": [1.35, 1]})
    styles = {"churnwatch": ("churnwatch risk", "#c0392b", 2.2),
              "recency": ("recency baseline", "#2c7fb8", 1.4),
              "frequency": ("frequency baseline", "#7f7f7f", 1.4),
              "pareto_nbd_offline": ("Pareto/NBD fitted offline", "#2ca25f", 1.4)}
    for key, (text, color, width) in styles.items():
        auc_value = report["scores"][key]["auc"]
        ys = [100 * v if v is not None else float("nan") for v in curve[key]]
        ax.plot(x, ys, color=color, linewidth=width,
                label=f"{text} (AUC {num(auc_value)})")
    if curve["base_rate"] is not None:
        ax.axhline(100 * curve["base_rate"], color="black", linestyle="--", linewidth=1,
                   label=f"random (churn rate {pct(curve['base_rate'])})")
    if a["precision"] is not None and a["alerted_share"]:
        ax.scatter([100 * a["alerted_share"]], [100 * a["precision"]], color="#c0392b",
                   marker="D", s=50, zorder=5, label="churnwatch alerts (lookback window)")
    ax.set_xlabel("alert budget: share of customers contacted, riskiest first (%)")
    ax.set_ylabel("precision: share of them who churned (%)")
    sp = report["split"]
    ax.set_title(f"{name}: cutoff {sp['cutoff'][:10]}, horizon {sp['horizon_days']:g} days")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)

    cal = report["calibration"]
    rel.plot([0, 100], [0, 100], color="black", linestyle="--", linewidth=1,
             label="perfectly calibrated")
    if cal.get("available"):
        for key, text, color in (("churnwatch", "churnwatch risk", "#c0392b"),
                                 ("pareto_nbd_offline", "Pareto/NBD fitted offline",
                                  "#2ca25f")):
            rows = [b for b in cal[key]["reliability"] if b["count"]]
            px = [100 * b["predicted"] for b in rows]
            py = [100 * b["observed"] for b in rows]
            total = sum(b["count"] for b in rows) or 1
            rel.plot(px, py, color=color, linewidth=1.4, marker="o", markersize=0)
            rel.scatter(px, py, color=color, s=[8 + 400 * b["count"] / total for b in rows],
                        zorder=5, label=f"{text} (ECE {num(cal[key]['ece'])}, "
                        f"Brier {num(cal[key]['brier'])})")
        rel.set_title(f"reliability: P(no purchase in {cal['horizon_days']:g} days)")
    else:
        rel.set_title(f"reliability at {cal['horizon_days']:g} days: not measured")
    rel.set_xlabel("predicted probability (%; dot size = customers in the bin)")
    rel.set_ylabel("observed: share with no purchase (%)")
    rel.set_xlim(-2, 102)
    rel.set_ylim(-2, 102)
    rel.grid(alpha=0.3)
    legend = rel.legend(loc="lower right", fontsize=8, scatterpoints=1)
    for handle in legend.legend_handles:
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([30])  # the bins' sizes mean nothing in the legend
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
