"""``churnwatch demo``: the whole system on this machine, with no configuration.

Starts the embedded broker, creates the topics, starts one worker (a child
process, exactly as in production), streams a synthetic population through
the input topics in event time as fast as the broker takes it, prints each
alert as it arrives, and ends with a summary scored against what the
generator made of each customer.  Ctrl-C stops everything and leaves no
process behind.
"""

from __future__ import annotations

import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..core.decoding import parse_event_time
from ..core.settings import Settings, env_name
from ..kafka import clients
from ..kafka.admin import create_topics
from ..kafka.broker import LocalBroker, free_port
from .harness import (
    Collected,
    WorkerStopped,
    consume_outputs,
    finish_reading,
    http_get,
    running_worker,
    stop_process,
    wait_processed,
    worker_env,
)
from .progress import Progress
from .synthetic import DAY, Population, generate

#: A few malformed events are mixed in to show the dead-letter path.
BAD_EVENTS: list[tuple[str, bytes | None, bytes]] = [
    ("purchases", b"C000001", b"this is not JSON"),
    ("purchases", b"C000002", b'{"event_id":"x1","customer_id":"C000002","ts":"yesterday",'
                              b'"amount":10}'),
    ("complaints", b"C000003", b'{"event_id":"x2","customer_id":"C000003",'
                               b'"ts":"2025-03-01T10:00:00+02:00","category":"weather",'
                               b'"severity":3}'),
    ("contacts", None, b'{"event_id":"x3","ts":"2025-03-01T10:00:00+02:00",'
                       b'"direction":"inbound","channel":"phone"}'),
]


def format_alert(a: dict[str, Any]) -> str:
    sev = a["severity"].upper()
    codes = ", ".join(sig["code"] for sig in a["signals"])
    head = f"[{a['ts'][:10]}] {sev:<8} risk {a['risk_score']:>5.1f}  {a['route']:<11} {codes}"
    return f"{head}\n    {a['summary']}"


def produce(s: Settings, pop: Population, progress: Progress,
            produced: dict[tuple[str, int], int]) -> int:
    producer = clients.producer(s, linger_ms=20, batch_size=256 * 1024, acks=1)

    def record(md: Any) -> None:
        key = (md.topic, md.partition)
        produced[key] = max(produced.get(key, 0), md.offset + 1)

    total = len(pop.events) + len(BAD_EVENTS)
    bad_at = {len(pop.events) * (i + 1) // (len(BAD_EVENTS) + 1): b
              for i, b in enumerate(BAD_EVENTS)}
    started = time.monotonic()
    sent = 0
    for i, e in enumerate(pop.events):
        if i in bad_at:
            kind, key, raw = bad_at[i]
            producer.send(s.topic_for(kind), key=key, value=raw).add_callback(record)
            sent += 1
        producer.send(s.topic_for(e.topic), key=e.customer_id.encode(),
                      value=orjson.dumps(e.value)).add_callback(record)
        sent += 1
        if sent % 2000 == 0:
            rate = sent / max(1e-6, time.monotonic() - started)
            day = time.strftime("%Y-%m-%d", time.gmtime(e.ts))
            progress.show(f"  streaming events: {sent:,}/{total:,} "
                          f"(simulated {day}, {rate:,.0f}/s)", 100 * sent / total)
    producer.flush()
    producer.close()
    return sent


