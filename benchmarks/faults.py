"""Faults: a paused broker, a lost broker, a burst, and SIGKILLed workers.

Four measurements, each on a broker of its own and each beside a reference
taken in the same run:

* **pause**: a synthetic stream is on the broker; one worker (the reference)
  processes it uninterrupted, then a second worker (its own group and alerts
  topic) processes it while the broker is stopped with SIGSTOP for
  ``--pause-seconds`` (20) mid-stream and resumed with SIGCONT.  Compared:
  events applied (the worker's ``churnwatch_events_total``: one process, so
  an event applied twice would show), redeliveries it recognised, and alert
  ids against the reference's: missing, extra, published twice.
* **broker-loss**: the broker is SIGKILLed mid-stream under a working worker;
  for up to ``--loss-seconds`` (180) the worker's log lines per second, its
  ``/ready`` answers, and whether and when it exits (and its exit code).  The
  reference is the same worker's log rate and ``/ready`` before the loss.
* **burst**: a ready, idle worker gets ``--burst-events`` (300,000) events
  produced as fast as the producer goes; its RSS is sampled every half second
  until all are committed.  The reference is its idle RSS before the burst.
* **kill**: the stream is processed by a worker SIGKILLed ``--kills`` (3)
  times mid-stream (at 1/4, 2/4 and 3/4 of the stream committed, each after
  progress past the previous kill) and restarted on the same data; its alert
  ids against an uninterrupted worker's (RocksDB store for both).

Alerts are compared as the kill test compares them: those dated at or before
the stream's last event (alerts from the idle clock after the end depend on
how long a worker idled).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from stream_app.core.settings import Settings
from stream_app.offline.harness import committed_total
from stream_app.offline.synthetic import generate
from tests.integration.test_kill import alerts_on

from .common import (
    Bench,
    Figure,
    WorkerFailed,
    check_alive,
    http_get,
    log,
    metric_sum,
    produce_population,
    rss_bytes,
    setup_topics,
    wait_committed,
    wait_ready,
    worker,
)

NAME = "faults"
#: Synthetic customers in the pause and kill streams (~52 events each).
STREAM_CUSTOMERS = 2000
POLL = 0.2


def _applied(s: Settings) -> float:
    return metric_sum(s.web_port, "churnwatch_events_total") or 0.0


def _alert_ids(s: Settings, last_event: str) -> list[str]:
    return [str(a["alert_id"]) for a in alerts_on(s) if str(a["ts"]) <= last_event]


def _compare(got: list[str], expected: list[str]) -> dict[str, int]:
    return {"alerts_reference": len(expected), "alerts": len(got),
            "missing": len(set(expected) - set(got)), "extra": len(set(got) - set(expected)),
            "published_twice": len(got) - len(set(got))}


def _wait(condition: Any, proc: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        check_alive(proc)
        if time.monotonic() > deadline:
            raise WorkerFailed(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL)


def _stream(args: argparse.Namespace) -> tuple[Any, str]:
    pop = generate(customers=args.fault_customers, days=args.days, seed=args.seed)
    return pop, max(e.value["ts"] for e in pop.events)


# -- pause -------------------------------------------------------------------


def pause(args: argparse.Namespace) -> list[Figure]:
    pop, last_event = _stream(args)
    total = len(pop.events)
    with Bench(f"{NAME}-pause", keep=args.keep) as bench:
        ref = bench.settings("churnwatch-bench-pause-ref", topic_alerts="alerts-ref")
        paused = bench.settings("churnwatch-bench-pause", topic_alerts="alerts-paused")
        setup_topics(ref)
        setup_topics(paused)
        ends = asyncio.run(produce_population(ref, pop))
        log(f"{NAME}: pause: {total:,} events; the reference run")
        with worker(ref, bench.log_path("reference")) as proc:
            t0 = time.monotonic()
            wait_committed(ref, ends, [proc], label="reference")
            ref_seconds = time.monotonic() - t0
            ref_applied = _applied(ref)
        expected = _alert_ids(ref, last_event)
        broker = bench.broker.proc
        assert broker is not None
        ready_during: list[int] = []
        with worker(paused, bench.log_path("paused")) as proc:
            t0 = time.monotonic()
            _wait(lambda: _applied(paused) > total * 0.3, proc, 600, "a third applied")
            before = _applied(paused)
            log(f"{NAME}: pause: SIGSTOP the broker at {before:,.0f}/{total:,} applied")
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                stop_until = time.monotonic() + args.pause_seconds
                while time.monotonic() < stop_until:
                    ready_during.append(http_get(paused.web_port, "/ready", timeout=1.0)[0])
                    time.sleep(1.0)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            resumed_at = time.monotonic()
            stalled = _applied(paused)
            _wait(lambda: _applied(paused) > stalled, proc, 600, "progress after SIGCONT")
            resume_s = time.monotonic() - resumed_at
            log(f"{NAME}: pause: progress again {resume_s:.1f} s after SIGCONT")
            wait_committed(paused, ends, [proc], label="paused")
            seconds = time.monotonic() - t0
            applied = _applied(paused)
            redelivered = metric_sum(paused.web_port, "churnwatch_duplicates_total") or 0.0
            check_alive(proc)
        got = _alert_ids(paused, last_event)
    cmp = _compare(got, expected)
    params: dict[str, Any] = {"events": total, "customers": args.fault_customers,
                              "pause_s": args.pause_seconds, "applied": applied,
                              "applied_reference": ref_applied,
                              "redelivered_and_skipped": redelivered,
                              "paused_at_applied": before,
                              "ready_codes_during_pause": sorted(set(ready_during)),
                              "seconds": round(seconds, 1),
                              "seconds_reference": round(ref_seconds, 1), **cmp}
    log(f"{NAME}: pause: {params}")
    return [
        Figure(NAME, "pause_events_applied", applied, "events", params=params,
               label=f"broker paused {args.pause_seconds:g} s: events applied "
                     f"(of {total:,}; reference {ref_applied:,.0f})"),
        Figure(NAME, "pause_alerts_missing", cmp["missing"], "alerts", params=params,
               label=f"broker paused: alert ids missing vs the reference's "
                     f"{cmp['alerts_reference']:,}"),
        Figure(NAME, "pause_alerts_duplicated", cmp["published_twice"] + cmp["extra"], "alerts",
               params=params, label="broker paused: alert ids extra or published twice"),
        Figure(NAME, "pause_resume_seconds", resume_s, "s", params=params,
               label="broker paused: SIGCONT to the next event applied"),
        Figure(NAME, "pause_run_seconds", seconds, "s", params=params,
               label=f"broker paused: whole run (reference {ref_seconds:,.1f} s)"),
    ]


# -- broker loss -------------------------------------------------------------


_PROBLEM = (b'"level":"warning"', b'"level":"error"', b'"level":"critical"', b"[WARNING]",
            b"[ERROR]", b"[CRITICAL]")


def _lines(path: Path) -> tuple[int, int]:
    """(all lines, warning and error lines) of a worker's log so far."""
    try:
        with path.open("rb") as f:
            lines = f.readlines()
    except OSError:
        return 0, 0
    return len(lines), sum(1 for line in lines if any(p in line for p in _PROBLEM))


