"""Scale-out: two workers against one on the same topics.

On one broker a synthetic stream is produced once; then (1) one worker and
(2) two workers (same app id between them, separate data dirs and web ports;
a fresh app id, so a fresh group and changelog, for each case) process all
of it.  Throughput is measured from the group's first committed offset to
its last.  Partitions bound the parallelism (4 here, so at most 4 workers
help), and on this 2-core machine the broker and both workers share the
cores.  The ceiling is twice the one-worker rate.  The sum of the workers'
``churnwatch_events_total`` counters against the number of events shows
how much was processed more than once (a rebalance hands partitions over
from their last committed offset).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from stream_app.offline.synthetic import generate

from .common import (
    Bench,
    Figure,
    log,
    metric_sum,
    produce_population,
    setup_topics,
    wait_committed,
    worker,
)

NAME = "scaleout"


def run_workers(bench: Bench, app_id: str, count: int, ends: dict[tuple[str, int], int]
                ) -> tuple[float, float | None, float]:
    """Events/s first to last commit, events applied (all workers), seconds."""
    settings = [bench.settings(app_id) for _ in range(count)]
    setup_topics(settings[0])
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(worker(s, bench.log_path(f"{app_id}-{i}")))
                 for i, s in enumerate(settings)]
        t0 = time.monotonic()
        seen = wait_committed(settings[0], ends, procs, label=f"{NAME} {count} worker(s)")
        # Committed offsets, not applied counters: a rebalance re-applies events.
        applied_parts = [metric_sum(s.web_port, "churnwatch_events_total") for s in settings]
        applied = (sum(a for a in applied_parts if a is not None)
                   if any(a is not None for a in applied_parts) else None)
        return seen.commit_rate, applied, seen.last_at - t0


def run(args: argparse.Namespace) -> list[Figure]:
    customers = args.scale_customers
    pop = generate(customers=customers, days=args.days, seed=args.seed)
    total = len(pop.events)
    params: dict[str, Any] = {"customers": customers, "events": total, "partitions": 4,
                              "store": "rocksdb://"}
    log(f"{NAME}: {total:,} events of {customers:,} customers")
    figures: list[Figure] = []
    with Bench(NAME, keep=args.keep) as bench:
        s = bench.settings("churnwatch-bench-scale-1")
        setup_topics(s)
        ends = asyncio.run(produce_population(s, pop))
        one, applied1, secs1 = run_workers(bench, "churnwatch-bench-scale-1", 1, ends)
        log(f"{NAME}: one worker {one:,.0f} events/s")
        two, applied2, secs2 = run_workers(bench, "churnwatch-bench-scale-2", 2, ends)
        log(f"{NAME}: two workers {two:,.0f} events/s")
    p1 = {**params, "events_applied_metric": applied1, "seconds_from_start": round(secs1, 1)}
    p2 = {**params, "events_applied_metric": applied2, "seconds_from_start": round(secs2, 1)}
    if applied2 is not None:
        p2["reprocessed_fraction"] = round(max(0.0, applied2 - total) / total, 4)
    figures.append(Figure(NAME, "one_worker_rate", one, "events/s", params=p1,
                          label="one worker, committed offsets, first to last"))
    figures.append(Figure(NAME, "two_workers_rate", two, "events/s", params=p2,
                          label="two workers, committed offsets, first to last"))
    figures.append(Figure(NAME, "two_vs_one_ratio", two / one if one else 0.0, "ratio",
                          params=p2, label="two workers / one (ceiling 2.0)"))
    return figures
