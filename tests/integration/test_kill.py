"""SIGKILL mid-stream loses no alert and pages nobody twice.

The same events go through three workers' groups on one broker: one runs
uninterrupted; the others are killed with SIGKILL mid-stream and restarted
(memory store: state comes back from the changelog alone; RocksDB: from the
local store plus the changelog).  Each writes to its own alerts topic.
Every killed run's alerts topic must hold exactly the uninterrupted run's
alert ids, each once.

Mid-stream whatever the machine's speed: while the killed workers run the
first time, only the first half of the stream is on the broker; the rest
comes before the restarts (and before the uninterrupted run starts).
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from stream_app.core.settings import Settings, kafka_client_options
from stream_app.kafka.admin import create_topics
from stream_app.kafka.broker import LocalBroker, free_port
from stream_app.offline.harness import committed_total, running_worker
from stream_app.offline.synthetic import Population, generate

from .conftest import produce_population
from .test_shutdown import applied_events, metric, wait_until

pytestmark = pytest.mark.integration


def alerts_on(s: Settings) -> list[dict[str, object]]:
    consumer = KafkaConsumer(s.topic_alerts, **kafka_client_options(s),
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        return [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def halves(pop: Population) -> tuple[Population, Population]:
    """The events before and after the first lull of over an hour past the middle.

    A killed worker that has applied the whole first half runs its clock on
    at wall-clock speed, and sweeps customers due in that time: the lull
    keeps every such sweep before the second half's first event, where the
    uninterrupted run sweeps them too.
    """
    events = sorted(pop.events, key=lambda e: e.ts)
    cut = next(i + 1 for i in range(len(events) // 2, len(events) - 1)
               if events[i + 1].ts - events[i].ts > 3600)
    return replace(pop, events=events[:cut]), replace(pop, events=events[cut:])


def test_sigkill_and_restart_neither_loses_nor_duplicates_alerts(tmp_path: Path) -> None:
    pop = generate(customers=600, days=720, seed=5)
    first, second = halves(pop)
    last_event = max(e.value["ts"] for e in pop.events)
    with LocalBroker(log_path=tmp_path / "broker.log") as broker:
        def settings(name: str, store: str) -> Settings:
            return Settings().with_overrides(
                broker_url=broker.url, broker_profile="local", store=store,
                data_dir=str(tmp_path / name), web_port=free_port(), tick_seconds=1.0,
                app_id=f"churnwatch-{name}", topic_alerts=f"alerts-{name}")

        runs = {"whole": settings("whole", "memory://"),
                "killed-memory": settings("killed-memory", "memory://"),
                "killed-rocksdb": settings("killed-rocksdb", "rocksdb://")}
        for s in runs.values():
            create_topics(s)
        base = runs["whole"]
        first_ends = produce_population(base, first)
        total_first = sum(first_ends.values())

        def alert_ids(s: Settings) -> list[str]:
            # Alerts raised by the idle clock after the last event depend on
            # how long the worker idled; only the events' own time is compared.
            return [str(a["alert_id"]) for a in alerts_on(s) if str(a["ts"]) <= last_event]

        killed_at = {}
        for name in ("killed-memory", "killed-rocksdb"):
            s = runs[name]
            with running_worker(s, tmp_path / f"{name}-1.log") as worker:
                # Killed at its first commit, with a fifth of the first half
                # applied at least: commits trail the work by a flush or
                # more, so usually some of what it applied is not committed.
                wait_until(lambda s=s: applied_events(s) > total_first // 5
                           and committed_total(s, first_ends) > 0, timeout=240)
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=30)
            killed_at[name] = committed_total(s, first_ends)

        ends = {**first_ends, **produce_population(base, second)}
        total = sum(ends.values())
        with running_worker(base, tmp_path / "whole.log"):
            wait_until(lambda: committed_total(base, ends) == total, timeout=240)
        expected = alert_ids(base)
        assert len(expected) > 50 and len(set(expected)) == len(expected)

        for name in ("killed-memory", "killed-rocksdb"):
            s = runs[name]
            with running_worker(s, tmp_path / f"{name}-2.log"):
                wait_until(lambda s=s: committed_total(s, ends) == total, timeout=240)
                redone = metric(s.web_port, "churnwatch_events_total")
            got = alert_ids(s)
            assert len(got) == len(set(got)), f"{name}: an alert was published twice"
            missing, extra = set(expected) - set(got), set(got) - set(expected)
            assert not missing and not extra, (
                f"{name}: alerts differ from the whole run: {len(missing)} missing, "
                f"{len(extra)} extra; killed at {killed_at[name]} of {total} committed")
            # The restart really resumed mid-stream, not from scratch.
            assert 0 < redone < total, (name, redone, total)