def broker_loss(args: argparse.Namespace) -> list[Figure]:
    pop, _ = _stream(args)
    total = len(pop.events)
    with Bench(f"{NAME}-loss", keep=args.keep) as bench:
        s = bench.settings("churnwatch-bench-loss")
        setup_topics(s)
        asyncio.run(produce_population(s, pop))
        log_path = bench.log_path("worker")
        broker = bench.broker.proc
        assert broker is not None
        with worker(s, log_path) as proc:
            wait_ready(s, proc, timeout=300)
            t_ready, (lines_ready, problems_ready) = time.monotonic(), _lines(log_path)
            _wait(lambda: _applied(s) > total * 0.3, proc, 600, "a third applied")
            lines_now, problems_now = _lines(log_path)
            lines_before, problems_before = lines_now - lines_ready, problems_now - problems_ready
            seconds_before = time.monotonic() - t_ready
            ready_before = http_get(s.web_port, "/ready")[0]
            applied_before = _applied(s)
            log(f"{NAME}: broker-loss: SIGKILL the broker at {applied_before:,.0f}/{total:,}")
            os.killpg(broker.pid, signal.SIGKILL)
            broker.wait()
            killed_at, (lines_at, problems_at) = time.monotonic(), _lines(log_path)
            ready: list[tuple[float, int]] = []
            exit_s: float | None = None
            ready_reason = ""
            while time.monotonic() - killed_at < args.loss_seconds:
                if proc.poll() is not None:
                    exit_s = time.monotonic() - killed_at
                    break
                code, body = http_get(s.web_port, "/ready", timeout=1.0)
                ready.append((time.monotonic() - killed_at, code))
                if code not in (0, 200) and not ready_reason:
                    ready_reason = body.decode(errors="replace")[:300]
                time.sleep(1.0)
            observed = time.monotonic() - killed_at
            lines_end, problems_end = _lines(log_path)
            lines_after, problems_after = lines_end - lines_at, problems_end - problems_at
            size_after = log_path.stat().st_size
            rc = proc.poll()
            tail = log_path.read_text(errors="replace").splitlines()[-3:]
    not_ready_at = next((t for t, code in ready if code != 200), None)
    params: dict[str, Any] = {
        "events": total, "applied_at_loss": applied_before, "observed_s": round(observed, 1),
        "exit_code": rc, "exit_after_s": None if exit_s is None else round(exit_s, 1),
        "ready_before": ready_before,
        "ready_codes_after": sorted({code for _, code in ready}),
        "first_not_ready_after_s": None if not_ready_at is None else round(not_ready_at, 1),
        "ready_answer_after": ready_reason,
        "log_lines_after": lines_after, "log_bytes_total": size_after,
        "log_lines_per_s_before": round(lines_before / max(seconds_before, 1e-9), 2),
        "warning_error_lines_after": problems_after,
        "warning_error_lines_per_s_before": round(
            problems_before / max(seconds_before, 1e-9), 2),
        "last_log_lines": tail,
        "broker_timeout_seconds": getattr(s, "broker_timeout_seconds", None)}
    log(f"{NAME}: broker-loss: {params}")
    rate_before = params["log_lines_per_s_before"]
    problems_rate = params["warning_error_lines_per_s_before"]
    figures = [
        Figure(NAME, "loss_log_lines_per_s", lines_after / observed, "lines/s", params=params,
               label=f"broker killed: worker log lines/s (before the loss {rate_before:g})"),
        Figure(NAME, "loss_warning_lines_per_s", problems_after / observed, "lines/s",
               params=params,
               label=f"broker killed: WARNING/ERROR/CRITICAL lines/s (before {problems_rate:g})"),
        Figure(NAME, "loss_exit_seconds", exit_s if exit_s is not None else observed, "s",
               params=params,
               label=("broker killed: seconds to the worker's exit, code "
                      f"{rc}" if exit_s is not None
                      else f"broker killed: the worker did NOT exit within {observed:.0f} s")),
    ]
    figures.append(Figure(NAME, "loss_not_ready_seconds",
                          not_ready_at if not_ready_at is not None else observed, "s",
                          params=params,
                          label=("broker killed: seconds until /ready is not 200 (before: "
                                 f"{ready_before})" if not_ready_at is not None else
                                 "broker killed: /ready stayed 200 throughout")))
    return figures


