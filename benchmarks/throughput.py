"""Throughput of one worker with all signals, beside the raw consume ceiling.

Produces a synthetic mixed stream (purchases, contacts, complaints with
Hebrew and English text) of ``--customers`` customers over ``--days`` days,
then measures in the same run, on the same broker: (1) a raw aiokafka
consumer decoding every message with orjson (the ceiling) and (2) one
churnwatch worker (RocksDB store, all nine signals) processing them all,
from its first committed offset to its last.  The ratio of the two is what
stays meaningful on a noisy machine.

    python -m benchmarks --only throughput --customers 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from stream_app.offline.synthetic import generate

from .common import (
    Bench,
    Figure,
    log,
    metric_sum,
    produce_population,
    profiled,
    raw_consume,
    setup_topics,
    summarize_profile,
    wait_committed,
    worker,
)

NAME = "throughput"
TARGET_EVENTS_PER_S = 10_000
#: Put first on a worker's PYTHONPATH, its sitecustomize switches the assessment off.
HEADROOM = Path(__file__).with_name("headroom")


#: What ``--headroom`` switches off, in turn: (HEADROOM_OFF, figure, label).
HEADROOM_LEVELS = (
    ("assessment", "worker_rate_assessment_off",
     "the same worker with the assessment off (no signal, no alert)"),
    ("core", "worker_rate_core_off",
     "the same worker with the whole pure core off (no fold, no model, no assessment)"),
)


def headroom_env(off: str) -> dict[str, str]:
    """The environment of a worker with ``off`` switched off (see ``headroom/sitecustomize.py``)."""
    rest = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(HEADROOM), *([rest] if rest else [])]),
            "HEADROOM_OFF": off}


def run(args: argparse.Namespace) -> list[Figure]:
    customers, days = args.customers, args.days
    log(f"{NAME}: generating {customers:,} customers over {days} days")
    pop = generate(customers=customers, days=days, seed=args.seed)
    total = len(pop.events)
    params = {"customers": customers, "days": days, "events": total, "store": "rocksdb://",
              "partitions": 4, "counts": pop.counts}
    log(f"{NAME}: {total:,} events " + ", ".join(f"{v:,} {k}" for k, v in
                                                 sorted(pop.counts.items())))
    figures: list[Figure] = []
    with Bench(NAME, keep=args.keep) as bench:
        s = bench.settings("churnwatch-bench-throughput")
        setup_topics(s)
        t = time.perf_counter()
        ends = asyncio.run(produce_population(s, pop))
        produce_rate = total / (time.perf_counter() - t)
        log(f"{NAME}: produced at {produce_rate:,.0f} events/s; raw consume...")
        raw = asyncio.run(raw_consume(s, s.input_topics[:3], total))
        log(f"{NAME}: raw aiokafka consumer {raw:,.0f} events/s; starting the worker")
        profile = args.profile / "throughput-worker.folded" if args.profile else None
        with worker(s, bench.log_path("worker")) as proc, profiled(proc.pid, profile):
            seen = wait_committed(s, ends, [proc], label=f"{NAME} worker",
                                  poll=0.25, ports=[s.web_port])
            applied = metric_sum(s.web_port, "churnwatch_events_total")
            alerts = metric_sum(s.web_port, "churnwatch_alerts_total")
        rate = seen.rate
        bare: dict[str, float] = {}
        for off, _, _ in HEADROOM_LEVELS if args.headroom else ():
            log(f"{NAME}: the same stream with the {off} off...")
            s_off = bench.settings(f"churnwatch-bench-throughput-{off}-off")
            setup_topics(s_off)
            with worker(s_off, bench.log_path(f"worker-{off}-off"), headroom_env(off)) as proc:
                bare[off] = wait_committed(s_off, ends, [proc], poll=0.25,
                                           label=f"{NAME} worker, {off} off",
                                           ports=[s_off.web_port]).rate
                if metric_sum(s_off.web_port, "churnwatch_alerts_total"):
                    raise RuntimeError(f"the worker with the {off} off raised alerts: "
                                       "the switch did not take")
    if profile is not None:
        for line in summarize_profile(profile):
            log(f"{NAME} profile: {line}")
    figures.append(Figure(NAME, "produce_rate", produce_rate, "events/s", params=params,
                          label="producing the events (aiokafka)"))
    figures.append(Figure(NAME, "raw_consume_rate", raw, "events/s", params=params,
                          label="raw aiokafka consumer + orjson (ceiling)"))
    extra = {**params, "seconds_first_to_last": round(seen.seconds, 2),
             "commit_rate": round(seen.commit_rate, 1),
             "events_applied_metric": applied, "alert_signals_metric": alerts}
    figures.append(Figure(NAME, "worker_rate_all_signals", rate, "events/s", params=extra,
                          label="one worker, all nine signals, first to last event applied",
                          target=f">= {TARGET_EVENTS_PER_S:,} events/s",
                          meets_target=rate >= TARGET_EVENTS_PER_S))
    figures.append(Figure(NAME, "worker_vs_raw_ratio", rate / raw if raw else 0.0, "ratio",
                          params=params, label="worker / raw consumer"))
    for off, figure, label in HEADROOM_LEVELS:
        if off in bare:
            figures.append(Figure(NAME, figure, bare[off], "events/s", params=params,
                                  label=label))
            figures.append(Figure(
                NAME, f"{off}_headroom", bare[off] / rate if rate else 0.0, "ratio",
                params=params, label=f"{off} off / all nine signals: the most a faster "
                                     f"{off} could give"))
    return figures

