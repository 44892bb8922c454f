"""Where messages enter: the input topics' fetches, the clock agent, the timers.

The input topics (purchases, contacts, complaints, feedback) are taken a
fetch at a time below Faust's streams (see
:mod:`stream_app.kafka.faust_internals`) and handed to the processor; the
clock topic has a plain Faust agent.  :func:`attach_agents` registers them,
the timers and the rebalance hook on an app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, cast

import orjson
from aiokafka import TopicPartition
from faust.exceptions import ConsumerNotStarted
from faust.streams import current_event
from faust.types import TP, AgentT, EventT, Message
from mode import BaseSignalT

from ..core.policy import Policy
from ..core.records import ChurnAlert, DeadLetter
from ..core.settings import Settings
from ..engine import metrics
from ..engine.processing import Incoming, Processor, Resumed
from . import clients
from .app import ChurnwatchApp
from .changelog import ChangelogWriter
from .faust_internals import BatchHandler, event_for, processing
from .monitor import LeanPrometheusMonitor
from .topics import Topics

log = logging.getLogger("churnwatch")

#: Give up reading back published alerts after this long (and say so).
READBACK_SECONDS = 30.0


@dataclass(frozen=True)
class Agents:
    """What :func:`attach_agents` registered."""

    processor: Processor
    #: The handler of the input topics' fetches.
    take_fetch: BatchHandler
    sweep_silence: AgentT[Any]
    send_ticks: Any


async def _offset(fut: Awaitable[Any]) -> int:
    return int((await fut).offset)


async def _resume(settings: Settings, app: ChurnwatchApp, topics: Topics,
                  partition: int, checkpoint: int) -> Resumed:
    """Where ``partition`` resumes: its committed input offsets, and the alert
    ids published since the alerts checkpoint (so none is published twice)."""
    alerts = TopicPartition(settings.topic_alerts, partition)
    inputs = [TopicPartition(t, partition) for t in topics.kind_by_topic]
    # No group id: a second member-less client of the worker's own group
    # upsets some brokers.  Faust has just sought every assigned partition to
    # its committed offset; that is where the input resumes.
    consumer = clients.aio_consumer(settings, enable_auto_commit=False, group_id=None)
    tuned = app.tuned_consumer
    ids: set[str] = set()
    position = checkpoint
    await consumer.start()
    try:
        earliest = await consumer.beginning_offsets(inputs)
        starts = {}
        for tp in inputs:
            offset = tuned.committed_offset(TP(tp.topic, tp.partition))
            starts[tp.topic] = offset if offset is not None else earliest[tp]
        consumer.assign([alerts])
        consumer.seek(alerts, checkpoint)
        deadline = time.monotonic() + READBACK_SECONDS
        while time.monotonic() < deadline:
            batch = await consumer.getmany(alerts, timeout_ms=500)
            for record in batch.get(alerts, []):
                try:
                    ids.add(orjson.loads(record.value)["alert_id"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
            position = await consumer.position(alerts)
            highwater = consumer.highwater(alerts)
            if highwater is not None and position >= highwater:
                return Resumed(ids, position, starts)
    finally:
        await consumer.stop()
    log.warning("could not read the alerts topic to its end; alerts raised again "
                "after a crash may be published twice", extra={"fields": {
                    "partition": partition, "from": checkpoint, "read_to": position}})
    return Resumed(ids, position, starts)


def attach_agents(app: ChurnwatchApp, settings: Settings, policy: Policy, topics: Topics,
                  customer_to_state: Any) -> Agents:
    """Build the processor over ``customer_to_state`` and register on ``app`` the
    input path, the clock agent, the tick timer and the rebalance hook."""

    async def _send_alert(alert: ChurnAlert, partition: int) -> Awaitable[int]:
        # The alert goes to the partition of the events that raised it, so each
        # input partition's alerts can be read back from one alerts partition.
        fut = await topics.churn_alerts.send(key=alert.customer_id, value=orjson.dumps(alert),
                                             partition=partition)
        log.info("alert sent", extra={"fields": {
            "alert_id": alert.alert_id, "customer_id": alert.customer_id, "event_ts": alert.ts,
            "risk_score": alert.risk_score, "severity": alert.severity, "route": alert.route,
            "signals": [s.code for s in alert.signals], "episode": alert.episode}})
        return _offset(fut)

    async def _send_dead_letter(key: bytes | None, letter: DeadLetter) -> Awaitable[Any]:
        return cast(Awaitable[Any], await topics.dead_letters.send(
            key=key, value=orjson.dumps(letter)))

    @cache
    def _siblings(topic: str, partition: int) -> list[TP]:
        """The same partition of the other input topics."""
        return [_tp(t, partition) for t in topics.kind_by_topic if t != topic]

    @cache
    def _tp(topic: str, partition: int) -> TP:
        return TP(topic, partition)

    def _backlog(topic: str, partition: int, offset: int) -> bool:
        """Whether the broker holds messages after ``offset`` (-1: any) in this partition.

        Read from the high-water mark of the consumer's last fetch.  Unknown
        (not fetched yet, e.g. just after a restart, or older than another
        input topic's newest fetch of the partition) counts as a backlog:
        whatever the partition holds could come before what the other topics
        delivered.
        """
        try:
            highwater = app.tuned_consumer.settled_highwater(
                _tp(topic, partition), _siblings(topic, partition))
        except ConsumerNotStarted:  # agent test contexts have no consumer
            return False
        return highwater is None or offset + 1 < highwater

    async def _flush_producer() -> None:
        await app.producer.flush()


    #: The latest event seen per partition: Faust picks the changelog partition
    #: of a table write from "the event being processed", so a flush outside an
    #: agent (at shutdown) runs as if processing this one.
    _anchor: dict[int, EventT[Any]] = {}

    @contextmanager
    def _in_partition(partition: int) -> Iterator[None]:
        now = current_event()
        event = _anchor.get(partition)
        if event is None or (now is not None and now.message.partition == partition):
            yield
            return
        with processing(event):
            yield

    def _acknowledge(topic: str, partition: int, first: int, last: int) -> None:
        tp = _tp(topic, partition)
        n = app.tuned_consumer.ack_range(tp, first, last)
        if n:
            sensor = app.monitor
            if isinstance(sensor, LeanPrometheusMonitor):
                sensor.on_messages_out(tp, n)

    processor = Processor(
        customer_to_state,
        policy,
        _send_alert,
        _send_dead_letter,
        kinds=topics.kind_by_topic,
        backlog=_backlog,
        resume=partial(_resume, settings, app, topics),
        seal=_flush_producer if settings.broker_profile == "local" else None,
        write_states=ChangelogWriter(customer_to_state),
        flush_seconds=settings.flush_seconds,
        in_partition=_in_partition,
        acknowledge=_acknowledge,
    )

    async def take_fetch(batch: Mapping[TP, list[Message]]) -> None:
        """Hand a fetch of the input topics to the processor, a partition at a time
        (all its topics together).

        Acks are the processor's: it acknowledges a message once its effects are
        written, so Faust never commits an offset that a crash could lose.
        """
        by_partition: dict[int, list[tuple[str, list[Incoming]]]] = {}
        for tp, messages in batch.items():
            by_partition.setdefault(tp.partition, []).append((tp.topic, [
                (m.offset, m.key, m.value, m.timestamp, None) for m in messages]))
            # Table reads and writes find their partition from "the event being
            # processed": this partition's.
            _anchor[tp.partition] = event_for(app, messages[-1])
        for partition, parts in by_partition.items():
            with _in_partition(partition):
                await processor.handle_fetch(partition, parts)

    app.take_batches(topics.inputs, take_fetch)
    app.before_stop.append(processor.flush_all)

    async def sweep_silence(stream: Any) -> None:
        """Each tick sweeps and flushes its partition, so silence is noticed live."""
        async for event in stream.events():
            if _positioned():
                await processor.tick(event.message.partition)

    def _positioned() -> bool:
        """Whether Faust has sought the input to its commits since the last rebalance
        (before that, a partition would resume from the wrong offsets)."""
        return app.tuned_consumer.positioned()

    async def send_ticks() -> None:
        """Tick every clock partition this worker owns (each worker its own)."""
        consumer = app.tuned_consumer
        for tp in consumer.assignment():
            if tp.topic == topics.clock_topic:
                await topics.clock.send(key=b"tick", value=b"", partition=tp.partition)
            elif tp.topic in topics.kind_by_topic:
                # Lag from the fetch high-water mark, which every broker reports
                # honestly (end offsets from ListOffsets are not, on some).
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue
                lag = processor.lag(tp.topic, tp.partition, highwater)
                if lag is not None:
                    metrics.LAG.labels(tp.topic, str(tp.partition)).set(lag)
                # What an operator alerts on: messages not yet committed, which a
                # restart would read again (the group's own record of progress).
                committed = consumer.committed_offset(tp)
                if committed is not None:
                    metrics.COMMIT_LAG.labels(tp.topic, str(tp.partition)).set(
                        max(0, highwater - committed))

    async def _on_rebalance(sender: Any, /, *args: Any, signal: BaseSignalT[Any],
                            **kwargs: Any) -> None:
        # Faust seeks every assigned partition back to its committed offset, so
        # whatever was in flight here is delivered again: forget it.
        await processor.revoke()

    app.on_partitions_revoked.connect(_on_rebalance)
    return Agents(
        processor=processor,
        take_fetch=take_fetch,
        sweep_silence=app.agent(topics.clock, name="sweep_silence")(sweep_silence),
        send_ticks=app.timer(interval=settings.tick_seconds, on_leader=False,
                             name="send_ticks")(send_ticks),
    )
