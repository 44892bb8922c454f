"""The input path: a fetch of Faust messages handed to the processor, with
a worker built on the memory store and no broker.

Sends to the output topics need a running producer, so the worker's
processor gets collectors for its two send functions; the integration tests
cover the real topics and the fetch loop.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from faust.types import TP, Message
from prometheus_client import CollectorRegistry

from stream_app.core.settings import Settings
from stream_app.core.state import CustomerState
from stream_app.engine import processing
from stream_app.kafka.worker import Worker, build_worker

from ..conftest import at
from .fakes import Outputs


@dataclass
class Built:
    worker: Worker
    outputs: Outputs

    async def fetched(self, topic: str, key: bytes, *values: bytes) -> None:
        """One fetch of ``values`` from partition 0 of ``topic``."""
        tp = TP(topic, 0)
        await self.worker.agents.take_fetch({tp: [
            Message(topic, 0, next(_offsets), 0.0, 0, {}, key, value, None, len(key),
                    len(value), tp)
            for value in values]})
        await self.worker.processor.settled()  # the flush's writing goes on in the background

    def state(self, key: bytes) -> CustomerState:
        return CustomerState.from_bytes(self.worker.table[key])


@pytest.fixture
async def built(tmp_path: Path) -> Built:
    settings = Settings().with_overrides(store="memory://", broker_profile="local",
                                         data_dir=str(tmp_path), app_id="agents-test")
    # Its own registry: each test builds a worker of its own, in its own loop.
    worker = build_worker(settings, registry=CollectorRegistry())
    outputs = Outputs()
    processor = worker.processor
    processor.send_alert = outputs.send_alert
    processor.send_dead_letter = outputs.send_dead
    processor.resume = processing.nothing_published
    # No producer in Faust's test mode: no seal, and states go in through
    # the table (the bulk changelog writer has tests of its own).
    processor.seal = None

    async def assign(partition: int, items: Sequence[tuple[bytes, bytes]]) -> Awaitable[None]:
        for key, raw in items:
            worker.table[key] = raw
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        written.set_result(None)
        return written

    processor.write_states = assign
    # Flush after every event, so that the table is written within the fetch.
    processor.flush_seconds = 0.0
    return Built(worker, outputs)


_offsets = itertools.count()


def purchase(cid: str, n: int, day: int) -> bytes:
    return orjson.dumps({"event_id": f"{cid}-p{n}", "customer_id": cid, "ts": at(day),
                         "amount": 50})


def complaint(cid: str, n: int, day: int, severity: int,
              compensation: float | None = None) -> bytes:
    return orjson.dumps({"event_id": f"{cid}-k{n}", "customer_id": cid, "ts": at(day),
                         "category": "billing", "severity": severity,
                         "compensation_requested": compensation})


async def test_complaints_agent_updates_the_table_alerts_and_escalates(built: Built) -> None:
    # A customer who bought every month for a year, then went quiet...
    await built.fetched("purchases", b"agent-c1",
                  *(purchase("agent-c1", n, day) for n, day in enumerate(range(0, 361, 30))))
    assert built.outputs.alerts == []
    # ...and two months on complains heavily: three complaints in five days,
    # then a demand for compensation, then a mild word.
    await built.fetched("complaints", b"agent-c1", *(
        complaint("agent-c1", n, day, severity, compensation)
        for n, (day, severity, compensation) in enumerate(
            ((425, 4, None), (427, 4, None), (429, 4, None), (435, 4, 800.0), (436, 2, None)))))
    state = built.state(b"agent-c1")
    assert state.purchases == 13 and len(state.complaints) == 5
    first, second = built.outputs.alerts  # the mild last complaint adds too little to re-alert
    # COMPLAINTS opens an episode on its own (acting on the complaint is the
    # playbook), as soon as the second complaint trips it.
    assert [s.code for s in first.signals] == ["COMPLAINTS"]
    assert "COMPLAINTS" in built.worker.processor.policy.alerting.opens_alone
    assert first.signals[0].evidence == ["agent-c1-k0", "agent-c1-k1"]
    # The demand for compensation joins as a second reason: the alert escalates.
    assert {s.code for s in second.signals} == {"COMPLAINTS", "COMPENSATION_ESCALATION"}
    assert second.episode == first.episode == 1
    assert second.risk_score > first.risk_score
    assert second.alert_id != first.alert_id
    assert state.alerting.sent == 2 and state.alerting.open


async def test_malformed_input_is_dead_lettered_and_the_agent_keeps_going(
        built: Built) -> None:
    await built.fetched("purchases", b"agent-c2", b"{broken", orjson.dumps(
        {"event_id": "agent-p1", "customer_id": "agent-c2", "ts": at(1), "amount": 5}))
    assert len(built.outputs.dead) == 1
    assert "not valid UTF-8 JSON" in built.outputs.dead[0].reason
    assert built.state(b"agent-c2").purchases == 1


async def test_a_fetch_merges_its_topics_of_a_partition_before_releasing(built: Built) -> None:
    # One fetch holds a purchase and, from another topic of the same partition,
    # a complaint ten days older.  Released topic by topic, the purchase would
    # move the clock past the lateness allowance first and the complaint would
    # be refused as too late; merged, both apply, in event-time order.
    def message(topic: str, value: bytes) -> Message:
        key = b"agent-c3"
        return Message(topic, 0, next(_offsets), 0.0, 0, {}, key, value, None, len(key),
                       len(value), TP(topic, 0))

    await built.worker.agents.take_fetch({
        TP("purchases", 0): [message("purchases", purchase("agent-c3", 0, 30))],
        TP("complaints", 0): [message("complaints", complaint("agent-c3", 0, 20, 2))],
    })
    await built.worker.processor.settled()
    assert built.outputs.dead == []
    state = built.state(b"agent-c3")
    assert state.purchases == 1 and len(state.complaints) == 1
