"""SIGTERM stops a worker gracefully: in-flight events finished and committed.

Proof: a worker restarted on the same data finds nothing to redo (no event is
delivered to it twice) and ends with every event processed.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from stream_app.core.settings import Settings
from stream_app.kafka.admin import create_topics
from stream_app.kafka.broker import LocalBroker, free_port
from stream_app.offline.harness import committed_total, running_worker
from stream_app.offline.synthetic import generate

from .conftest import produce_population

pytestmark = pytest.mark.integration


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def applied_events(s: Settings) -> float:
    """Events the worker has applied so far (0 until its web server is up)."""
    try:
        return metric(s.web_port, "churnwatch_events_total")
    except OSError:
        return 0.0


def wait_until(condition: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_sigterm_finishes_and_commits_in_flight_work(tmp_path: Path) -> None:
    # Big enough that the worker is still busy when it is stopped.
    pop = generate(customers=500, days=540, seed=3)
    with LocalBroker(log_path=tmp_path / "broker.log") as broker:
        s = Settings().with_overrides(
            broker_url=broker.url, broker_profile="local", store="rocksdb://",
            data_dir=str(tmp_path / "state"), web_port=free_port(), app_id="churnwatch-term")
        create_topics(s)
        ends = produce_population(s, pop)
        total = sum(ends.values())

        with running_worker(s, tmp_path / "worker-1.log") as worker:
            # Stopped while busy: by what it has applied, which the commits
            # trail by a flush or more (a fast worker could finish between
            # two commits).
            wait_until(lambda: applied_events(s) > total // 10)
            os.killpg(worker.pid, signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
        stopped_at = committed_total(s, ends)
        assert stopped_at < total, "the worker finished before it was stopped; no test"

        with running_worker(s, tmp_path / "worker-2.log"):
            wait_until(lambda: committed_total(s, ends) == total)
            assert metric(s.web_port, "churnwatch_duplicates_total") == 0
            applied = metric(s.web_port, "churnwatch_events_total")
            assert applied == total - stopped_at, json.dumps({"applied": applied,
                                                              "stopped_at": stopped_at})
