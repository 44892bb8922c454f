"""Shared pieces of the benchmarks: figures, the machine, broker, workers, Kafka I/O.

Every benchmark starts its own embedded broker in a temporary directory and
stops it (and every worker it started) on the way out, on error or Ctrl-C too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from stream_app.core.settings import Settings, from_env
from stream_app.kafka.admin import create_topics
from stream_app.kafka.broker import LocalBroker, free_port
from stream_app.offline import harness
from stream_app.offline.harness import committed_total, running_worker
from stream_app.offline.synthetic import Population

# -- figures -----------------------------------------------------------------


@dataclass
class Figure:
    """One measured number, with what it was measured beside and against."""

    benchmark: str
    figure: str
    value: float
    unit: str
    #: What the figure means, in a few words (the table's first column).
    label: str = ""
    #: Sizes and parameters of the measurement.
    params: dict[str, Any] = field(default_factory=dict)
    #: The issue's target, e.g. ">= 10000", and whether this run met it.
    target: str | None = None
    meets_target: bool | None = None
    note: str = ""

    def as_dict(self, machine: dict[str, Any]) -> dict[str, Any]:
        d: dict[str, Any] = {"benchmark": self.benchmark, "figure": self.figure,
                             "value": round(self.value, 6), "unit": self.unit,
                             "params": self.params}
        if self.target is not None:
            d["target"] = self.target
            d["meets_target"] = self.meets_target
        if self.note:
            d["note"] = self.note
        d["machine"] = machine
        return d


def fmt_value(f: Figure) -> str:
    v = f.value
    if f.unit == "ratio":
        return f"{v:.3f}"
    if f.unit in ("events/s", "records/s", "bytes", "KiB", "MiB"):
        return f"{v:,.0f} {f.unit}" if abs(v) >= 100 else f"{v:,.1f} {f.unit}"
    if f.unit == "ms":
        return f"{v:,.0f} ms" if abs(v) >= 100 else f"{v:,.1f} ms"
    if f.unit == "s":
        return f"{v:,.1f} s"
    return f"{v:,.6g} {f.unit}"


def markdown_table(figures: Sequence[Figure]) -> str:
    lines = ["| benchmark | figure | value | target |", "|---|---|---|---|"]
    for f in figures:
        target = ""
        if f.target is not None:
            target = f"{f.target} ({'met' if f.meets_target else 'NOT met'})"
        label = f.label or f.figure
        if f.note:
            label += f" ({f.note})"
        lines.append(f"| {f.benchmark} | {label} | {fmt_value(f)} | {target} |")
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    mem_gib = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": mem_gib,
            "python": platform.python_version(), "platform": platform.platform()}


def log(message: str) -> None:
    """Progress, on stderr (stdout carries only the results)."""
    print(f"# [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# -- broker, settings, workers ---------------------------------------------


class Bench:
    """A temporary directory and a running local broker, for one benchmark."""

    def __init__(self, name: str, keep: bool = False) -> None:
        self.name = name
        self.keep = keep
        self.work = Path(tempfile.mkdtemp(prefix=f"churnwatch-bench-{name}-"))
        self.broker = LocalBroker(log_path=self.work / "broker.log")
        self._workers = 0

    def __enter__(self) -> Bench:
        self.broker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.broker.stop()
        finally:
            if self.keep:
                log(f"kept {self.work}")
            else:
                shutil.rmtree(self.work, ignore_errors=True)

    def settings(self, app_id: str, **overrides: Any) -> Settings:
        """Settings for a worker (or the tooling) on this broker, own data dir and port.

        Other settings come from the ``CHURNWATCH_*`` environment, so a figure
        can be measured under, say, another flush interval.
        """
        self._workers += 1
        values: dict[str, Any] = dict(
            broker_url=self.broker.url, broker_profile="local", store="rocksdb://",
            data_dir=str(self.work / f"state-{app_id}-{self._workers}"),
            web_port=free_port(), app_id=app_id, log_level="warning")
        values.update(overrides)
        return from_env().with_overrides(**values)

    def log_path(self, label: str) -> Path:
        return self.work / f"{label}.log"

    def broker_rss_bytes(self) -> int | None:
        proc = self.broker.proc
        return rss_bytes(proc.pid) if proc is not None else None


class WorkerFailed(RuntimeError):
    pass


def log_tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@contextlib.contextmanager
def worker(s: Settings, log_path: Path,
           extra_env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A worker child process; stopped on the way out, its log tail shown on failure."""
    try:
        with running_worker(s, log_path, extra_env) as proc:
            yield proc
    except WorkerFailed:
        print(f"--- last lines of {log_path.name} ---\n{log_tail(log_path)}",
              file=sys.stderr)
        raise


def check_alive(proc: subprocess.Popen[bytes], what: str = "worker") -> None:
    if proc.poll() is not None:
        raise WorkerFailed(f"the {what} exited with code {proc.returncode}")


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of GET http://127.0.0.1:port/path; status 0 if unreachable."""
    return harness.http_get(port, path, timeout=timeout)