def summarize(pop: Population, got: Collected, processed: int, seconds: float,
              out: TextIO) -> None:
    alerts = got.alerts
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for a in alerts:
        by_customer.setdefault(a["customer_id"], []).append(a)

    def first_alert_ts(cid: str) -> float:
        return min(parse_event_time(a["ts"]) for a in by_customer[cid])

    churners, loyal = pop.churners(), pop.loyal()
    caught = [p for p in churners if p.customer_id in by_customer]
    leads = [(p.last_purchase or 0) - first_alert_ts(p.customer_id) for p in caught]
    since_drift = [first_alert_ts(p.customer_id) - (p.drift_start or 0) for p in caught]
    early = [x for x in leads if x > 0]
    false_alarms = [p for p in loyal if p.customer_id in by_customer]
    signals = Counter(sig["code"] for a in alerts for sig in a["signals"])
    severities = Counter(a["severity"] for a in alerts)
    routes = Counter(a["route"] for a in alerts)
    w = out.write
    w("\n" + "=" * 72 + "\nSummary\n" + "=" * 72 + "\n")
    w(f"events processed     {processed:,} in {seconds:.0f} s "
      f"({processed / max(seconds, 1e-6):,.0f}/s end to end)\n")
    w(f"customers            {len(pop.plans):,} ({len(churners)} made to churn, "
      f"{len(loyal)} kept loyal)\n")
    w(f"alerts               {len(alerts):,} for {len(by_customer):,} customers\n")
    w("  by signal          " + ", ".join(f"{k} {v}" for k, v in signals.most_common()) + "\n")
    w("  by severity        " + ", ".join(f"{k} {severities[k]}" for k in
                                          ("critical", "high", "medium", "low")
                                          if severities[k]) + "\n")
    w("  by route           " + ", ".join(f"{k} {v}" for k, v in routes.most_common()) + "\n")
    w(f"dead letters         {len(got.dead_letters)} (malformed events, each with its reason)\n")
    for d in got.dead_letters[:4]:
        w(f"  {d['topic']}[{d['partition']}]@{d['offset']}: {d['reason'][:70]}\n")
    if churners:
        w(f"churners caught      {len(caught)}/{len(churners)} "
          f"({100 * len(caught) / len(churners):.0f}%)\n")
    if caught:
        w(f"  alerted before their last purchase: {len(early)}/{len(caught)}; "
          f"median {statistics.median(leads) / DAY:+.0f} days from first alert to last "
          "purchase\n")
        w(f"  median {statistics.median(since_drift) / DAY:.0f} days from the first sign "
          "(drift or complaint burst) to the first alert\n")
    if loyal:
        # Regular and seasonal buyers should hear nothing; a loyal customer
        # who complains should (acting on the complaint is the playbook), so
        # that persona is counted apart.
        quiet = [p for p in loyal if p.persona != "complains_but_stays"]
        complainers = [p for p in loyal if p.persona == "complains_but_stays"]
        alerted_quiet = [p for p in quiet if p.customer_id in by_customer]
        w(f"loyal customers alerted {len(false_alarms)}/{len(loyal)}\n")
        if quiet:
            w(f"  regular and seasonal buyers {len(alerted_quiet)}/{len(quiet)} "
              f"({100 * len(alerted_quiet) / len(quiet):.1f}% false alert rate)\n")
        if complainers:
            heard = sum(p.customer_id in by_customer for p in complainers)
            w(f"  loyal customers who complained {heard}/{len(complainers)} (alerted to "
              "act on the complaint)\n")


def run_demo(base: Settings, customers: int, days: int, seed: int, quiet: bool,
             out: TextIO = sys.stdout, serve: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="churnwatch-demo-"))
    progress = Progress(sys.stderr)
    out.write(f"Generating {customers:,} customers over {days} days (seed {seed})...\n")
    pop = generate(customers=customers, days=days, seed=seed)
    out.write(f"  {len(pop.events):,} events: "
              + ", ".join(f"{v:,} {k}" for k, v in sorted(pop.counts.items())) + "\n")
    with LocalBroker(log_path=workdir / "broker.log") as broker:
        s = base.with_overrides(broker_url=broker.url, broker_profile="local",
                                data_dir=str(workdir / "state"), web_port=free_port())
        out.write(f"Local broker on {broker.bootstrap}; creating topics...\n")
        create_topics(s)
        out.write(f"Starting a worker (log: {workdir / 'worker.log'}, "
                  f"web: http://{s.web_host}:{s.web_port}/)...\n")
        with running_worker(s, workdir / "worker.log") as worker:
            got, stop = Collected(), threading.Event()

            def show(a: dict[str, Any]) -> None:
                if not quiet:
                    progress.clear()
                    out.write(format_alert(a) + "\n")
                    out.flush()

            reader = threading.Thread(target=consume_outputs, args=(s, got, stop, show),
                                      daemon=True)
            reader.start()
            started = time.monotonic()
            produced: dict[tuple[str, int], int] = {}
            total = produce(s, pop, progress, produced)
            progress.phase()
            try:
                wait_processed(s, worker, produced, got, progress, workdir / "worker.log")
            except WorkerStopped as exc:
                out.write(f"\n{exc}\n")
                return 1
            seconds = time.monotonic() - started
            finish_reading(got, stop, reader)
            progress.clear()
            summarize(pop, got, total, seconds, out)
            show_lookup(s, got, out)
            if serve:
                serve_console(s, worker, workdir, out)
    return 0


