"""Worker memory per tracked customer, and recovery time from the changelog.

For each size N, on a fresh broker: N customers' states are put straight
into the state table's changelog topic (key: customer id bytes; value: the
orjson state; partition: the default partitioner's, as for the input
topics).  The states are clones, under new ids, of the final states of a
small synthetic population run through ``stream_app.core.state.apply_event``
(about a year and a half of purchases, contacts and complaints each).

Then, for each store, a fresh worker (empty data dir) is started and timed:

* recovered: ``GET /ready`` answers 200 (partitions assigned, tables
  recovered from the changelog);
* tracking: the worker's ``churnwatch_customers_tracked`` gauge reaches N
  (the processor has rebuilt its due index from the table, on the first
  clock tick after recovery);

and its RSS is read from ``/proc`` a few seconds later.  The baseline, in
the same run, is the same worker with an empty changelog (another app id):
recovery time = T(N) - T(0), RSS per customer = (RSS(N) - RSS(0)) / N.  The
recovery ceiling is a raw aiokafka consumer reading the same changelog.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from stream_app.core.decoding import Decoded, decode
from stream_app.core.policy import load_policy
from stream_app.core.settings import Settings
from stream_app.core.state import CustomerState, apply_event, new_state
from stream_app.offline.synthetic import generate

from .common import (
    Bench,
    Figure,
    check_alive,
    log,
    metric_sum,
    new_producer,
    partition_for,
    produce_records,
    profiled,
    raw_consume,
    rss_bytes,
    setup_topics,
    summarize_profile,
    wait_ready,
    worker,
)

NAME = "memory"
TARGET_BYTES_PER_CUSTOMER = 1024
#: Customers whose final states are cloned.
TEMPLATES = 1000
SETTLE_SECONDS = 3.0


def template_states(days: int, seed: int) -> list[dict[str, Any]]:
    """Final states of a small synthetic population (as dicts, to clone)."""
    pop = generate(customers=TEMPLATES, days=days, seed=seed)
    policy = load_policy(None)
    states: dict[str, CustomerState] = {}
    for offset, e in enumerate(pop.events):
        d = decode(e.topic, e.customer_id.encode(), orjson.dumps(e.value))
        if not isinstance(d, Decoded):
            continue
        st = states.get(e.customer_id)
        if st is None:
            st = states[e.customer_id] = new_state(e.customer_id)
        apply_event(st, d.record, d.ts, topic=e.topic, partition=0, offset=offset,
                    policy=policy)
    # Every customer sits in the due index, none is due: a restored worker with
    # no input has nothing to sweep, so what is measured is recovery alone.
    quiet_until = max(st.last_ts for st in states.values()) + 365 * 86400.0
    for st in states.values():
        st.due_ts = quiet_until
    return [orjson.loads(st.to_bytes()) for st in states.values()]


def cloned(templates: list[dict[str, Any]], n: int, partitions: int
           ) -> Iterator[tuple[bytes, bytes, int]]:
    for i in range(n):
        d = dict(templates[i % len(templates)])
        cid = f"M{i:08d}"
        key = cid.encode()
        part = partition_for(key, partitions)
        d["customer_id"], d["partition"] = cid, part
        yield key, orjson.dumps(d), part


#: Not a customer id: a tombstone that closes each changelog partition.
END_MARKER = b"\x00churnwatch-bench-end"


async def end_markers(s: Settings, topic: str) -> None:
    """One tombstone per partition, each in a batch of its own, after the states.

    The local broker answers ListOffsets(latest) with the base offset of the
    partition's last record batch, and Faust's recovery stops there: the
    records of the last batch are not recovered.  A last batch of one
    tombstone (for a key no customer has) keeps that from costing states.
    """
    producer = new_producer(s, linger_ms=0)
    await producer.start()
    try:
        for partition in range(s.partitions):
            await (await producer.send(topic, key=END_MARKER, value=None,
                                       partition=partition))
    finally:
        await producer.stop()


def _recover(s: Settings, proc: subprocess.Popen[bytes], n: int, t0: float
             ) -> tuple[float, float, float | None]:
    """(ready at, customers tracked, tracking at): monotonic times."""
    ready_at = wait_ready(s, proc, timeout=3600, poll=0.1)
    # Tracking: the gauge reaches n, or (fewer recovered) stops moving.
    tracking_at = None
    tracked, last, since = 0.0, -1.0, time.monotonic()
    deadline = time.monotonic() + max(60.0, (ready_at - t0))
    while time.monotonic() < deadline:
        check_alive(proc)
        tracked = metric_sum(s.web_port, "churnwatch_customers_tracked") or 0.0
        now = time.monotonic()
        if tracked >= n:
            tracking_at = now
            break
        if tracked != last:
            last, since = tracked, now
        elif tracked > 0 and now - since > 5.0:
            tracking_at = since
            break
        time.sleep(0.1)
    return ready_at, tracked, tracking_at


def start_and_measure(bench: Bench, s: Settings, n: int, label: str,
                      profile: Path | None = None) -> dict[str, float]:
    """Start a fresh worker; seconds to ready and to tracking n customers; RSS.

    With ``profile``, the worker is sampled with py-spy from its start until
    it tracks every customer (the RSS is read after the sampler stopped).
    """
    with worker(s, bench.log_path(label)) as proc:
        with profiled(proc.pid, profile):
            t0 = time.monotonic()
            ready_at, tracked, tracking_at = _recover(s, proc, n, t0)
        if tracked < n:
            log(f"{NAME}: {label}: the worker tracks {tracked:,.0f} of {n:,} customers")
        time.sleep(SETTLE_SECONDS)
        rss = rss_bytes(proc.pid) or 0
        peak = rss_bytes(proc.pid, "VmHWM") or 0
    out = {"ready_s": ready_at - t0, "rss": float(rss), "peak": float(peak),
           "tracked": tracked}
    if tracking_at is not None:
        out["tracking_s"] = tracking_at - t0
    log(f"{NAME}: {label}: ready after {out['ready_s']:.1f} s, "
        + (f"tracking after {out['tracking_s']:.1f} s, " if "tracking_s" in out else "")
        + f"RSS {rss / 2**20:,.0f} MiB (peak {peak / 2**20:,.0f} MiB)")
    return out


def measure(args: argparse.Namespace, n: int, templates: list[dict[str, Any]]
            ) -> list[Figure]:
    figures: list[Figure] = []
    with Bench(f"{NAME}-{n}", keep=args.keep) as bench:
        # tick_seconds: the processor rebuilds its index on the first clock tick.
        full = bench.settings(f"churnwatch-bench-mem-{n}", tick_seconds=0.5)
        empty = bench.settings("churnwatch-bench-mem-empty", tick_seconds=0.5)
        setup_topics(full)
        setup_topics(empty)
        log(f"{NAME}: producing {n:,} states into {full.state_changelog_topic}")
        t = time.perf_counter()
        records = cloned(templates, n, full.partitions)
        sent = asyncio.run(produce_records(full, full.state_changelog_topic, records))
        asyncio.run(end_markers(full, full.state_changelog_topic))
        produce_s = time.perf_counter() - t
        value_bytes = sum(len(orjson.dumps(d)) for d in templates) / len(templates)
        log(f"{NAME}: {sent:,} states in {produce_s:.1f} s; raw changelog consume...")
        raw = asyncio.run(raw_consume(full, [full.state_changelog_topic], n, decode=True))
        broker_rss = bench.broker_rss_bytes()
        params: dict[str, Any] = {"customers": n, "state_value_bytes_mean": round(value_bytes),
                                  "partitions": full.partitions,
                                  "broker_rss_mib": round((broker_rss or 0) / 2**20)}
        figures.append(Figure(NAME, f"raw_changelog_consume_rate_{n}", raw, "records/s",
                              params=params,
                              label=f"raw consumer reading {n:,} states (recovery ceiling)"))
        for store in args.store_list:
            short = store.split(":")[0]
            base = start_and_measure(bench, bench.settings(
                empty.app_id, store=store, tick_seconds=0.5), 0, f"{short}-empty")
            profile = (args.profile / f"recovery-{short}-{n}.folded"
                       if getattr(args, "profile", None) else None)
            got = start_and_measure(bench, bench.settings(
                full.app_id, store=store, tick_seconds=0.5), n, f"{short}-{n}", profile)
            if profile is not None:
                for line in summarize_profile(profile, top=25):
                    log(f"{NAME} profile ({short}, {n:,}): {line}")
            per = (got["rss"] - base["rss"]) / n
            p = {**params, "store": store, "rss_mib": round(got["rss"] / 2**20, 1),
                 "rss_empty_mib": round(base["rss"] / 2**20, 1),
                 "peak_rss_mib": round(got["peak"] / 2**20, 1),
                 "ready_s": round(got["ready_s"], 2),
                 "ready_empty_s": round(base["ready_s"], 2),
                 "customers_tracked": got["tracked"]}
            target, meets = None, None
            if store == "rocksdb://" and n >= 1_000_000:
                target, meets = "< 1 KiB at 1 M (RocksDB)", per < TARGET_BYTES_PER_CUSTOMER
            figures.append(Figure(NAME, f"rss_per_customer_{short}_{n}", per, "bytes",
                                  params=p, target=target, meets_target=meets,
                                  label=f"worker RSS per tracked customer, {store}, {n:,}"))
            peak_per = (got["peak"] - base["rss"]) / n
            figures.append(Figure(NAME, f"peak_rss_per_customer_{short}_{n}", peak_per,
                                  "bytes", params=p,
                                  label=f"peak RSS per customer (during recovery), {store}, "
                                        f"{n:,}"))
            recovery = got["ready_s"] - base["ready_s"]
            figures.append(Figure("recovery", f"recovery_{short}_{n}", recovery, "s", params=p,
                                  label=f"changelog recovery of {n:,} customers to /ready, "
                                        f"{store}"))
            figures.append(Figure("recovery", f"recovery_rate_{short}_{n}",
                                  n / recovery if recovery > 0 else 0.0, "records/s",
                                  params=p, label=f"recovery rate, {store}, {n:,}"))
            if "tracking_s" in got and "tracking_s" in base:
                tracking = got["tracking_s"] - base["tracking_s"]
                figures.append(Figure("recovery", f"recovery_to_tracking_{short}_{n}",
                                      tracking, "s", params=p,
                                      label=f"recovery of {n:,} customers until all tracked "
                                            f"(index rebuilt), {store}"))
            if recovery > 0:
                figures.append(Figure("recovery", f"recovery_vs_raw_ratio_{short}_{n}",
                                      (n / recovery) / raw, "ratio", params=p,
                                      label=f"recovery rate / raw consume rate, {store}, "
                                            f"{n:,}"))
    return figures


def run(args: argparse.Namespace) -> list[Figure]:
    log(f"{NAME}: building {TEMPLATES:,} template states")
    templates = template_states(args.days, args.seed)
    figures: list[Figure] = []
    for n in args.memory_list:
        figures.extend(measure(args, n, templates))
    return figures
