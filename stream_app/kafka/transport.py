"""Faust's aiokafka transport, tuned for a worker that takes whole fetches.

Two things Faust does not offer:

* Faust's worker consumer hard-codes ``fetch_max_wait_ms=1500``: a fetch may
  be held by the broker that long even when data is waiting (a p50 of 1.3 s
  from event to alert on the local broker).  The consumer is built as Faust
  builds it and then gets ``CHURNWATCH_FETCH_MAX_WAIT_MS``.
* Faust hands every message to the agents one by one: the conductor puts it
  on each subscriber's queue, a stream iterates it, sensors time it, and the
  fetch loop runs a two-task ``wait_first`` per message.  That machinery caps
  a Faust agent that does nothing at about 5,000 messages/s on a small
  machine.  The app may instead name *batched topics* and a handler: their
  messages go to the handler a fetch at a time, grouped by partition, and
  everything else (consumer group, commits of acknowledged offsets, tables
  and their recovery, other agents) stays Faust's.

A batch is only handed over once Faust has sought every assigned partition
to its committed offset for the current consumer generation: until then the
consumer may deliver from wherever the client library started, and Faust is
about to seek back.  Such messages are dropped and read again: the fetch loop
seeks back to the first one dropped once the consumer is positioned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message, TransportT

#: Set from the settings by :func:`stream_app.kafka.faust_config.app_options`.
FETCH_MAX_WAIT_MS: int | None = None

#: Takes one fetch's messages of the batched topics, in offset order per partition.
BatchHandler = Callable[[Mapping[TP, list[Message]]], Awaitable[None]]


class TunedConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if FETCH_MAX_WAIT_MS is not None:
            consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class TunedConsumer(driver.Consumer):
    #: The consumer generation whose post-assignment seek has completed.
    positioned_generation: int | None = None
    #: Whether Faust's seek to the committed offsets is running.
    seeking: bool = False
    #: Per partition, the first offset of the batched topics dropped before
    #: the consumer was positioned, and the generation it was dropped in.
    rewind: dict[TP, int] | None = None
    rewind_generation: int | None = None

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
        consumer = self._thread._ensure_consumer()
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
        batched: frozenset[str] = getattr(self.app, "batched_topics", frozenset())
        fresh = [tp for tp in self.assignment()
                 if tp.topic in batched and self._committed_offset.get(tp) is None]
        if fresh:
            starts = await self.earliest_offsets(*fresh)
            for tp in fresh:
                await self.seek(tp, starts[tp])

    def positioned(self) -> bool:
        """Whether every assigned partition reads on from its committed offset."""
        return (not self.seeking
                and self.positioned_generation == self.app.consumer_generation_id)

    def _dropped(self, tp: TP, offset: int) -> None:
        """Remember a batched message dropped before the consumer was positioned."""
        generation = self.app.consumer_generation_id
        if self.rewind is None or generation != self.rewind_generation:
            self.rewind = {}
            self.rewind_generation = generation
        if offset < self.rewind.get(tp, offset + 1):
            self.rewind[tp] = offset

    async def _rewind_dropped(self) -> None:
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
                committed = self._committed_offset.get(tp)
                target = offset if committed is None else min(offset, committed)
                self.log.info("Reading %s[%s] again from offset %s (fetched while the "
                              "consumer was being positioned)", tp.topic, tp.partition, target)
                await self.seek(tp, target)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - I/O loop
        """Faust's fetch loop, with the batched topics taken a fetch at a time."""
        app = self.app
        handler: BatchHandler | None = getattr(app, "batch_handler", None)
        if handler is None:
            await super()._drain_messages(fetcher)
            return
        batched: frozenset[str] = app.batched_topics  # type: ignore[attr-defined]
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = app.topics.acks_enabled_for
        on_message_in = app.sensors.on_message_in
        # One sensor update per partition and fetch instead of per message,
        # when the app's monitor is the only sensor and can take a fetch.
        on_messages_in = getattr(app.monitor, "on_messages_in", None)
        if list(app.sensors) != [app.monitor]:
            on_messages_in = None
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                await self.sleep(0)
                if self.should_stop:
                    continue
                if self.rewind and self.positioned():
                    await self._rewind_dropped()
                batch: dict[TP, list[Message]] = {}
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
                        if self.positioned():
                            batch.setdefault(tp, []).append(message)
                        else:
                            # Dropped, but read: the next message is no gap.
                            self._dropped(tp, offset)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
                if batch and self.flow_active and self.positioned():
                    # Counted in only when handed over: a dropped message
                    # is counted when it is read again.
                    for tp, messages in batch.items():
                        if on_messages_in is not None:
                            on_messages_in(tp, messages)
                        else:
                            for message in messages:
                                on_message_in(tp, message.offset, message)
                    await handler(batch)
                elif batch:
                    # A rebalance or a seek began during the fetch.
                    for tp, messages in batch.items():
                        self._dropped(tp, messages[0].offset)
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


class ChurnwatchApp(faust.App):
    """A Faust app on :class:`TunedTransport`.

    ``batch_handler`` takes the messages of ``batched_topics`` (see the module
    docstring); the handler acknowledges each message through the consumer
    once its effects are written.

    The app also runs hooks *before* Faust stops its consumer: the processor
    holds acknowledgements until its writes are done, and Faust commits the
    acknowledged offsets as its consumer stops, so the processor must flush
    first (graceful shutdown finishes and commits in-flight work).
    """

    before_stop: list[Callable[[], Awaitable[None]]]
    batch_handler: BatchHandler | None = None
    batched_topics: frozenset[str] = frozenset()

    def take_batches(self, topics: list[faust.TopicT], handler: BatchHandler) -> None:
        """Subscribe to ``topics`` and hand their messages to ``handler`` a fetch at a time."""
        for topic in topics:
            self.topics.add(topic)
        self.batched_topics = frozenset(t for topic in topics for t in topic.topics)
        self.batch_handler = handler

    def _new_transport(self) -> TransportT:
        return TunedTransport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        for hook in getattr(self, "before_stop", []):
            try:
                await hook()
            except Exception:
                self.log.exception("shutdown hook failed; its work is redone on restart")
        await super().on_stop()