def wait_ready(s: Settings, proc: subprocess.Popen[bytes], timeout: float = 600.0,
               poll: float = 0.1) -> float:
    """Block until the worker's /ready answers 200; return the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive(proc)
        status, _ = http_get(s.web_port, "/ready", timeout=2.0)
        if status == 200:
            return time.monotonic()
        time.sleep(poll)
    raise WorkerFailed(f"the worker was not ready within {timeout:.0f} s")


def metric_values(text: str, name: str) -> list[float]:
    """Every sample of the Prometheus metric ``name`` (any labels) in /metrics text."""
    out: list[float] = []
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            with contextlib.suppress(ValueError, IndexError):
                out.append(float(line.rsplit(" ", 1)[1]))
    return out


def metric_sum(port: int, name: str) -> float | None:
    """Sum of a metric's samples from a worker's /metrics; None if absent."""
    status, body = http_get(port, "/metrics", timeout=10.0)
    if status != 200:
        return None
    values = metric_values(body.decode(errors="replace"), name)
    return sum(values) if values else None


def rss_bytes(pid: int, field_name: str = "VmRSS") -> int | None:
    """Resident set size (or VmHWM, the peak) of a process, from /proc."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used so far, from /proc."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def topic_of(s: Settings, kind: str) -> str:
    return s.topic_for(kind)


def partition_for(key: bytes, partitions: int) -> int:
    """The default Kafka partitioner (murmur2), as every producer here uses it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# -- Kafka I/O ---------------------------------------------------------------


def new_producer(s: Settings, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = dict(bootstrap_servers=s.bootstrap_servers, linger_ms=20,
                                   max_batch_size=256 * 1024, acks=1)
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def produce_population(s: Settings, pop: Population) -> dict[tuple[str, int], int]:
    """Every event of ``pop`` on its topic, keyed by customer; end offsets per partition."""
    producer = new_producer(s)
    await producer.start()
    ends: dict[tuple[str, int], int] = {}
    try:
        futures = [await producer.send(topic_of(s, e.topic), key=e.customer_id.encode(),
                                       value=orjson.dumps(e.value))
                   for e in pop.events]
        for fut in futures:
            md = await fut
            key = (md.topic, md.partition)
            ends[key] = max(ends.get(key, 0), md.offset + 1)
    finally:
        await producer.stop()
    return ends


async def produce_records(s: Settings, topic: str,
                          records: Iterable[tuple[bytes, bytes, int]],
                          window: int = 20000) -> int:
    """(key, value, partition) records onto ``topic``; returns how many."""
    producer = new_producer(s, linger_ms=50, max_batch_size=1024 * 1024,
                            max_request_size=8 * 1024 * 1024)
    await producer.start()
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    try:
        for key, value, partition in records:
            pending.append(await producer.send(topic, key=key, value=value,
                                               partition=partition))
            sent += 1
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def raw_consume(s: Settings, topics: Sequence[str], total: int,
                      decode: bool = True) -> float:
    """Records/s of a plain aiokafka consumer reading ``total`` records from the start."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=s.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None, max_partition_fetch_bytes=4 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for records in batches.values():
                if decode:
                    for r in records:
                        if r.value is not None:
                            orjson.loads(r.value)
                seen += len(records)
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def setup_topics(s: Settings) -> None:
    create_topics(s)


@dataclass
class Progressed:
    """What :func:`wait_committed` saw: first and last commit times and counts."""

    first_at: float | None
    first_done: int
    last_at: float
    done: int
    expected: int
    #: From the workers' ``churnwatch_events_total``: when the first event was
    #: seen applied (and how many by then), when all of them were.
    applied_first_at: float | None = None
    applied_first: float = 0.0
    applied_all_at: float | None = None

    @property
    def commit_rate(self) -> float:
        """Events/s from the first commit seen to the last."""
        if self.first_at is None or self.last_at <= self.first_at:
            return 0.0
        return (self.done - self.first_done) / (self.last_at - self.first_at)

    @property
    def rate(self) -> float:
        """Events/s from the first event applied to the last (from the workers'
        counters, polled every half second), else from commits (every ~3 s)."""
        a, b = self.applied_first_at, self.applied_all_at
        if a is not None and b is not None and b > a:
            return (self.expected - self.applied_first) / (b - a)
        return self.commit_rate

    @property
    def seconds(self) -> float:
        a, b = self.applied_first_at, self.applied_all_at
        if a is not None and b is not None and b > a:
            return b - a
        return self.last_at - (self.first_at or self.last_at)


