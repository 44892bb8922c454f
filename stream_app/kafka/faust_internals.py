"""Every use of Faust's and aiokafka's private API, in one module.

The worker leans on a handful of things neither library offers publicly;
each is reached from here and nowhere else (ruff's SLF rule flags a private
member reached on another object; those reached here are marked ``noqa:
SLF001`` with what they are), and covered by
``tests/unit/test_faust_internals.py``, so a Faust or aiokafka upgrade that
moves one of them touches this file and fails there, loudly, instead of
somewhere in a fetch loop.  What is used:

* Faust's app: ``_new_transport`` (overridden: the tuned transport).
* Faust's aiokafka consumer thread: ``_create_worker_consumer`` (wrapped),
  ``_ensure_consumer``; the consumer's ``_thread`` and
  ``_new_consumer_thread`` (overridden).
* Faust's consumer: ``_drain_messages`` (restated, with the batched
  topics), ``perform_seek`` (wrapped), ``_committed_offset``,
  ``_read_offset``, ``_add_gap``, ``_commit_every``, ``_n_acked``; mode's
  ``Service._stopped``, as Faust's loop reads it.
* aiokafka's consumer ``_fetch_max_wait_ms``, its batch builder's ``_build``.
* Faust's producer ``_ensure_producer`` (its aiokafka producer).
* ``faust.streams._current_event`` and a hand-built ``Event``: "the event
  being processed", which Faust's table writes and RocksDB store read.
* Faust's Prometheus monitor ``_metrics``.

What the tuned consumer changes:

* Faust's worker consumer hard-codes ``fetch_max_wait_ms``: a fetch may be
  held by the broker that long even when data is waiting.  The consumer is
  built as Faust builds it and then gets ``CHURNWATCH_FETCH_MAX_WAIT_MS``.
* Faust hands every message to the agents one by one: the conductor puts it
  on each subscriber's queue, a stream iterates it, sensors time it, and the
  fetch loop runs a two-task ``wait_first`` per message, machinery that caps
  an agent that does nothing well below what the processor can take.  The
  app may instead name *batched topics* and a handler: their messages go to
  the handler a fetch at a time, grouped by partition, and everything else
  (consumer group, commits of acknowledged offsets, tables and their
  recovery, other agents) stays Faust's.

A batch is only handed over once Faust has sought every assigned partition
to its committed offset for the current consumer generation: until then the
consumer may deliver from wherever the client library started, and Faust is
about to seek back.  Such messages are dropped and read again: the fetch loop
seeks back to the first one dropped once the consumer is positioned.  A
fetch is handed over whole or dropped whole: one that a seek overlapped
(the loop awaits Faust's own path for the other topics' messages, and a seek
may run meanwhile) is read again from where it began.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol, runtime_checkable

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.events import Event
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.streams import _current_event
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, AppT, EventT, Message, ProducerT, TransportT

#: Takes one fetch's messages of the batched topics, in offset order per partition.
BatchHandler = Callable[[Mapping[TP, list[Message]]], Awaitable[None]]


@runtime_checkable
class FetchSensor(Protocol):
    """A sensor that can count one fetch of one partition in one call."""

    def on_messages_in(self, tp: TP, messages: Sequence[Message]) -> None: ...


class TunedApp(faust.App):
    """A Faust app whose consumer is :class:`TunedConsumer` (see the module doc)."""

    batch_handler: BatchHandler | None = None
    batched_topics: frozenset[str] = frozenset()
    #: The worker consumer's ``fetch_max_wait_ms`` (None: Faust's).
    fetch_max_wait_ms: int | None = None

    def _new_transport(self) -> TransportT:
        # Faust's own builds the transport its broker URL names.
        return TunedTransport(self.conf.broker_consumer, self)

    @property
    def tuned_consumer(self) -> TunedConsumer:
        consumer = self.consumer
        assert isinstance(consumer, TunedConsumer)
        return consumer


class TunedConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer: AIOKafkaConsumer = super()._create_worker_consumer(transport)
        app = self.app
        if isinstance(app, TunedApp) and app.fetch_max_wait_ms is not None:
            # aiokafka keeps the constructor argument here, read at each fetch.
            consumer._fetch_max_wait_ms = app.fetch_max_wait_ms  # noqa: SLF001 aiokafka's fetch setting
        return consumer

    def client(self) -> AIOKafkaConsumer:
        """The aiokafka consumer; ConsumerNotStarted before the thread started it."""
        return self._ensure_consumer()


class TunedConsumer(driver.Consumer):
    #: The consumer generation whose post-assignment seek has completed.
    positioned_generation: int | None = None
    #: Whether Faust's seek to the committed offsets is running.
    seeking: bool = False
    #: Faust's seeks begun so far (a fetch that spans one is not handed over).
    seeks: int = 0
    #: Per partition, the first offset of the batched topics dropped before
    #: the consumer was positioned, and the generation it was dropped in.
    rewind: dict[TP, int] | None = None
    rewind_generation: int | None = None

    _thread: TunedConsumerThread

    def _new_consumer_thread(self) -> TunedConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def tuned_app(self) -> TunedApp:
        app = self.app
        assert isinstance(app, TunedApp)
        return app

    def committed_offset(self, tp: TP) -> int | None:
        """The offset Faust last committed (or found committed) for ``tp``; None: none."""
        # A defaultdict: .get() reads without adding the partition.
        return self._committed_offset.get(tp)

    def client(self) -> AIOKafkaConsumer:
        """The aiokafka consumer; ConsumerNotStarted before the consumer started."""
        return self._thread.client()

    def settled_highwater(self, tp: TP, siblings: list[TP]) -> int | None:
        """The partition's fetch high-water mark, or None while it is unknown or
        older than the newest fetch of ``siblings`` (the other input topics'
        same partition).

        aiokafka does not fetch a partition while records of it wait in its
        buffer, so its mark can date from before a sibling's newest fetch: a
        topic that looks caught up by it may not be, and a sibling's event
        released on its word could overtake what has reached the broker since.
        Partitions with nothing buffered are fetched together, so in steady
        operation the marks are equally fresh and nothing waits.
        """
        consumer = self.client()
        try:
            polled = consumer.last_poll_timestamp(tp)
            highwater: int | None = consumer.highwater(tp)
            newest = max((consumer.last_poll_timestamp(s) or 0 for s in siblings), default=0)
        except AssertionError:  # not assigned (a rebalance is under way)
            return None
        if polled is None or polled < newest:
            return None
        return highwater

    async def perform_seek(self) -> None:
        generation = self.app.consumer_generation_id
        self.seeking = True
        self.seeks += 1
        try:
            await self._seek_to_commits()
        finally:
            self.seeking = False
        self.positioned_generation = generation

    async def _seek_to_commits(self) -> None:
        await super().perform_seek()
        # Kafka's seek to the committed offsets leaves a partition without a
        # commit where it is, and what was fetched there before now was
        # dropped (see _drain_messages): read such partitions from the start.
        batched = self.tuned_app.batched_topics
        fresh = [tp for tp in self.assignment()
                 if tp.topic in batched and self.committed_offset(tp) is None]
        if fresh:
            starts = await self.earliest_offsets(*fresh)
            for tp in fresh:
                await self.seek(tp, starts[tp])

    def positioned(self) -> bool:
        """Whether every assigned partition reads on from its committed offset."""
        return (not self.seeking
                and self.positioned_generation == self.app.consumer_generation_id)

    def note_dropped(self, tp: TP, offset: int) -> None:
        """Remember a batched message dropped before the consumer was positioned."""
        generation = self.app.consumer_generation_id
        if self.rewind is None or generation != self.rewind_generation:
            self.rewind = {}
            self.rewind_generation = generation
        if offset < self.rewind.get(tp, offset + 1):
            self.rewind[tp] = offset

    async def rewind_dropped(self) -> None:
        """Read again what was dropped while Faust was positioning the consumer.

        Faust's seek re-reads what was fetched before it, but a fetch that
        overlapped the seek may have returned messages from after it, which
        were dropped too: seek back to the first one dropped (never past the
        committed offset).  Messages that were delivered meanwhile come again
        and are recognised as duplicates.  Dropped in an earlier generation:
        the new generation's seek covers them.
        """
        rewind, self.rewind = self.rewind or {}, None
        if self.rewind_generation != self.app.consumer_generation_id:
            return
        assigned = self.assignment()
        for tp, offset in rewind.items():
            if tp in assigned:
                committed = self.committed_offset(tp)
                target = offset if committed is None else min(offset, committed)
                self.log.info("Reading %s[%s] again from offset %s (fetched while the "
                              "consumer was being positioned)", tp.topic, tp.partition, target)
                await self.seek(tp, target)

    def _hand_over(self, seeks: int, positioned: bool) -> bool:
        """Whether a fetch's batched messages go to the handler, or are dropped.

        Only a fetch that began and ended positioned, with no seek begun in
        between, is handed over: part of a fetch may come from before a seek.
        A fetch is never split: handing over its messages after one that was
        dropped would let them overtake it, and the processor would take the
        dropped one, read again, for a copy of what it already has.
        """
        return positioned and self.flow_active and self.positioned() and self.seeks == seeks

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop (``Consumer._drain_messages``), with the batched
        topics taken a fetch at a time."""
        app = self.tuned_app
        handler = app.batch_handler
        if handler is None:
            await super()._drain_messages(fetcher)
            return
        batched = app.batched_topics
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = app.topics.acks_enabled_for
        on_message_in = app.sensors.on_message_in
        # One sensor update per partition and fetch instead of per message,
        # when the app's monitor is the only sensor and can take a fetch.
        monitor = app.monitor
        fetch_sensor = (monitor if isinstance(monitor, FetchSensor)
                        and list(app.sensors) == [monitor] else None)
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):  # noqa: SLF001 mode's Service flag, as Faust's loop reads it
                self.diag.set_flag(CONSUMER_FETCHING)
                await self.sleep(0)
                if self.should_stop:
                    continue
                if self.rewind and self.positioned():
                    await self.rewind_dropped()
                batch: dict[TP, list[Message]] = {}
                # Decided for the whole fetch: the loop awaits Faust's path for
                # other topics, and a seek may run meanwhile (see _hand_over).
                seeks, positioned = self.seeks, self.positioned()
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    r_offset = read_offset[tp]
                    if r_offset is not None and offset < r_offset:
                        continue  # before the position Faust sought to
                    if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                        # Offsets with no message (compaction, transaction
                        # markers) count as acknowledged, so the read offset
                        # must follow every message fetched, dropped or not.
                        await self._add_gap(tp, r_offset + 1, offset)
                    if tp.topic in batched:
                        # Dropped or handed over at the end of the fetch; read
                        # either way: the next message is no gap.
                        batch.setdefault(tp, []).append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
                if batch and self._hand_over(seeks, positioned):
                    # Counted in only when handed over: a dropped message
                    # is counted when it is read again.
                    for tp, messages in batch.items():
                        if fetch_sensor is not None:
                            fetch_sensor.on_messages_in(tp, messages)
                        else:
                            for message in messages:
                                on_message_in(tp, message.offset, message)
                    await handler(batch)
                elif batch:
                    for tp, messages in batch.items():
                        self.note_dropped(tp, messages[0].offset)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class TunedTransport(driver.Transport):
    Consumer: ClassVar[Any] = TunedConsumer


@contextmanager
def processing(event: EventT[Any]) -> Iterator[None]:
    """Run the block as if Faust were processing ``event``.

    Faust finds "the event being processed" (which picks a table write's
    changelog partition, and the RocksDB store's database) in a context
    variable that only its streams set.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def event_for(app: AppT, message: Message) -> EventT[Any]:
    """An event for ``message`` as a stream would make it (key and value not decoded)."""
    return Event(app, None, None, None, message)


def aiokafka_producer(producer: ProducerT) -> AIOKafkaProducer:
    """The aiokafka producer under Faust's (started with it)."""
    client: AIOKafkaProducer = producer._ensure_producer()  # type: ignore[attr-defined]  # noqa: SLF001 Faust keeps its aiokafka producer private
    return client


def encoded_batch(batch: Any) -> bytes:
    """A finished aiokafka batch's bytes, as the producer submits them."""
    return bytes(batch._build())  # noqa: SLF001 aiokafka's batch builder encodes privately


def prometheus_metrics(monitor: PrometheusMonitor) -> FaustMetrics:
    """The metrics a Faust Prometheus monitor updates."""
    metrics: FaustMetrics = monitor._metrics  # noqa: SLF001 Faust keeps the monitor's metrics private
    return metrics