# -- burst -------------------------------------------------------------------


def burst(args: argparse.Namespace) -> list[Figure]:
    per_customer = 52.5
    customers = max(1, round(args.burst_events / per_customer))
    pop = generate(customers=customers, days=args.days, seed=args.seed)
    total = len(pop.events)
    with Bench(f"{NAME}-burst", keep=args.keep) as bench:
        s = bench.settings("churnwatch-bench-burst")
        setup_topics(s)
        with worker(s, bench.log_path("worker")) as proc:
            wait_ready(s, proc, timeout=300)
            time.sleep(3.0)
            idle = rss_bytes(proc.pid) or 0
            log(f"{NAME}: burst: idle RSS {idle / 2**20:,.0f} MiB; producing {total:,} events")
            ends: dict[tuple[str, int], int] = {}
            produced = threading.Event()

            def producer() -> None:
                ends.update(asyncio.run(produce_population(s, pop)))
                produced.set()

            thread = threading.Thread(target=producer, daemon=True)
            t0 = time.monotonic()
            thread.start()
            samples: list[tuple[float, float, int]] = []
            while True:
                check_alive(proc)
                applied = _applied(s)
                samples.append((time.monotonic() - t0, applied, rss_bytes(proc.pid) or 0))
                if produced.is_set() and committed_total(s, ends) >= total:
                    break
                if time.monotonic() - t0 > 3600:
                    raise WorkerFailed("burst: not committed within an hour")
                time.sleep(0.5)
            seconds = time.monotonic() - t0
            thread.join()
            peak = rss_bytes(proc.pid, "VmHWM") or 0
            final = rss_bytes(proc.pid) or 0
    mib = 2**20
    quart = {}
    for q in (0.25, 0.5, 0.75, 1.0):
        at = next((r for _, a, r in samples if a >= q * total), samples[-1][2])
        quart[f"rss_mib_at_{int(q * 100)}pct"] = round(at / mib)
    params: dict[str, Any] = {"events": total, "customers": customers,
                              "idle_rss_mib": round(idle / mib),
                              "final_rss_mib": round(final / mib),
                              "peak_rss_mib": round(peak / mib), "seconds": round(seconds, 1),
                              "samples": len(samples), **quart}
    log(f"{NAME}: burst: {params}")
    return [
        Figure(NAME, "burst_peak_rss", peak / mib, "MiB", params=params,
               label=f"burst of {total:,} events: worker peak RSS (idle before: "
                     f"{idle / mib:,.0f} MiB)"),
        Figure(NAME, "burst_final_rss", final / mib, "MiB", params=params,
               label=f"burst of {total:,} events: RSS once all committed"),
        Figure(NAME, "burst_rate", total / seconds, "events/s", params=params,
               label="burst: events/s, first produced to last committed"),
    ]


