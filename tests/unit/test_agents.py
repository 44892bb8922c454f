"""The input path: a fetch of Faust messages handed to the processor, with
the app's memory store and no broker.

Sends to the output topics need a running producer, so the processor's two
send functions are swapped for collectors; the integration tests cover the
real topics and the fetch loop.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from faust.types import TP, Message

from stream_app.core.state import CustomerState
from stream_app.engine import processing
from stream_app.kafka.agents import processor, take_fetch
from stream_app.kafka.tables import customer_to_state

from ..conftest import at
from .fakes import Outputs


@pytest.fixture
async def sent(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, list[Any]]]:
    outputs = Outputs()
    monkeypatch.setattr(processor, "send_alert", outputs.send_alert)
    monkeypatch.setattr(processor, "send_dead_letter", outputs.send_dead)
    monkeypatch.setattr(processor, "resume", processing.nothing_published)
    # No producer in Faust's test mode: no seal, and states go in through
    # the table (the bulk changelog writer has tests of its own).
    monkeypatch.setattr(processor, "seal", None)
    monkeypatch.setattr(processor, "write_states", processor._assign_states)
    # Flush after every event, so that the table is written within the fetch.
    monkeypatch.setattr(processor, "flush_seconds", 0.0)
    # Each test tells its own story in event time: no clock restored from
    # the customers or the checkpoints an earlier test left in the table.
    for key in [k for k in customer_to_state if not processing.is_customer_key(k)]:
        del customer_to_state.data[key]  # the store: no changelog in test mode
    processor.reset()
    processor.stale = False
    yield {"alerts": outputs.alerts, "dead": outputs.dead}


_offsets = itertools.count()


async def fetched(topic: str, key: bytes, *values: bytes) -> None:
    """One fetch of ``values`` from partition 0 of ``topic``."""
    tp = TP(topic, 0)
    await take_fetch({tp: [
        Message(topic, 0, next(_offsets), 0.0, 0, {}, key, value, None, len(key), len(value), tp)
        for value in values]})
    await processor.settled()  # the flush's writing goes on in the background


def purchase(cid: str, n: int, day: int) -> bytes:
    return orjson.dumps({"event_id": f"{cid}-p{n}", "customer_id": cid, "ts": at(day),
                         "amount": 50})


def complaint(cid: str, n: int, day: int, severity: int,
              compensation: float | None = None) -> bytes:
    return orjson.dumps({"event_id": f"{cid}-k{n}", "customer_id": cid, "ts": at(day),
                         "category": "billing", "severity": severity,
                         "compensation_requested": compensation})


async def test_complaints_agent_updates_the_table_alerts_and_escalates(
        sent: dict[str, list[Any]]) -> None:
    # A customer who bought every month for a year, then went quiet...
    await fetched("purchases", b"agent-c1",
                  *(purchase("agent-c1", n, day) for n, day in enumerate(range(0, 361, 30))))
    assert sent["alerts"] == []
    # ...and two months on complains heavily: three complaints in five days,
    # then a demand for compensation, then a mild word.
    await fetched("complaints", b"agent-c1", *(
        complaint("agent-c1", n, day, severity, compensation)
        for n, (day, severity, compensation) in enumerate(
            ((425, 4, None), (427, 4, None), (429, 4, None), (435, 4, 800.0), (436, 2, None)))))
    state = CustomerState.from_bytes(customer_to_state[b"agent-c1"])
    assert state.purchases == 13 and len(state.complaints) == 5
    first, second = sent["alerts"]  # the mild last complaint adds too little to re-alert
    # COMPLAINTS opens an episode on its own (acting on the complaint is the
    # playbook), as soon as the second complaint trips it.
    assert [s.code for s in first.signals] == ["COMPLAINTS"]
    assert "COMPLAINTS" in processor.policy.alerting.opens_alone
    assert first.signals[0].evidence == ["agent-c1-k0", "agent-c1-k1"]
    # The demand for compensation joins as a second reason: the alert escalates.
    assert {s.code for s in second.signals} == {"COMPLAINTS", "COMPENSATION_ESCALATION"}
    assert second.episode == first.episode == 1
    assert second.risk_score > first.risk_score
    assert second.alert_id != first.alert_id
    assert state.alerting.sent == 2 and state.alerting.open


async def test_malformed_input_is_dead_lettered_and_the_agent_keeps_going(
        sent: dict[str, list[Any]]) -> None:
    await fetched("purchases", b"agent-c2", b"{broken", orjson.dumps(
        {"event_id": "agent-p1", "customer_id": "agent-c2", "ts": at(1), "amount": 5}))
    assert len(sent["dead"]) == 1
    assert "not valid UTF-8 JSON" in sent["dead"][0].reason
    assert CustomerState.from_bytes(customer_to_state[b"agent-c2"]).purchases == 1
