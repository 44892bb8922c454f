"""Losing the broker: not ready at once, a bounded log, an exit the orchestrator sees.

And a broker that comes back empty on the same address: the running worker
stops with one line, a restarted one refuses its local store (ahead of the
changelog) and says what to do, and doing it gets the new events processed.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest

from stream_app.core.settings import Settings
from stream_app.engine.logs import REPEAT_SECONDS
from stream_app.kafka.admin import create_topics
from stream_app.kafka.broker import LocalBroker, free_port
from stream_app.offline.harness import committed_total, running_worker
from stream_app.offline.synthetic import generate

from .conftest import produce_population
from .test_shutdown import applied_events, wait_until

pytestmark = pytest.mark.integration


def ready(s: Settings) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{s.web_port}/ready", timeout=5) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
    except OSError:
        return 0, {}


def critical_lines(log: Path) -> list[dict[str, object]]:
    lines = [orjson.loads(line) for line in log.read_text(errors="replace").splitlines()
             if line.startswith("{") and '"critical"' in line]
    return [x for x in lines if x["level"] == "critical"]


def settings_for(broker: LocalBroker, tmp_path: Path, timeout: float) -> Settings:
    return Settings().with_overrides(
        broker_url=broker.url, broker_profile="local", store="rocksdb://",
        data_dir=str(tmp_path / "state"), web_port=free_port(), tick_seconds=1.0,
        app_id="churnwatch-loss", broker_timeout_seconds=timeout, log_level="warning")


def test_a_lost_broker_makes_the_worker_not_ready_then_exit(tmp_path: Path) -> None:
    broker = LocalBroker(log_path=tmp_path / "broker.log").start()
    try:
        s = settings_for(broker, tmp_path, timeout=10)
        create_topics(s)
        ends = produce_population(s, generate(customers=60, days=120, seed=8))
        log = tmp_path / "worker.log"
        with running_worker(s, log) as worker:
            wait_until(lambda: committed_total(s, ends) == sum(ends.values()))
            assert ready(s)[0] == 200
            before = log.stat().st_size
            broker.stop()
            stopped = time.monotonic()
            wait_until(lambda: ready(s)[0] == 503, timeout=60)
            status, body = ready(s)
            if status == 503:  # not exited meanwhile
                assert "no broker reachable" in str(body["reason"])
                assert body["broker_reachable"] is False
            assert worker.wait(timeout=120) == 1
            elapsed = time.monotonic() - stopped
    finally:
        broker.stop()
    last = critical_lines(log)
    assert len(last) == 1 and str(last[0]["msg"]).startswith(
        f"no broker reachable at {s.broker_url} for "), last
    # One line per condition per interval (numbers aside), where there were
    # about a hundred lines a second.
    outage = log.read_bytes()[before:].decode(errors="replace").splitlines()
    conditions = Counter(re.sub(r"\d+", "#", line.split("] ", 2)[-1])
                         for line in outage if line.startswith("["))
    assert conditions, "the libraries logged nothing about the lost broker: nothing tested"
    allowed = 2 + int(elapsed // REPEAT_SECONDS)
    assert max(conditions.values()) <= allowed, conditions.most_common(3)


def test_a_broker_back_empty_stops_the_worker_and_its_store_is_refused(tmp_path: Path) -> None:
    broker = LocalBroker(log_path=tmp_path / "broker.log").start()
    try:
        s = settings_for(broker, tmp_path, timeout=300)
        create_topics(s)
        ends = produce_population(s, generate(customers=60, days=120, seed=8))
        with running_worker(s, tmp_path / "worker-1.log") as worker:
            wait_until(lambda: committed_total(s, ends) == sum(ends.values()))
            broker.stop()
            wait_until(lambda: ready(s)[0] == 503, timeout=60)
            # Back on the same port, empty; the topics created again, new events on them.
            broker = LocalBroker(port=broker.port, log_path=tmp_path / "broker-2.log").start()
            create_topics(s)
            new_ends = produce_population(s, generate(customers=30, days=60, seed=9))
            assert worker.wait(timeout=120) == 1
        lines = critical_lines(tmp_path / "worker-1.log")
        assert len(lines) == 1 and str(lines[0]["msg"]).startswith(
            "the broker lost data this worker had processed ("), lines

        # Restarted on the same data: its store is ahead of the changelog.
        with running_worker(s, tmp_path / "worker-2.log") as worker:
            assert worker.wait(timeout=120) == 1
        lines = critical_lines(tmp_path / "worker-2.log")
        assert len(lines) == 1, lines
        message = str(lines[0]["msg"])
        assert message.startswith("this worker's local store is ahead of the broker's "
                                  f"changelog ({s.state_changelog_topic}[")
        assert f"CHURNWATCH_DATA_DIR={s.data_dir}" in message
        assert "Traceback" not in (tmp_path / "worker-2.log").read_text(errors="replace")

        # Doing what it says: every new event is processed.
        shutil.rmtree(s.data_dir)
        with running_worker(s, tmp_path / "worker-3.log") as worker:
            total = sum(new_ends.values())
            wait_until(lambda: committed_total(s, new_ends) == total)
            wait_until(lambda: applied_events(s) == total)  # applied, not skipped
            assert worker.poll() is None
            assert ready(s)[0] == 200
    finally:
        broker.stop()


def test_a_worker_with_no_broker_says_so_and_exits(tmp_path: Path) -> None:
    nowhere = free_port()  # nothing listens there
    s = Settings().with_overrides(
        broker_url=f"kafka://127.0.0.1:{nowhere}", broker_profile="local", store="memory://",
        data_dir=str(tmp_path / "state"), web_port=free_port(), broker_timeout_seconds=5)
    log = tmp_path / "worker.log"
    with running_worker(s, log) as worker:
        assert worker.wait(timeout=120) == 1
    lines = critical_lines(log)
    assert len(lines) == 1 and str(lines[0]["msg"]).startswith(
        f"no broker reachable at {s.broker_url} for "), lines
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and len(text.splitlines()) <= 3, text[-2000:]
