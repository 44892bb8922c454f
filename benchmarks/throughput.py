"""Throughput of one worker with all signals, beside the raw consume ceiling.

    python benchmarks/throughput.py [--customers 2000] [--days 540]

Starts the embedded broker, produces a synthetic mixed stream (purchases,
contacts and complaints with Hebrew and English text), measures in the same
run (1) a raw aiokafka consumer decoding every message with orjson and
(2) one churnwatch worker (RocksDB store) processing them all, from its
first committed offset to its last, and prints one JSON line per figure and
a table.  Measuring both on the same broker and machine in one run keeps
the ratio meaningful on a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream_app.admin import create_topics
from stream_app.broker import LocalBroker, free_port
from stream_app.demo import committed_total, running_worker
from stream_app.settings import Settings
from stream_app.synthetic import generate


async def produce(s: Settings, pop: object) -> dict[tuple[str, int], int]:
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, linger_ms=20,
                                max_batch_size=256 * 1024, acks=1)
    await producer.start()
    ends: dict[tuple[str, int], int] = {}
    try:
        futures = [await producer.send(e.topic, key=e.customer_id.encode(),
                                       value=orjson.dumps(e.value))
                   for e in pop.events]  # type: ignore[attr-defined]
        for fut in futures:
            md = await fut
            key = (md.topic, md.partition)
            ends[key] = max(ends.get(key, 0), md.offset + 1)
    finally:
        await producer.stop()
    return ends


async def raw_consume(s: Settings, total: int) -> float:
    consumer = AIOKafkaConsumer(*s.input_topics[:3], bootstrap_servers=s.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None, max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for records in batches.values():
                for r in records:
                    orjson.loads(r.value)
                seen += len(records)
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--days", type=int, default=540)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="churnwatch-bench-"))
    pop = generate(customers=args.customers, days=args.days, seed=args.seed)
    total = len(pop.events)
    print(f"# {total:,} events for {args.customers:,} customers", file=sys.stderr)
    figures: list[dict[str, object]] = []
    with LocalBroker(log_path=work / "broker.log") as broker:
        s = Settings().with_overrides(
            broker_url=broker.url, broker_profile="local", store="rocksdb://",
            data_dir=str(work / "state"), web_port=free_port(), app_id="churnwatch-bench")
        create_topics(s)
        t = time.perf_counter()
        ends = asyncio.run(produce(s, pop))
        produce_rate = total / (time.perf_counter() - t)
        figures.append({"figure": "produce_rate", "events_per_s": produce_rate})
        raw = asyncio.run(raw_consume(s, total))
        figures.append({"figure": "raw_consume_rate", "events_per_s": raw})
        expected = sum(ends.values())
        with running_worker(s, work / "worker.log") as worker:
            first_at, first_done, done, shown = None, 0, 0, -1
            while done < expected:
                if worker.poll() is not None:
                    print(f"worker exited; see {work / 'worker.log'}", file=sys.stderr)
                    return 1
                done = committed_total(s, ends)
                now = time.perf_counter()
                if done and first_at is None:
                    first_at, first_done = now, done
                if done != shown:
                    print(f"# worker processed {done:,}/{expected:,}", file=sys.stderr)
                    shown = done
                time.sleep(0.5)
            elapsed = time.perf_counter() - (first_at or now)
        rate = (expected - first_done) / elapsed if elapsed > 0 else 0.0
        figures.append({"figure": "worker_rate_all_signals", "events_per_s": rate})
        figures.append({"figure": "worker_vs_raw_ratio", "ratio": rate / raw})
    machine = {"cpus": os.cpu_count(), "machine": platform.machine(),
               "python": platform.python_version(), "customers": args.customers,
               "events": total}
    for f in figures:
        print(json.dumps({**f, **machine}))
    print("\n| figure | value |\n|---|---|")
    for f in figures:
        if "events_per_s" in f:
            print(f"| {f['figure']} | {f['events_per_s']:,.0f} events/s |")
        else:
            print(f"| {f['figure']} | {f['ratio']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
