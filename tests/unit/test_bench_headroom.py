"""The throughput benchmark's ``--headroom`` switches, in a child process as a worker gets them.

A worker started with :func:`benchmarks.throughput.headroom_env` must lose
exactly the part it names and keep the rest: otherwise the headroom figures
measure something else than they say.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.throughput import HEADROOM_LEVELS, headroom_env

#: A small stream through one processor; prints what it did as JSON.
RUN = r"""
import asyncio, json
import orjson
from stream_app.core.policy import load_policy
from stream_app.core.settings import Settings
from stream_app.core.state import CustomerState
from stream_app.engine.processing import Processor
from stream_app.offline.synthetic import generate

kinds = Settings().kind_by_topic()
topic_of = {k: t for t, k in kinds.items()}
pop = generate(customers=60, days=400, seed=3)
alerts, table = [], {}

async def send_alert(alert, partition):
    alerts.append(alert)
    async def sent(): return len(alerts)  # the alert's offset on its topic
    return sent()

async def send_dead(key, letter):
    raise AssertionError(f"dead-lettered: {letter}")

async def main():
    proc = Processor(table, load_policy(None), send_alert, send_dead, kinds=kinds,
                     wall=lambda: 1.9e9)
    offsets = {}
    for e in pop.events:
        t = topic_of[e.topic]
        o = offsets[t] = offsets.get(t, -1) + 1
        await proc.handle_many(t, 0, [(o, e.customer_id.encode(), orjson.dumps(e.value),
                                       None, None)])
    await proc.flush(0)
    states = [CustomerState.from_bytes(v) for k, v in table.items() if not k.startswith(b"\x00")]
    print(json.dumps({"events": len(pop.events), "applied": sum(proc.stats.events.values()),
                      "alerts": len(alerts), "states": len(states),
                      "purchases": sum(s.purchases for s in states),
                      "due": sum(s.due_ts is not None for s in states)}))

asyncio.run(main())
"""


def run(env: dict[str, str] | None) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True,
                         check=True, timeout=120)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def full() -> dict[str, int]:
    got = run(None)
    assert got["alerts"] > 0 and got["purchases"] > 0 and got["due"] > 0, got
    return got


@pytest.mark.parametrize("off", [level[0] for level in HEADROOM_LEVELS])
def test_a_headroom_worker_loses_what_it_names_and_keeps_the_rest(
        off: str, full: dict[str, int]) -> None:
    got = run({**os.environ, **headroom_env(off)})
    # Every event is still applied, and every customer's state written.
    assert got["applied"] == full["applied"] == got["events"]
    assert got["states"] == full["states"]
    # Nothing is assessed: no alert, no due time.
    assert got["alerts"] == 0 and got["due"] == 0
    # The fold goes on with the assessment off, and stops with the core off.
    assert got["purchases"] == (full["purchases"] if off == "assessment" else 0)


def test_an_unknown_part_stops_the_worker_naming_it() -> None:
    env = {**os.environ, **headroom_env("assessment"), "HEADROOM_OFF": "signals"}
    out = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert "HEADROOM_OFF must be 'assessment' or 'core', not 'signals'" in out.stderr