def serve_console(s: Settings, worker: subprocess.Popen[bytes], workdir: Path,
                  out: TextIO) -> None:
    """``demo --serve``: the console beside the worker, until Ctrl-C (or the worker stops).

    A child process (``churnwatch console``) like the worker; the token is the
    settings' or one made up for this run, and the printed link signs in with it.
    """
    token = s.api_token or secrets.token_urlsafe(12)
    port = free_port()
    env = {**worker_env(s), env_name("api_token"): token}
    with open(workdir / "console.log", "ab") as log:
        console = subprocess.Popen(
            [sys.executable, "-m", "stream_app", "console", "--port", str(port),
             "--worker-url", f"http://{s.web_host}:{s.web_port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while http_get(port, "/health", timeout=5)[0] != 200 and console.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.3)
        out.write(f"\nThe console: {url}login?token={token}\n"
                  f"  (or open {url} and sign in with the token {token}; "
                  f"log: {workdir / 'console.log'})\n"
                  f"The worker keeps running: http://{s.web_host}:{s.web_port}/ "
                  "(/customers/{id}, /alerts, /metrics). Ctrl-C stops everything.\n")
        out.flush()
        while worker.poll() is None and console.poll() is None:
            time.sleep(1.0)
    finally:
        stop_process(console)


#: The worker's own metrics the demo checks for on /metrics.
DEMO_METRICS = (
    "churnwatch_events_total", "churnwatch_dead_letters_total", "churnwatch_alerts_total",
    "churnwatch_customers_tracked", "churnwatch_consumer_lag_messages",
    "churnwatch_ingest_to_alert_seconds", "churnwatch_event_time_to_alert_seconds",
    "churnwatch_faust_messages_received_per_topic", "churnwatch_faust_table_operations",
)


def show_lookup(s: Settings, got: Collected, out: TextIO) -> None:
    """Ask the running worker about the riskiest customer, as a call centre would."""
    if not got.alerts:
        return
    top = max(got.alerts, key=lambda a: a["risk_score"])["customer_id"]
    status, body = http_get(s.web_port, f"/customers/{top}", host=s.web_host)
    out.write(f"\nLook-up  GET /customers/{top}  ->  HTTP {status}\n")
    if status == 200:
        r = orjson.loads(body)
        out.write(f"  risk {r['risk_score']:.1f} ({r['severity']}), route {r['route']}, "
                  f"signals {', '.join(x['code'] for x in r['signals']) or 'none'} "
                  f"as of {r['at']}\n")
        if r.get("summary"):
            out.write(f"  {r['summary']}\n")
    status, body = http_get(s.web_port, "/metrics", host=s.web_host)
    text = body.decode("utf-8", "replace")
    missing = [m for m in DEMO_METRICS if m not in text]
    out.write(f"Metrics  GET /metrics  ->  HTTP {status}, "
              f"{len(DEMO_METRICS) - len(missing)}/{len(DEMO_METRICS)} churnwatch metrics"
              + (f" (missing: {', '.join(missing)})" if missing else "") + "\n")
