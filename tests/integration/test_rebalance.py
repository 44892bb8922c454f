"""A second worker joining mid-stream: partitions move, nothing is lost or applied twice.

One worker takes the first half of a stream alone; a second joins the group
while more of the stream is put on the broker, and takes over half of the
partitions (their states from the changelog, their input from the committed
offsets); the rest of the stream comes once it is in.  Then every
customer's state, asked of the workers' look-up API, holds each of the
customer's purchases exactly once, and the alerts are exactly those of one
worker that read the whole stream alone, each once.

Mid-stream whatever the machine's speed: each part reaches the broker only
once the part before it is committed, and the last once the second worker
has its partitions, so both apply events.

The parts that go on the broker while workers read are put there in the
merge's own order (see :func:`.conftest.produce_in_merge_order`): put there all at
once, one topic's batches can reach the broker days of event time ahead of
another's, and a worker reading live then rightly refuses the other topic's
events as too late, which a worker reading the whole stream afterwards
applies.
"""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stream_app.core.settings import Settings
from stream_app.kafka.admin import create_topics
from stream_app.kafka.broker import LocalBroker, free_port
from stream_app.offline.harness import committed_total, running_worker
from stream_app.offline.synthetic import Population, generate

from .conftest import produce_in_merge_order, produce_population
from .test_kill import alerts_on
from .test_shutdown import applied_events, wait_until

pytestmark = pytest.mark.integration


def http_json(port: int, path: str) -> tuple[int, Any]:
    """Status and body; status 0 while the server is not up yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except OSError:
        return 0, None


def parts(pop: Population, *fractions: float) -> list[Population]:
    """The stream cut at the first lull of over an hour past each fraction of it.

    A worker that has applied a part runs its clock on at wall-clock speed
    while it waits for the next, and sweeps customers due in that time: the
    lull keeps every such sweep before the next part's first event, where a
    worker reading the whole stream at once sweeps them too.
    """
    events = sorted(pop.events, key=lambda e: e.ts)
    cuts = [next(i + 1 for i in range(int(len(events) * f), len(events) - 1)
                 if events[i + 1].ts - events[i].ts > 3600) for f in fractions]
    bounds = [0, *cuts, len(events)]
    return [replace(pop, events=events[lo:hi]) for lo, hi in itertools.pairwise(bounds)]


def test_a_worker_joining_mid_stream_loses_nothing_and_applies_nothing_twice(
        tmp_path: Path) -> None:
    pop = generate(customers=200, days=540, seed=11)
    first, middle, last = parts(pop, 0.5, 0.7)
    last_event = max(e.value["ts"] for e in pop.events)
    purchases = Counter(e.customer_id for e in pop.events if e.topic == "purchases")
    with LocalBroker(log_path=tmp_path / "broker.log") as broker:
        def settings(name: str, app_id: str, alerts: str) -> Settings:
            return Settings().with_overrides(
                broker_url=broker.url, broker_profile="local", store="memory://",
                data_dir=str(tmp_path / name), web_port=free_port(), tick_seconds=1.0,
                app_id=app_id, topic_alerts=alerts)

        a = settings("a", "churnwatch-pair", "alerts-pair")
        b = settings("b", "churnwatch-pair", "alerts-pair")
        alone = settings("alone", "churnwatch-alone", "alerts-alone")
        for s in (a, alone):
            create_topics(s)
        first_ends = produce_population(a, first)
        total_first = sum(first_ends.values())

        def alert_ids(s: Settings) -> list[str]:
            # Alerts raised by the idle clock after the last event depend on
            # how long the workers idled; only the events' own time is compared.
            return [str(x["alert_id"]) for x in alerts_on(s) if str(x["ts"]) <= last_event]

        with running_worker(a, tmp_path / "a.log"):
            wait_until(lambda: committed_total(a, first_ends) == total_first, timeout=120)
            with running_worker(b, tmp_path / "b.log"):
                # While the second worker joins: the partitions move with
                # this part in flight, or already done, as the timing falls.
                ends = {**first_ends, **produce_in_merge_order(a, middle)}
                wait_until(lambda: http_json(b.web_port, "/ready")[0] == 200, timeout=60)
                wait_until(lambda: committed_total(a, ends) == sum(ends.values()), timeout=120)
                applied_before = applied_events(b)
                ends.update(produce_in_merge_order(a, last))
                total = sum(ends.values())
                wait_until(lambda: committed_total(a, ends) == total, timeout=120)
                # The second worker has partitions of its own, and applied their events.
                assert applied_events(b) > applied_before
                states = {cid: http_json(port, f"/customers/{cid}")
                          for cid, port in zip(purchases, [a.web_port, b.web_port] * len(pop.plans),
                                               strict=False)}
        for cid, (status, body) in states.items():
            assert status == 200, (cid, body)
            assert body["activity"]["purchases"] == purchases[cid], cid

        with running_worker(alone, tmp_path / "alone.log"):
            wait_until(lambda: committed_total(alone, ends) == total, timeout=120)
        expected = alert_ids(alone)
        assert len(expected) > 20 and len(set(expected)) == len(expected)
        got = alert_ids(a)
        assert len(got) == len(set(got)), "an alert was published twice"
        missing, extra = set(expected) - set(got), set(got) - set(expected)
        assert not missing and not extra, (
            f"alerts differ from the single worker's: {len(missing)} missing, "
            f"{len(extra)} extra")