def wait_committed(s: Settings, ends: dict[tuple[str, int], int],
                   procs: Sequence[subprocess.Popen[bytes]], stall: float = 180.0,
                   poll: float = 0.5, label: str = "worker",
                   ports: Sequence[int] = ()) -> Progressed:
    """Poll the group's committed offsets until every produced event is committed.

    With the workers' web ports, also poll their applied-events counters for
    a finer first-to-last timing than the commit interval gives.
    """
    expected = sum(ends.values())
    first_at: float | None = None
    first_done = done = shown = 0
    advanced = last_at = time.monotonic()
    next_log = 0.0
    applied_first_at: float | None = None
    applied_all_at: float | None = None
    applied_first = 0.0
    while done < expected:
        for proc in procs:
            check_alive(proc)
        if ports and applied_all_at is None:
            counts = [metric_sum(p, "churnwatch_events_total") for p in ports]
            applied = sum(c for c in counts if c is not None)
            at = time.monotonic()
            if applied > 0 and applied_first_at is None:
                applied_first_at, applied_first = at, applied
            if applied >= expected:
                applied_all_at = at
        now_done = min(expected, committed_total(s, ends))
        now = time.monotonic()
        if now_done > done:
            if first_at is None:
                first_at, first_done = now, now_done
            done, advanced, last_at = now_done, now, now
        elif now - advanced > stall:
            raise WorkerFailed(f"no progress for {stall:.0f} s ({done:,}/{expected:,})")
        if done != shown and now >= next_log:
            log(f"{label}: committed {done:,}/{expected:,}")
            shown, next_log = done, now + 10.0
        if done < expected:
            time.sleep(poll)
    return Progressed(first_at, first_done, last_at, done, expected,
                      applied_first_at, applied_first, applied_all_at)


__all__ = [
    "Bench", "Figure", "Progressed", "WorkerFailed", "check_alive", "free_port",
    "http_get", "log", "machine_info", "markdown_table", "metric_sum", "new_producer",
    "partition_for", "percentile", "produce_population", "produce_records", "raw_consume",
    "rss_bytes", "setup_topics", "topic_of", "wait_committed", "wait_ready", "worker",
]


# -- profiling ---------------------------------------------------------------


def py_spy() -> str | None:
    """The py-spy executable, beside this Python or on PATH (optional)."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


@contextlib.contextmanager
def profiled(pid: int, path: Path | None) -> Iterator[None]:
    """Sample ``pid`` with py-spy into ``path`` (folded stacks) while the block runs."""
    exe = py_spy() if path is not None else None
    if path is None or exe is None:
        if path is not None:
            log("py-spy not found: no profile")
        yield
        return
    proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--format", "raw",
                             "--rate", "50", "--nonblocking", "--output", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


#: Where a worker's time goes: each sample is charged to the part owning the
#: innermost frame that any of these path fragments match (first match wins).
PROFILE_PARTS = (
    ("churnwatch signals and scoring", ("stream_app/core/signals/", "stream_app/core/scoring.py",
                                        "stream_app/core/alerting.py",
                                        "stream_app/core/playbook.py")),
    ("churnwatch text matching", ("stream_app/core/text.py", "stream_app/core/concerns.py")),
    ("churnwatch decoding", ("stream_app/core/decoding.py",)),
    ("churnwatch state (fold, serialise)", ("stream_app/core/state.py",)),
    ("churnwatch processor, other", ("stream_app/",)),
    ("Prometheus sensor and metrics", ("faust/sensors/", "prometheus_client/")),
    ("RocksDB store", ("faust/stores/rocksdb.py", "rocksdict")),
    ("faust tables and changelog", ("faust/tables/",)),
    ("faust streams, agents, consumer", ("faust/",)),
    ("aiokafka producer", ("aiokafka/producer/",)),
    ("aiokafka consumer", ("aiokafka/consumer/",)),
    ("aiokafka protocol and connection", ("aiokafka/",)),
    ("mode (services, timers)", ("mode/",)),
    ("logging", ("logging/",)),
    ("asyncio event loop and sockets", ("asyncio/", "selectors.py")),
)


def summarize_profile(path: Path, top: int = 10) -> list[str]:
    """Share of samples per part of the worker, and the top own-time functions."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    total = 0
    parts: dict[str, int] = {}
    self_time: dict[str, int] = {}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        total += count
        frames = stack.split(";")
        owner = "other"
        for frame in reversed(frames):
            hit = next((name for name, needles in PROFILE_PARTS
                        if any(n in frame for n in needles)), None)
            if hit is not None:
                owner = hit
                break
        parts[owner] = parts.get(owner, 0) + count
        self_time[frames[-1]] = self_time.get(frames[-1], 0) + count
    if not total:
        return []
    out = [f"{total:,} samples; share per part (innermost known frame):"]
    out += [f"  {100 * n / total:5.1f}%  {name}"
            for name, n in sorted(parts.items(), key=lambda kv: -kv[1])]
    out.append("top functions by own time:")
    for leaf, n in sorted(self_time.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * n / total:5.1f}%  {leaf}")
    return out
