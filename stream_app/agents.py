"""Agents: thin loops that read a message, hand it to the processor, move on.

Importing this module registers the agents, the clock timer and the rebalance
hook on :data:`stream_app.app.app`.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from mode import BaseSignalT

from . import topics
from .app import app, policy, settings
from .processing import Processor
from .records import ChurnAlert, DeadLetter
from .tables import customer_to_state

log = logging.getLogger("churnwatch")


async def _send_alert(alert: ChurnAlert) -> None:
    # Wait for the broker's ack before the state records the alert as sent.
    fut = await topics.churn_alerts.send(key=alert.customer_id, value=alert)
    await fut
    log.info("alert sent", extra={"fields": {
        "alert_id": alert.alert_id, "customer_id": alert.customer_id, "event_ts": alert.ts,
        "risk_score": alert.risk_score, "severity": alert.severity, "route": alert.route,
        "signals": [s.code for s in alert.signals], "episode": alert.episode}})


async def _send_dead_letter(key: bytes | None, letter: DeadLetter) -> None:
    await topics.dead_letters.send(key=key, value=letter)


def _backlog(topic: str, partition: int, offset: int) -> bool:
    """Whether the broker holds messages after ``offset`` (-1: any) in this partition.

    Read from the high-water mark of the consumer's last fetch.  Unknown (not
    fetched yet) counts as a backlog for a partition not read from yet.
    """
    try:
        highwater = app.consumer.highwater(TP(topic, partition))
    except ConsumerNotStarted:  # agent test contexts have no consumer
        return False
    if highwater is None:
        return offset < 0
    return offset + 1 < highwater


processor = Processor(
    customer_to_state,
    policy,
    _send_alert,
    _send_dead_letter,
    kinds=topics.KIND_BY_TOPIC,
    backlog=_backlog,
)


async def _consume(stream: Any) -> None:
    async for event in stream.events():
        m = event.message
        await processor.handle(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)


@app.agent(topics.purchases, name="track_purchases")
async def track_purchases(stream: Any) -> None:
    await _consume(stream)


@app.agent(topics.contacts, name="track_contacts")
async def track_contacts(stream: Any) -> None:
    await _consume(stream)


@app.agent(topics.complaints, name="track_complaints")
async def track_complaints(stream: Any) -> None:
    await _consume(stream)


@app.agent(topics.feedback, name="apply_feedback")
async def apply_feedback(stream: Any) -> None:
    """Alert outcomes from the call centre or marketing: suppress or end episodes."""
    await _consume(stream)


@app.agent(topics.clock, name="sweep_silence")
async def sweep_silence(stream: Any) -> None:
    """Each tick sweeps its partition for customers whose silence is now due."""
    async for event in stream.events():
        await processor.tick(event.message.partition)


@app.timer(interval=settings.tick_seconds, on_leader=False)  # type: ignore[untyped-decorator]
async def send_ticks() -> None:
    """Tick every clock partition this worker owns (each worker its own)."""
    for tp in app.consumer.assignment():
        if tp.topic == topics.CLOCK_TOPIC:
            await topics.clock.send(key=b"tick", value=b"", partition=tp.partition)


@app.on_rebalance_complete.connect
def _on_rebalance(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
    processor.stale = True
