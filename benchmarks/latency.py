"""Ingest-to-alert latency at a steady input rate, beside a raw round trip.

For each rate, each phase on a fresh broker of its own:

1. ceiling: the whole synthetic stream is produced at the steady rate to
   plain copies of the input topics (same partitions) and read back by an
   aiokafka consumer with the worker's fetch settings; latency = read time -
   the message's CreateTime.  The same events, rate, producer and duration as
   the worker's run, so the broker is under the same load from the input;
2. one worker (RocksDB store, all signals) is started and, once ready, the
   synthetic stream is produced at the same steady rate (a paced producer
   stamping each message's CreateTime) while an observer reads the alerts
   topic.

An alert is matched to the input event that triggered it: the customer's
event whose event time is the alert's event time (the processor judges an
event at its own time).  Alerts from the silence sweep (OVERDUE, NEGLECTED
found by the timer) have no triggering event and are counted, not timed.
Figures: ingest (input CreateTime) to the alert's own broker timestamp (the
alert on the topic), and to an observer reading it; p50, p99, max.  Beside
them, the ceiling's round trip of the very events that raised those alerts:
most alerts come late in the run, when the broker is busiest, so that is the
like-for-like ceiling.  The worker's own ``churnwatch_ingest_to_alert_seconds``
histogram is reported as a cross-check, and so is the CPU the broker and the worker used while the
input ran (in share of one core): the embedded broker's cost per fetch grows
with the number of record batches a partition holds, so on a long run it can
be the broker, not the worker, that sets the latency.  The population is sized
so the steady input lasts ``--latency-seconds``; drift and departures (most
alerts) come in the last 40% of it.

The paced producer lingers ``--producer-linger-ms`` before it sends a batch,
as every producer does (Kafka's own default is 5 ms); the linger is part of
the measured latency, in the ceiling as in the worker's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from kafka.admin import NewTopic

from stream_app.core.settings import Settings
from stream_app.kafka.admin import admin_client
from stream_app.offline.harness import committed_total
from stream_app.offline.synthetic import Population, generate

from .common import (
    Bench,
    Figure,
    check_alive,
    cpu_seconds,
    http_get,
    log,
    metric_sum,
    new_producer,
    percentile,
    setup_topics,
    topic_of,
    wait_ready,
    worker,
)

NAME = "latency"
#: Events per customer of the synthetic population over 540 days (measured).
EVENTS_PER_CUSTOMER = 52.5
TARGET_P99_MS = 250.0
TARGET_RATE = 2000
#: The ceiling's copies of the input topics: this prefix and the input's kind.
ECHO_PREFIX = "latency-echo-"


@dataclass
class Paced:
    sent_ms: list[int] = field(default_factory=list)
    ends: dict[tuple[str, int], int] = field(default_factory=dict)
    seconds: float = 0.0


async def paced_produce(s: Settings, items: list[tuple[str, bytes, bytes]],
                        rate: float, linger_ms: int) -> Paced:
    """Send ``items`` (topic, key, value) at a steady ``rate``, stamping CreateTime."""
    producer = new_producer(s, linger_ms=linger_ms)
    await producer.start()
    out = Paced(sent_ms=[0] * len(items))
    futures = []
    try:
        start = time.monotonic()
        i, n = 0, len(items)
        while i < n:
            due = min(n, int((time.monotonic() - start) * rate) + 1)
            while i < due:
                topic, key, value = items[i]
                ts_ms = int(time.time() * 1000)
                futures.append(await producer.send(topic, value, key=key, timestamp_ms=ts_ms))
                out.sent_ms[i] = ts_ms
                i += 1
            await asyncio.sleep(0.002)
        out.seconds = time.monotonic() - start
        for fut in futures:
            md = await fut
            key2 = (md.topic, md.partition)
            out.ends[key2] = max(out.ends.get(key2, 0), md.offset + 1)
    finally:
        await producer.stop()
    return out


@dataclass
class Observed:
    #: (wall ms when read, the record's broker timestamp, its value)
    records: list[tuple[int, int, bytes]] = field(default_factory=list)


async def observe(s: Settings, topics: list[str], into: Observed,
                  stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=s.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=s.fetch_max_wait_ms)
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now_ms = int(time.time() * 1000)
            for records in batches.values():
                for r in records:
                    into.records.append((now_ms, r.timestamp, r.value))
    finally:
        await consumer.stop()


def stats_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values), "n": len(values)}


@dataclass
class Busy:
    """CPU a process used over a stretch of wall time, in share of one core."""

    pid: int
    cpu0: float | None = None
    wall0: float = 0.0
    share: float | None = None

    def start(self) -> None:
        self.cpu0, self.wall0 = cpu_seconds(self.pid), time.monotonic()

    def stop(self) -> None:
        cpu1, wall = cpu_seconds(self.pid), time.monotonic() - self.wall0
        if self.cpu0 is not None and cpu1 is not None and wall > 0:
            self.share = round((cpu1 - self.cpu0) / wall, 3)


@dataclass
class Ceiling:
    stats: dict[str, float]
    broker_cpu: float | None
    #: Each event's round trip (ms), by customer and event time.
    by_event: dict[tuple[str, int], float]


async def ceiling(s: Settings, pop: Population, rate: float, linger_ms: int,
                  broker_pid: int) -> Ceiling:
    topics = {kind: ECHO_PREFIX + kind for kind in {e.topic for e in pop.events}}
    items = [(topics[e.topic], e.customer_id.encode(), orjson.dumps(e.value))
             for e in pop.events]
    got, stop = Observed(), asyncio.Event()
    reader = asyncio.create_task(observe(s, sorted(topics.values()), got, stop))
    await asyncio.sleep(1.0)  # the observer is up and polling
    broker = Busy(broker_pid)
    broker.start()
    await paced_produce(s, items, rate, linger_ms)
    broker.stop()
    deadline = time.monotonic() + 30
    while len(got.records) < len(items) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await reader
    by_event = {}
    for seen, ts, value in got.records:
        event = orjson.loads(value)
        by_event[_match_key(event)] = float(seen - ts)
    return Ceiling(stats_ms([float(seen - ts) for seen, ts, _ in got.records]), broker.share,
                   by_event)


def _pid(bench: Bench) -> int:
    proc = bench.broker.proc
    assert proc is not None, "the bench's broker is started with it"
    return proc.pid


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _match_key(value: dict[str, Any]) -> tuple[str, int]:
    """What matches an alert to its input event: the customer and the event time
    (an alert carries the time of the event it judged)."""
    return value["customer_id"], _epoch(value["ts"])


async def with_worker(s: Settings, pop: Population, rate: float, linger_ms: int, proc: Any,
                      busy: list[Busy]) -> tuple[Paced, Observed, int]:
    """Paced input to a running worker; ``busy`` is measured while the input runs."""
    items = [(topic_of(s, e.topic), e.customer_id.encode(), orjson.dumps(e.value))
             for e in pop.events]
    got, stop = Observed(), asyncio.Event()
    reader = asyncio.create_task(observe(s, [s.topic_alerts], got, stop))
    try:
        await asyncio.sleep(1.0)
        for b in busy:
            b.start()
        paced = await paced_produce(s, items, rate, linger_ms)
        for b in busy:
            b.stop()
        expected = sum(paced.ends.values())
        # Events not yet applied when the input stopped (the applied counter;
        # committed offsets trail it by up to the commit interval).
        applied = await asyncio.to_thread(handled, s.web_port)
        if applied is None:
            applied = await asyncio.to_thread(committed_total, s, paced.ends)
        backlog_at_end = max(0, expected - int(applied))
        # Drain: a backlog's alerts are the slow ones, and leaving them out
        # would flatter p99; give up only after 5x the input time or a stall.
        deadline = time.monotonic() + max(120.0, 5 * paced.seconds)
        done, moved = 0, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - moved < 60.0:
            check_alive(proc)
            now_done = await asyncio.to_thread(committed_total, s, paced.ends)
            if now_done > done:
                done, moved = now_done, time.monotonic()
            if done >= expected:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)  # alerts are acknowledged before offsets are committed
        if done < expected:
            log(f"{NAME}: the worker had committed {done:,}/{expected:,} when we stopped")
    finally:
        stop.set()
        await reader
    return paced, got, backlog_at_end


def handled(port: int) -> float | None:
    """Messages the worker has dealt with: applied, dead-lettered or skipped."""
    counts = [metric_sum(port, name) for name in (
        "churnwatch_events_total", "churnwatch_dead_letters_total",
        "churnwatch_duplicates_total")]
    return None if counts[0] is None else sum(c or 0.0 for c in counts)


def histogram_quantile(port: int, name: str, q: float) -> float | str | None:
    """Upper bound (s) of the bucket holding quantile q of a Prometheus histogram
    (``"+Inf"`` above the top bucket: JSON has no infinity)."""
    status, body = http_get(port, "/metrics", timeout=10.0)
    if status != 200:
        return None
    buckets: dict[float, float] = {}
    for line in body.decode(errors="replace").splitlines():
        if line.startswith(name + "_bucket{"):
            with contextlib.suppress(ValueError, IndexError):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                bound = math.inf if le == "+Inf" else float(le)
                buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    if not buckets or not buckets.get(math.inf):
        return None
    total = buckets[math.inf]
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound if bound != math.inf else "+Inf"
    return None


def measure(args: argparse.Namespace, rate: int) -> list[Figure]:
    customers = max(50, math.ceil(rate * args.latency_seconds / EVENTS_PER_CUSTOMER))
    pop = generate(customers=customers, days=args.days, seed=args.seed)
    params: dict[str, Any] = {"rate": rate, "customers": customers, "events": len(pop.events),
                              "store": "rocksdb://"}
    log(f"{NAME}: {rate:,}/s: {len(pop.events):,} events of {customers:,} customers "
        f"(~{len(pop.events) / rate:.0f} s of input)")
    linger = args.producer_linger_ms
    params["producer_linger_ms"] = linger
    when: dict[tuple[str, int], int] = {}
    with Bench(f"{NAME}-{rate}-ceiling", keep=args.keep) as bench:
        s = bench.settings(f"churnwatch-bench-latency-ceiling-{rate}")
        admin = admin_client(s)
        try:
            admin.create_topics([NewTopic(ECHO_PREFIX + kind, s.partitions, 1)
                                 for kind in sorted({e.topic for e in pop.events})])
        finally:
            admin.close()
        top = asyncio.run(ceiling(s, pop, rate, linger, _pid(bench)))
        raw = top.stats
    log(f"{NAME}: {rate:,}/s raw round trip p50 {raw.get('p50', 0):.0f} ms, "
        f"p99 {raw.get('p99', 0):.0f} ms; starting the worker")
    with Bench(f"{NAME}-{rate}", keep=args.keep) as bench:
        s = bench.settings(f"churnwatch-bench-latency-{rate}")
        setup_topics(s)
        with worker(s, bench.log_path("worker")) as proc:
            wait_ready(s, proc, timeout=120)
            busy = [Busy(_pid(bench)), Busy(proc.pid)]
            paced, got, backlog = asyncio.run(
                with_worker(s, pop, rate, linger, proc, busy))
            hist_p50 = histogram_quantile(s.web_port, "churnwatch_ingest_to_alert_seconds", 0.5)
            hist_p99 = histogram_quantile(s.web_port, "churnwatch_ingest_to_alert_seconds",
                                          0.99)
            applied = metric_sum(s.web_port, "churnwatch_events_total")
    for e, sent in zip(pop.events, paced.sent_ms, strict=True):
        when[_match_key(e.value)] = sent
    on_topic: list[float] = []
    to_reader: list[float] = []
    #: The ceiling's round trip of the same events: the ones that raised the alerts.
    raw_alerting: list[float] = []
    unmatched = 0
    for seen_ms, alert_ms, raw_value in got.records:
        a = orjson.loads(raw_value)
        key = _match_key(a)
        sent = when.get(key)
        if sent is None:
            unmatched += 1
            continue
        on_topic.append(float(alert_ms - sent))
        to_reader.append(float(seen_ms - sent))
        if (same := top.by_event.get(key)) is not None:
            raw_alerting.append(same)
    achieved = len(pop.events) / paced.seconds if paced.seconds else 0.0
    worker_stats, reader_stats = stats_ms(on_topic), stats_ms(to_reader)
    raw_same = stats_ms(raw_alerting)
    params.update({"achieved_rate": round(achieved, 1),
                   "worker_rate_while_input_ran": round(
                       (len(pop.events) - backlog) / paced.seconds if paced.seconds else 0.0, 1),
                   "alerts": len(got.records),
                   "alerts_timed": len(on_topic), "alerts_from_silence_sweep": unmatched,
                   "backlog_when_input_ended": backlog, "events_applied_metric": applied,
                   "worker_histogram_p50_le_s": hist_p50, "worker_histogram_p99_le_s": hist_p99,
                   "broker_cpu_ceiling": top.broker_cpu, "broker_cpu_with_worker": busy[0].share,
                   "worker_cpu": busy[1].share})
    kept_up = backlog <= rate  # at most a second behind when the input stopped
    note = "" if kept_up else f"fell behind: {backlog:,} events waiting when input ended"
    figures: list[Figure] = []
    for q in ("p50", "p99", "max"):
        if q in raw:
            figures.append(Figure(NAME, f"raw_round_trip_{q}_at_{rate}", raw[q], "ms",
                                  params={**params, "n": raw["n"]},
                                  label=f"raw produce->consume round trip {q} at {rate:,}/s "
                                        "(ceiling)"))
    for q in ("p50", "p99"):
        if q in raw_same:
            figures.append(Figure(
                NAME, f"raw_round_trip_alerting_{q}_at_{rate}", raw_same[q], "ms",
                params={**params, "n": raw_same["n"]},
                label=f"raw round trip {q} of the events that raised the timed alerts "
                      f"(ceiling of the same events)"))
    for q in ("p50", "p99", "max"):
        if q not in worker_stats:
            continue
        target = None
        meets = None
        if q == "p99" and rate == TARGET_RATE:
            target, meets = f"< {TARGET_P99_MS:.0f} ms at {TARGET_RATE:,}/s", \
                worker_stats[q] < TARGET_P99_MS
        figures.append(Figure(NAME, f"ingest_to_alert_{q}_at_{rate}", worker_stats[q], "ms",
                              params=params, target=target, meets_target=meets, note=note,
                              label=f"ingest -> alert on the topic {q} at {rate:,}/s"))
    for q in ("p50", "p99"):
        if q in reader_stats:
            figures.append(Figure(NAME, f"ingest_to_alert_read_{q}_at_{rate}", reader_stats[q],
                                  "ms", params=params, note=note,
                                  label=f"ingest -> alert read by a consumer {q} at {rate:,}/s"))
    for figure, share, label in (
            ("broker_cpu_ceiling", top.broker_cpu, "the broker's CPU while the ceiling ran"),
            ("broker_cpu_with_worker", busy[0].share, "the broker's CPU while the worker ran"),
            ("worker_cpu", busy[1].share, "the worker's CPU")):
        if share is not None:
            figures.append(Figure(NAME, f"{figure}_at_{rate}", round(100 * share), "% of a core",
                                  params=params, label=f"{label} at {rate:,}/s"))
    if not worker_stats:
        figures.append(Figure(NAME, f"alerts_timed_at_{rate}", 0, "alerts", params=params,
                              note="no alert could be timed"))
    return figures


def run(args: argparse.Namespace) -> list[Figure]:
    figures: list[Figure] = []
    for rate in args.rate_list:
        figures.extend(measure(args, rate))
    return figures
