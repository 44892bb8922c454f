"""Churnwatch beside the peer a user would pick instead: a quix-streams job.

On one broker, in one run, over the same pre-produced topics (the synthetic
stream of ``--customers`` customers, as in the throughput benchmark):
(1) the raw aiokafka consumer decoding every message with orjson (the
ceiling), (2) one Churnwatch worker with all signals and (3) a quix-streams
job with per-customer RocksDB state: counts, the last 12 purchase amounts,
complaint times and an alert on three complaints in 30 days
(:mod:`benchmarks.quix_job`).  Each rate is also given as a share of the
ceiling, which is what stays meaningful on a noisy machine.

quixstreams comes with the ``bench`` extra; ``--peer-python`` runs the job
under another interpreter (a separate virtualenv holding quixstreams).

    python -m benchmarks --only peer [--quick] [--peer-python .venv-bench/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stream_app.offline.harness import committed_total
from stream_app.offline.synthetic import generate

from .common import (
    Bench,
    Figure,
    WorkerFailed,
    log,
    log_tail,
    metric_sum,
    produce_population,
    raw_consume,
    setup_topics,
    wait_committed,
    worker,
)

NAME = "peer"
JOB = Path(__file__).with_name("quix_job.py")
PEER_GROUP = "churnwatch-bench-peer-quix"


def ratio(rate: float, ceiling: float) -> float:
    return rate / ceiling if ceiling > 0 else 0.0


def run_quix_job(bench: Bench, s: Any, ends: dict[tuple[str, int], int], python: str,
                 stall: float = 180.0) -> dict[str, Any]:
    """The quix job as a child process until it has processed every event; its timings."""
    expected = sum(ends.values())
    result_path = bench.work / "quix-result.json"
    log_path = bench.log_path("quix")
    cmd = [python, str(JOB), "--broker", s.bootstrap_servers, "--group", PEER_GROUP,
           "--state-dir", str(bench.work / "state-quix"),
           "--purchases", s.topic_purchases, "--contacts", s.topic_contacts,
           "--complaints", s.topic_complaints, "--alerts", "churnwatch-bench-peer-alerts",
           "--expected", str(expected), "--result", str(result_path)]
    progress = s.with_overrides(app_id=PEER_GROUP)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        done, advanced, next_log = 0, time.monotonic(), 0.0
        while proc.poll() is None:
            time.sleep(1.0)
            now_done = min(expected, committed_total(progress, ends))
            now = time.monotonic()
            if now_done > done:
                done, advanced = now_done, now
            elif now - advanced > stall:
                raise WorkerFailed(f"the quix job made no progress for {stall:.0f} s "
                                   f"({done:,}/{expected:,} committed)")
            if now >= next_log:
                log(f"{NAME} quix job: committed {done:,}/{expected:,}")
                next_log = now + 10.0
        if proc.returncode != 0 or not result_path.is_file():
            raise WorkerFailed(f"the quix job exited with code {proc.returncode}")
    except WorkerFailed:
        print(f"--- last lines of {log_path.name} ---\n{log_tail(log_path)}",
              file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    got: dict[str, Any] = json.loads(result_path.read_text())
    return got


def run(args: argparse.Namespace) -> list[Figure]:
    customers, days = args.customers, args.days
    python = str(args.peer_python or sys.executable)
    log(f"{NAME}: generating {customers:,} customers over {days} days")
    pop = generate(customers=customers, days=days, seed=args.seed)
    total = len(pop.events)
    params: dict[str, Any] = {"customers": customers, "days": days, "events": total,
                              "partitions": 4, "counts": pop.counts}
    log(f"{NAME}: {total:,} events")
    with Bench(NAME, keep=args.keep) as bench:
        s = bench.settings("churnwatch-bench-peer")
        setup_topics(s)
        ends = asyncio.run(produce_population(s, pop))
        log(f"{NAME}: produced; raw consume...")
        raw = asyncio.run(raw_consume(s, s.input_topics[:3], total))
        log(f"{NAME}: raw aiokafka consumer {raw:,.0f} events/s; starting the worker")
        with worker(s, bench.log_path("worker")) as proc:
            seen = wait_committed(s, ends, [proc], label=f"{NAME} worker",
                                  poll=0.25, ports=[s.web_port])
            cw_alerts = metric_sum(s.web_port, "churnwatch_alerts_total")
        cw = seen.rate
        log(f"{NAME}: churnwatch worker {cw:,.0f} events/s; starting the quix job ({python})")
        quix = run_quix_job(bench, s, ends, python)
        log(f"{NAME}: quix job {quix['rate']:,.0f} events/s")
    cw_params = {**params, "store": "rocksdb://",
                 "seconds_first_to_last": round(seen.seconds, 2),
                 "alert_signals_metric": cw_alerts}
    quix_params = {**params, "store": "quix RocksDB state, changelogged",
                   "quixstreams": quix.get("quixstreams"),
                   "processed": quix["processed"], "alerts": quix["alerts"],
                   "seconds_first_to_last": round(quix["seconds_first_to_last"], 2),
                   "seconds_start_to_first": quix.get("seconds_start_to_first"),
                   "seconds_last_to_stopped": quix.get("seconds_last_to_stopped")}
    return [
        Figure(NAME, "raw_consume_rate", raw, "events/s", params=params,
               label="raw aiokafka consumer + orjson (ceiling)"),
        Figure(NAME, "churnwatch_rate", cw, "events/s", params=cw_params,
               label="one Churnwatch worker, all nine signals"),
        Figure(NAME, "quix_rate", quix["rate"], "events/s", params=quix_params,
               label="quix-streams job: per-customer RocksDB state, 3-complaint alert"),
        Figure(NAME, "churnwatch_vs_raw_ratio", ratio(cw, raw), "ratio", params=params,
               label="Churnwatch / raw consumer"),
        Figure(NAME, "quix_vs_raw_ratio", ratio(quix["rate"], raw), "ratio", params=params,
               label="quix-streams / raw consumer"),
        Figure(NAME, "churnwatch_vs_quix_ratio", ratio(cw, quix["rate"]), "ratio",
               params=params, label="Churnwatch / quix-streams"),
    ]