# -- kill --------------------------------------------------------------------


def kill(args: argparse.Namespace) -> list[Figure]:
    pop, last_event = _stream(args)
    total = len(pop.events)
    with Bench(f"{NAME}-kill", keep=args.keep) as bench:
        ref = bench.settings("churnwatch-bench-kill-ref", topic_alerts="alerts-ref")
        killed = bench.settings("churnwatch-bench-kill", topic_alerts="alerts-killed")
        setup_topics(ref)
        setup_topics(killed)
        ends = asyncio.run(produce_population(ref, pop))
        log(f"{NAME}: kill: {total:,} events; the reference run")
        with worker(ref, bench.log_path("reference")) as proc:
            wait_committed(ref, ends, [proc], label="reference")
            ref_applied = _applied(ref)
        expected = _alert_ids(ref, last_event)
        kills: list[dict[str, float]] = []
        applied_per_run: list[float] = []
        previous = 0
        for i in range(args.kills):
            # Mid-stream: past the previous kill's commit, at (i+1)/(kills+2) of the stream.
            target = max(previous + 1, total * (i + 1) // (args.kills + 2))
            with worker(killed, bench.log_path(f"killed-{i + 1}")) as proc:
                _wait(lambda t=target: committed_total(killed, ends) >= t, proc, 900,
                      f"kill {i + 1}: committed past {target:,}")
                applied = _applied(killed)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            at = committed_total(killed, ends)
            if at >= total:
                log(f"{NAME}: kill {i + 1}: the worker had committed the whole stream; "
                    "a larger --fault-customers puts the kills mid-stream")
            kills.append({"committed_at_kill": at, "applied_by_this_run": applied})
            applied_per_run.append(applied)
            previous = at
            log(f"{NAME}: kill {i + 1}: SIGKILL at {at:,}/{total:,} committed")
            if at >= total:
                break
        with worker(killed, bench.log_path("killed-last")) as proc:
            wait_committed(killed, ends, [proc], label="after the kills")
            applied_per_run.append(_applied(killed))
            suppressed = metric_sum(killed.web_port, "churnwatch_alerts_suppressed_total")
        got = _alert_ids(killed, last_event)
    cmp = _compare(got, expected)
    mid_stream = sum(1 for k in kills if k["committed_at_kill"] < total)
    params: dict[str, Any] = {"events": total, "customers": args.fault_customers,
                              "store": "rocksdb://", "kills": kills,
                              "kills_mid_stream": mid_stream,
                              "applied_all_runs": sum(applied_per_run),
                              "applied_reference": ref_applied,
                              "alerts_suppressed_after_restart": suppressed, **cmp}
    log(f"{NAME}: kill: {params}")
    redone = sum(applied_per_run) - total
    return [
        Figure(NAME, "kill_alerts_missing", cmp["missing"], "alerts", params=params,
               label=f"{mid_stream} SIGKILLs mid-stream: alert ids missing vs the "
                     f"uninterrupted run's {cmp['alerts_reference']:,}"),
        Figure(NAME, "kill_alerts_duplicated", cmp["published_twice"] + cmp["extra"], "alerts",
               params=params, label=f"{mid_stream} SIGKILLs: alert ids extra or published twice"),
        Figure(NAME, "kill_events_redone", redone, "events", params=params,
               label=f"{mid_stream} SIGKILLs: events applied again after a restart "
                     f"(of {total:,}; uninterrupted: {ref_applied:,.0f})"),
    ]


PARTS = {"pause": pause, "broker-loss": broker_loss, "burst": burst, "kill": kill}


def run(args: argparse.Namespace) -> list[Figure]:
    figures: list[Figure] = []
    for name in args.fault_list:
        log(f"{NAME}: --- {name} ---")
        try:
            figures.extend(PARTS[name](args))
        except WorkerFailed as exc:
            log(f"{NAME}: {name} failed: {exc}")
            figures.append(Figure(NAME, f"{name}_failed", 0, "", note=str(exc),
                                  label=f"{name}: FAILED"))
    return figures
