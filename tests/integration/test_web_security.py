"""With the API token set, no route of a worker's web server gives out customer data.

The routes are not listed here by hand: they come from the app itself
(:func:`stream_app.interfaces.web.served_routes`, run with the worker's settings), so a
page that Faust or we add later is walked too.  Two workers share the
partitions, so look-ups are also forwarded from one worker to the other.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from stream_app.core.settings import Settings
from stream_app.kafka.admin import create_topics
from stream_app.kafka.broker import LocalBroker, free_port
from stream_app.offline.harness import running_worker, worker_env

from .conftest import WAIT

pytestmark = pytest.mark.integration

TOKEN = "s3cret-for-the-route-walk"
OPEN = {"/health", "/ready", "/metrics"}
#: Routes the walk must find: if the enumeration lost them, it could pass on nothing.
KNOWN = OPEN | {"/customers/{customer_id}", "/alerts"}


@dataclass
class Secured:
    workers: list[Settings]
    logs: list[Path]
    #: Customer id -> what only that customer's data holds (beside the id).
    secrets: dict[str, list[str]]
    routes: list[tuple[str, str]]


def http(port: int, path: str, method: str = "GET",
         token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:  # not listening yet
        return 0, ""


def wait_for(what: str, condition: object, logs: list[Path]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs)
    raise AssertionError(f"{what}: not within {WAIT:.0f} s. Worker log tails:\n{tails}")


def customers_tracked(port: int) -> float:
    status, text = http(port, "/metrics")
    found = re.search(r"^churnwatch_customers_tracked (\S+)$", text, re.M)
    return float(found.group(1)) if status == 200 and found else 0.0


def walked_path(pattern: str, customer_id: str) -> str:
    """The pattern with every ``{placeholder}`` filled from a real customer."""
    fill = {"name": "customer_to_state", "table": "customer_to_state"}
    return re.sub(r"\{(\w+)[^}]*\}", lambda m: fill.get(m.group(1), customer_id), pattern)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    work = tmp_path_factory.mktemp("secured")
    with LocalBroker(log_path=work / "broker.log") as broker:
        workers = [Settings().with_overrides(
            broker_url=broker.url, broker_profile="local", store="rocksdb://",
            data_dir=str(work / f"state-{i}"), web_port=free_port(), tick_seconds=1.0,
            app_id="churnwatch-secured", log_level="info", api_token=TOKEN,
            policy_file=str(Path(__file__).with_name("policy.toml")))
            for i in range(2)]
        create_topics(workers[0])
        # What the worker's web server serves, from the app built as the worker builds it.
        out = subprocess.run(
            [sys.executable, "-c", "import json\n"
             "from stream_app.core.settings import from_env\n"
             "from stream_app.interfaces import web\n"
             "from stream_app.kafka.worker import build_worker\n"
             "worker = build_worker(from_env())\n"
             "web.mount_web(worker)\n"
             "print(json.dumps(web.served_routes(worker)))"],
            env=worker_env(workers[0]), capture_output=True, text=True, check=True)
        routes = [(method, path) for method, path in json.loads(out.stdout.splitlines()[-1])]
        logs = [work / f"worker-{i}.log" for i in range(2)]
        with running_worker(workers[0], logs[0]), running_worker(workers[1], logs[1]):
            # Both in the group, each with partitions of its own, before any event.
            wait_for("both workers ready", lambda: all(
                http(s.web_port, "/ready")[0] == 200 for s in workers), logs)
            secrets = produce_one_customer_per_partition(workers[0])
            wait_for("every customer answered by both workers", lambda: all(
                http(s.web_port, f"/customers/{cid}", token=TOKEN)[0] == 200
                for s in workers for cid in secrets), logs)
            yield Secured(workers, logs, secrets, routes)


def produce_one_customer_per_partition(s: Settings) -> dict[str, list[str]]:
    """A customer on every partition, each with a purchase and a complaint of its own.

    The partition is the one the producer chose, so every worker owns some of
    them whatever the assignment.
    """
    producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks=1)
    secrets: dict[str, list[str]] = {}
    covered: set[int] = set()
    i = 0
    try:
        while len(covered) < s.partitions:
            cid = f"SEC-{i:04d}"
            amount = f"{7000 + i}.37"
            text = f"my parcel number {cid} went missing twice"
            for topic, value in (
                    (s.topic_purchases, {"ts": "2026-05-01T10:00:00Z", "amount": float(amount)}),
                    (s.topic_complaints, {"ts": "2026-05-02T10:00:00Z", "category": "delivery",
                                          "severity": 5, "text": text})):
                md = producer.send(topic, key=cid.encode(), value=orjson.dumps(
                    {"event_id": f"{cid}-{topic}", "customer_id": cid, **value})).get(timeout=30)
            if md.partition not in covered:
                covered.add(md.partition)
                secrets[cid] = [amount, "went missing twice"]
            i += 1
    finally:
        producer.close()
    return secrets


def test_the_enumeration_finds_our_views_and_none_of_faust_s_data_pages(
        secured: Secured) -> None:
    patterns = {path for _, path in secured.routes}
    assert patterns >= KNOWN, patterns
    assert {m for m, p in secured.routes if p == "/customers/{customer_id}"} >= {"GET", "HEAD"}
    assert not [p for p in patterns if p.startswith(("/table", "/router", "/stats", "/graph",
                                                     "/performance"))], patterns
    # What the issue found open, gone: not found even with the token.
    cid = next(iter(secured.secrets))
    port = secured.workers[0].web_port
    for path in (f"/table/customer_to_state/{cid}/", "/table/", "/router/"):
        assert http(port, path)[0] == 401, path
        assert http(port, path, token=TOKEN)[0] == 404, path


def test_no_route_answers_customer_data_without_the_token(secured: Secured) -> None:
    every_id = list(secured.secrets)
    for s in secured.workers:
        for cid, secrets in secured.secrets.items():
            for method, pattern in secured.routes:
                path = walked_path(pattern, cid)
                # With the token each route is live on the running worker (so
                # the enumeration is of what it serves), and the look-up holds
                # the data the others must not show.
                status, body = http(s.web_port, path, method, token=TOKEN)
                assert 200 <= status < 300, (method, path, status, body[:300])
                if pattern == "/customers/{customer_id}" and method == "GET":
                    assert cid in body and secrets[0] in body, body[:300]
                for token in (None, "wrong", ""):
                    status, body = http(s.web_port, path, method, token=token)
                    if pattern in OPEN:
                        assert status == 200, (method, path, token, status)
                    else:
                        assert status == 401, (method, path, token, status, body[:300])
                        assert "bearer token" in body if method == "GET" else body == ""
                    leaked = [x for x in [*every_id, *secrets] if x in body]
                    assert not leaked, (method, path, token, leaked)


def test_metrics_name_no_customer(secured: Secured) -> None:
    for s in secured.workers:
        status, text = http(s.web_port, "/metrics")
        assert status == 200 and "churnwatch_customers_tracked" in text
        assert "SEC-" not in text and "went missing" not in text


def test_a_look_up_forwarded_to_the_owning_worker_carries_the_token(
        secured: Secured) -> None:
    # Each worker owns some of the customers (so it answers the others' by
    # asking the owner) ...
    wait_for("both workers tracking customers", lambda: all(
        customers_tracked(s.web_port) > 0 for s in secured.workers), secured.logs)
    for s in secured.workers:
        for cid in secured.secrets:
            # ... and every look-up answers from either worker with the token,
            # forwarded ones too: Faust passes the Authorization header on and
            # the owner's gate lets it through.
            status, body = http(s.web_port, f"/customers/{cid}", token=TOKEN)
            assert status == 200 and json.loads(body)["customer_id"] == cid, (status, body)
            # Refused where it arrives, before anything is forwarded.
            assert http(s.web_port, f"/customers/{cid}")[0] == 401
            assert http(s.web_port, f"/customers/{cid}", token="wrong")[0] == 401
