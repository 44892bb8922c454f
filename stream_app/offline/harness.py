"""A worker beside the tools: started, watched, read from and stopped.

The demo and ``churnwatch evaluate`` (and the integration tests and
benchmarks) run the real worker as a child process, exactly as in
production, rather than an in-process copy: what they measure is then what
a deployment does.  This module is what they share: the child's
environment, its start and stop, the reader of its output topics, the wait
until it has committed what was sent, and a GET of its web views.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import TopicPartition

from ..core.settings import Settings, env_name
from ..kafka import clients
from .progress import Progress

#: Give up when the worker commits nothing for this long.
STALL_SECONDS = 120


@dataclass
class Collected:
    """What the worker wrote to the output topics, as the reader thread saw it."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def worker_env(s: Settings) -> dict[str, str]:
    """The environment that gives a worker exactly the settings ``s``.

    The caller's own ``CHURNWATCH_*`` variables are dropped, so none of them
    can slip past ``s`` (a broker URL of the shell the tool was started from).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    for name in Settings.__dataclass_fields__:
        env[env_name(name)] = str(getattr(s, name))
    return env


@contextlib.contextmanager
def running_worker(s: Settings, log_path: Path,
                   extra_env: Mapping[str, str] | None = None,
                   ) -> Iterator[subprocess.Popen[bytes]]:
    """A worker child process in its own session, always stopped on the way out.

    ``extra_env``: variables set beside the settings' own (a benchmark's
    ``PYTHONPATH``, say).
    """
    log = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_app", "worker", "--no-create-topics"],
        env={**worker_env(s), **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM (Faust finishes in-flight events and commits), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def consume_outputs(s: Settings, into: Collected, stop: threading.Event,
                    on_alert: Callable[[dict[str, Any]], object]) -> None:
    """Read the alerts and dead letters into ``into`` until ``stop`` is set (a thread's body)."""
    consumer = clients.consumer(s, s.topic_alerts, s.topic_dead_letters,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                consumer_timeout_ms=200)
    try:
        while not stop.is_set():
            for m in consumer:
                value = orjson.loads(m.value)
                with into.lock:
                    if m.topic == s.topic_alerts:
                        into.alerts.append(value)
                        on_alert(value)
                    else:
                        into.dead_letters.append(value)
                if stop.is_set():
                    break
    finally:
        consumer.close()


class WorkerStopped(RuntimeError):
    """The worker exited or stalled before processing everything."""


def wait_processed(s: Settings, worker: subprocess.Popen[bytes],
                   offsets: dict[tuple[str, int], int], got: Collected, progress: Progress,
                   log_path: Path) -> None:
    """Show progress until the worker has committed every offset in ``offsets``."""
    expected = sum(offsets.values())
    processed, advanced = 0, time.monotonic()
    while processed < expected:
        if worker.poll() is not None:
            raise WorkerStopped(f"The worker stopped (exit {worker.returncode}); "
                                f"see {log_path}")
        if time.monotonic() - advanced > STALL_SECONDS:
            raise WorkerStopped(f"The worker made no progress for {STALL_SECONDS} s; "
                                f"see {log_path}")
        done = min(expected, committed_total(s, offsets))
        if done > processed:
            processed, advanced = done, time.monotonic()
        progress.show(f"  worker processed {processed:,}/{expected:,} events, "
                      f"{len(got.alerts):,} alerts", 100 * processed / expected)
        if processed < expected:
            time.sleep(1.0)


def finish_reading(got: Collected, stop: threading.Event, reader: threading.Thread,
                   quiet: float = 2.0) -> None:
    """Stop the output reader once no alert has come for ``quiet`` seconds.

    Alerts are confirmed before offsets are committed, so once everything is
    committed they are on the topic; the reader only has to catch up.
    """
    seen, quiet_since = len(got.alerts), time.monotonic()
    while time.monotonic() - quiet_since < quiet:
        time.sleep(0.2)
        if len(got.alerts) != seen:
            seen, quiet_since = len(got.alerts), time.monotonic()
    stop.set()
    reader.join(timeout=5)


def committed_total(s: Settings, partitions: dict[tuple[str, int], int]) -> int:
    """Events the worker has processed and committed (offsets of its group).

    Committed offsets are the honest progress signal: Faust commits an
    offset only once its event has been processed.
    """
    consumer = clients.consumer(s, group_id=s.app_id, enable_auto_commit=False)
    try:
        total = 0
        for (topic, part), _ in partitions.items():
            off = consumer.committed(TopicPartition(topic, part))
            total += off or 0
        return total
    finally:
        consumer.close()


def http_get(port: int, path: str, *, host: str = "127.0.0.1",
             timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body) of ``GET http://host:port/path``; status 0, and the error
    as the body, when nothing answers (not listening yet, or stopped)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:  # URLError and timeouts among them
        return 0, str(exc).encode()
