"""The consumer loop: read an alert, deliver it, then commit past it.

One alert at a time, so a partition's alerts reach the endpoint in order
and the committed offset is always just past the last alert finished with
(delivered, or dead-lettered because it could not be).  A crash therefore
redelivers at most the alert that was in flight; a stop (SIGTERM, Ctrl-C)
lets that delivery finish, commits, and exits, so a restart redelivers
nothing.  A second signal stops at once, like a crash.

An alert that cannot be delivered goes to the dead-letters topic in the
worker's :class:`~stream_app.core.records.DeadLetter` format (``topic`` the
alerts topic, the alert whole in ``value``, the reason and a
``reason_code``: ``delivery_refused`` or ``delivery_failed``), and the sink
moves on.  If even the dead letter cannot be written, the sink exits
non-zero without committing, so the alert is not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import signal
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from ...engine.processing import dead_letter
from ...kafka import clients
from ...kafka.admin import WORKER_TIMEOUT, unreachable
from . import metrics, payloads
from .config import SinkSettings
from .delivery import Outcome, deliver

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import ConsumerRecord

    from ...core.settings import Settings

log = logging.getLogger("churnwatch.sink")

REFUSED, FAILED = "delivery_refused", "delivery_failed"


def shown_url(url: str) -> str:
    """The endpoint as logs and dead letters name it: scheme and host only.

    Webhook URLs often carry their secret in the path (Slack's do), and a
    log or a dead letter is read by more people than the configuration.
    """
    u = urlsplit(url)
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.hostname}{port}" + ("/..." if u.path not in ("", "/") else "")


class Stop(RuntimeError):
    """The sink cannot go on; the message says why and what to do."""


@dataclasses.dataclass(slots=True)
class Tally:
    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    since_report: int = 0

    def line(self) -> dict[str, int]:
        return {"delivered": self.delivered, "dead_lettered": self.dead_lettered,
                "retries": self.retries}


class Sink:
    def __init__(self, settings: Settings, sink: SinkSettings) -> None:
        self.settings, self.sink = settings, sink
        self.stop = asyncio.Event()
        self.tally = Tally()
        self.rng = random.Random()
        self.where = shown_url(sink.sink_url)

    # -- life cycle ---------------------------------------------------------

    def _consumer(self) -> AIOKafkaConsumer:
        s, k = self.settings, self.sink
        # A delivery may take every attempt's time-out and back-off; the group
        # must not count the member as gone meanwhile.
        worst = k.sink_max_attempts * (k.sink_timeout_seconds + k.sink_max_delay_seconds)
        opts: dict[str, Any] = dict(
            group_id=k.group(s.app_id), client_id=f"{s.app_id}-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest" if k.sink_from_beginning else "latest",
            max_poll_interval_ms=int(max(300.0, worst + 60) * 1000),
        )
        if s.broker_profile == "local":  # as the worker's local profile
            opts.update(session_timeout_ms=6000, heartbeat_interval_ms=1000,
                        rebalance_timeout_ms=6000)
        return clients.aio_consumer(s, s.topic_alerts, **opts)

    async def _start(self, client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
        deadline = time.monotonic() + WORKER_TIMEOUT
        while True:
            try:
                await client.start()
                return
            except KafkaConnectionError:
                if time.monotonic() > deadline or self.stop.is_set():
                    raise Stop(str(unreachable(self.settings, WORKER_TIMEOUT))) from None
                await asyncio.sleep(1.0)

    async def run(self) -> int:
        s, k = self.settings, self.sink
        consumer = self._consumer()
        producer = clients.aio_producer(s, acks="all", client_id=f"{s.app_id}-sink")
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4))
        started = []
        try:
            for client in (producer, consumer):
                await self._start(client)
                started.append(client)
            if s.topic_alerts not in await consumer.topics():
                log.warning("no topic %s on the broker yet; waiting for the worker's first "
                            "alert", s.topic_alerts)
            log.info("sink started: delivering %s to %s as %s", s.topic_alerts, self.where,
                     k.sink_format, extra={"fields": {
                         "group": k.group(s.app_id), "format": k.sink_format,
                         "endpoint": self.where, "signed": bool(k.sink_secret),
                         "from_beginning": k.sink_from_beginning,
                         "max_attempts": k.sink_max_attempts}})
            await self._loop(consumer, producer, session)
            return 0
        except Stop as exc:
            log.error("sink stopped: %s", exc)
            return 1
        finally:
            await session.close()
            for client in reversed(started):
                with contextlib.suppress(KafkaError):
                    await client.stop()
            log.info("sink stopped: %d delivered, %d dead-lettered, %d retries",
                     *self.tally.line().values(), extra={"fields": self.tally.line()})

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer,
                    session: aiohttp.ClientSession) -> None:
        next_report = time.monotonic() + self.sink.sink_progress_seconds
        while not self.stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=50)
            for tp, messages in batch.items():
                for m in messages:
                    if self.stop.is_set():
                        return
                    if tp not in consumer.assignment():  # revoked: its new owner has it
                        break
                    await self._handle(consumer, producer, session, tp, m)
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + self.sink.sink_progress_seconds
                if self.tally.since_report:
                    self.tally.since_report = 0
                    log.info("sink progress: %d delivered, %d dead-lettered, %d retries",
                             *self.tally.line().values(), extra={"fields": self.tally.line()})

    # -- one alert ----------------------------------------------------------

    async def _sleep(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
            return True
        except TimeoutError:
            return False

    async def _handle(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer,
                      session: aiohttp.ClientSession, tp: TopicPartition,
                      m: ConsumerRecord[bytes, bytes]) -> None:
        fmt = self.sink.sink_format
        try:
            alert = payloads.parse(m.value)
        except payloads.NotAnAlert as exc:
            await self._dead_letter(producer, m, f"not a churn alert ({exc}); not delivered",
                                    exc.code)
            metrics.ALERTS.labels(fmt, "unusable").inc()
            await self._commit(consumer, tp, m.offset)
            return
        assert m.value is not None
        first = time.monotonic()
        outcome = await deliver(session, self.sink, alert["alert_id"],
                                payloads.body(m.value, alert, self.sink),
                                self.stop.is_set, self._sleep, self.rng)
        self.tally.retries += outcome.attempts - 1
        if outcome.verdict == "stopped":  # left for the next run, from the committed offset
            log.info("stopping before alert %s was delivered; the next run delivers it",
                     alert["alert_id"], extra={"fields": self._fields(m, alert, outcome)})
            return
        if outcome.delivered:
            self.tally.delivered += 1
            log.debug("alert delivered", extra={"fields": self._fields(m, alert, outcome)})
        else:
            await self._dead_letter(producer, m, self._reason(alert, outcome, first),
                                    REFUSED if outcome.verdict == "refused" else FAILED)
            log.warning("alert %s dead-lettered: %s", alert["alert_id"], outcome.detail,
                        extra={"fields": self._fields(m, alert, outcome)})
        metrics.ALERTS.labels(fmt, outcome.verdict).inc()
        self.tally.since_report += 1
        await self._commit(consumer, tp, m.offset)

    def _fields(self, m: ConsumerRecord[bytes, bytes], alert: dict[str, Any],
                outcome: Outcome) -> dict[str, Any]:
        return {"alert_id": alert["alert_id"], "customer_id": alert["customer_id"],
                "partition": m.partition, "offset": m.offset, "verdict": outcome.verdict,
                "attempts": outcome.attempts, "status": outcome.status}

    def _reason(self, alert: dict[str, Any], outcome: Outcome, first: float) -> str:
        if outcome.verdict == "refused":
            return (f"webhook {self.where} refused alert {alert['alert_id']} "
                    f"({self.sink.sink_format} format): {outcome.detail}; not retried (a "
                    "4xx other than 408/429 means the request itself is wrong: check the "
                    "format, the event definition and the credentials)")
        return (f"webhook {self.where} did not take alert {alert['alert_id']} "
                f"({self.sink.sink_format} format) in {outcome.attempts} attempts over "
                f"{time.monotonic() - first:.0f} s; last: {outcome.detail}")

    async def _dead_letter(self, producer: AIOKafkaProducer, m: ConsumerRecord[bytes, bytes],
                           reason: str, code: str) -> None:
        letter = dataclasses.replace(
            dead_letter(m.topic, m.partition, m.offset, m.key, m.value, reason), reason_code=code)
        try:
            await producer.send_and_wait(self.settings.topic_dead_letters, key=m.key,
                                         value=orjson.dumps(letter))
        except KafkaError as exc:
            raise Stop(f"could not write the dead letter of {m.topic}/{m.partition}@{m.offset} "
                       f"to {self.settings.topic_dead_letters} ({exc}); not committed, so "
                       "the next run tries the alert again") from exc
        self.tally.dead_lettered += 1

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        try:
            await consumer.commit({tp: offset + 1})
            metrics.COMMITS.labels(self.sink.sink_format).inc()
        except KafkaError as exc:
            # A rebalance moved the partition: its new owner starts from the
            # last commit and delivers this alert again (at least once).
            log.warning("could not commit %s@%d (%s); the partition's next owner delivers "
                        "it again", tp, offset, type(exc).__name__)


def install_signals(sink: Sink, main: asyncio.Task[int]) -> None:
    """First SIGTERM/SIGINT: finish the delivery under way, commit, exit.
    A second one: stop at once (what was not committed is delivered again)."""
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if sink.stop.is_set():
            log.warning("%s again: stopping at once", name)
            main.cancel()
            return
        log.info("%s: stopping after the delivery under way (again to stop at once)", name)
        sink.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)


async def serve(settings: Settings, sink_settings: SinkSettings) -> int:
    sink = Sink(settings, sink_settings)
    main = asyncio.current_task()
    assert main is not None
    install_signals(sink, main)
    return await sink.run()
