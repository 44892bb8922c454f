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
  ``_read_offset``, ``_add_gap``, ``_commit_every``, ``_n_acked``, and the
  ack bookkeeping ``ack_range`` keeps as ``ack`` does (``_acked``,
  ``_acked_index``, ``_waiting_for_ack``); mode's ``Service._stopped``, as
  Faust's loop reads it.
* aiokafka's consumer ``_fetch_max_wait_ms`` and ``_subscription`` (its
  partitions' fetch states), its batch builder's ``_build``.
* Faust's producer ``_ensure_producer`` (its aiokafka producer).
* ``faust.streams._current_event`` and a hand-built ``Event``: "the event
  being processed", which Faust's table writes and RocksDB store read.
* Faust's Prometheus monitor ``_metrics``.
* Faust's RocksDB store: its codecs (``_encode_key``, ``_encode_value``),
  its per-partition databases (``_db_for_partition``) and its key index
  (``_key_index``), written in bulk by :func:`put_many`; read directly by
  :class:`RawItemsTable` (``_dbs_for_actives``, ``_decode_key``, ``_decode_value``).
* Faust's table recovery (:class:`BulkRecovery`): ``_slurp_changelogs``
  (restated), ``_set_recovery_started`` (wrapped), and the bookkeeping its
  loop keeps (``_active_events_received_at`` and the like); the table
  manager's ``_recovery``; a table's ``_on_changelog_event``.

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

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    ItemsView,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from time import monotonic
from typing import Any, ClassVar, Protocol, runtime_checkable

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.events import Event
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import _current_event
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.tables.recovery import logger as recovery_logger
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, AppT, EventT, Message, ProducerT, TransportT
from faust.types.tuples import ack_lock
from faust.utils.tracing import finish_span
from mode import Service
from mode.utils.futures import notify
from rocksdict import WriteBatch

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
    #: Per partition, for :meth:`settled_highwater`: the aiokafka assignment
    #: looked in, and the partition's state and its siblings' in it.
    _partition_states: dict[TP, tuple[Any, Any, list[Any]]] | None = None

    _thread: TunedConsumerThread

    def _new_consumer_thread(self) -> TunedConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def tuned_app(self) -> TunedApp:
        app = self.app
        assert isinstance(app, TunedApp)
        return app

    def ack_range(self, tp: TP, first: int, last: int) -> int:
        """Faust's ``Consumer.ack`` for every offset from ``first`` to ``last``.

        The processor acknowledges a partition's messages in runs of offsets,
        so no ``Message`` (nor a closure holding one) has to live until the
        flush.  The bookkeeping is Faust's own, under its lock: offsets below
        the commit or already acknowledged are skipped, the rest count towards
        the next commit.  Returns how many offsets were newly acknowledged.
        """
        if not self.app.topics.acks_enabled_for(tp.topic):
            return 0
        with ack_lock:
            try:
                committed = self._committed_offset[tp]
                start = first if committed is None else max(first, committed)
                index, acked = self._acked_index[tp], self._acked[tp]
                fresh = [offset for offset in range(start, last + 1) if offset not in index]
                index.update(fresh)
                acked.extend(fresh)
                self._n_acked += len(fresh)
                return len(fresh)
            finally:
                notify(self._waiting_for_ack)

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
        same partition; the same ones at every call for ``tp``).

        aiokafka does not fetch a partition while records of it wait in its
        buffer, so its mark can date from before a sibling's newest fetch: a
        topic that looks caught up by it may not be, and a sibling's event
        released on its word could overtake what has reached the broker since.
        Partitions with nothing buffered are fetched together, so in steady
        operation the marks are equally fresh and nothing waits.
        """
        # What aiokafka's highwater() and last_poll_timestamp() read.  The merge
        # asks this for every event it releases, so the partition states are
        # looked up once per assignment: aiokafka makes them with it and keeps
        # them for its life.
        subscription = self.client()._subscription.subscription  # noqa: SLF001 aiokafka's partition states
        assignment = None if subscription is None else subscription.assignment
        if assignment is None:  # nothing assigned: a rebalance is under way
            return None
        states = self._partition_states
        if states is None:
            states = self._partition_states = {}
        found = states.get(tp)
        if found is None or found[0] is not assignment:
            state = assignment.state_value(tp)
            others = [assignment.state_value(sibling) for sibling in siblings]
            if state is None or any(other is None for other in others):
                return None  # not assigned: a rebalance is under way
            found = states[tp] = (assignment, state, others)
        _, state, others = found
        polled = state.timestamp
        if polled is None:  # never fetched
            return None
        for other in others:
            if other.timestamp is not None and other.timestamp > polled:
                return None
        highwater: int | None = state.highwater
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


# -- table recovery, in bulk --------------------------------------------------


class BulkRecovery(Recovery):
    """Faust's table recovery, applying the changelog in bulk.

    Faust moves each changelog message through its fetch loop's per-message
    path (a two-task wait, the conductor's flow control and decoding into an
    event), a queue, and a loop (``Recovery._slurp_changelogs``) that takes
    one event per ``wait_for`` (a task each), formats two debug lines, and
    after every event re-derives whether recovery is over from every
    partition's offsets; the queue only tells the consumer that its pressure
    dropped once it is empty, so a changelog partition paused for a full
    queue resumes fetching only once the loop has caught up.  That costs
    far more than writing the state into the store.

    Here the consumer (:class:`BulkRecoveryConsumer`) hands the messages of
    the partitions this recovery :meth:`takes` straight to
    :meth:`apply_fetched`, a fetch at a time: one store batch per partition
    and fetch, the offsets recorded, the end of recovery checked once.  The
    queue and its loop (restated: it awaits the first event, then takes
    whatever else is queued without waiting, and checks once per
    queue-full) remain for the tables whose events they must decode or
    call back on.  What the store ends with and the offsets recorded are
    Faust's.

    Differences: the end-of-recovery signal is cleared when a recovery
    starts instead of at every turn of the loop (the consumer may signal the
    end before the recovery task waits for it); and an event of a partition
    that is neither active nor standby is skipped with Faust's warning,
    where Faust applies it to the previous event's table (a bug its source
    notes and keeps).
    """

    async def _take(self, events: list[EventT[Any]]) -> None:
        """Faust's per-event work of the loop, for ``events`` in queue order."""
        active_tps, standby_tps = self.active_tps, self.standby_tps
        tp_to_table, buffers, buffer_sizes = self.tp_to_table, self.buffers, self.buffer_sizes
        now = monotonic()
        actives = 0
        for event in events:
            message = event.message
            tp, offset = message.tp, message.offset
            bufsize = buffer_sizes.get(tp)
            if tp in active_tps:
                table = tp_to_table[tp]
                offsets = self.active_offsets
                if bufsize is None:
                    bufsize = buffer_sizes[tp] = table.recovery_buffer_size
                self._active_events_received_at[tp] = now
                actives += 1
            elif tp in standby_tps:
                table = tp_to_table[tp]
                offsets = self.standby_offsets
                if bufsize is None:
                    bufsize = buffer_sizes[tp] = table.standby_buffer_size
                    self._standby_events_received_at[tp] = now
            else:
                recovery_logger.warning(f"recovery unknown topic {tp} offset {offset}")
                continue
            seen_offset = offsets.get(tp, None)
            if seen_offset is None or offset > seen_offset:
                offsets[tp] = offset
                buf = buffers[table]
                buf.append(event)
                await table.on_changelog_event(event)
                if len(buf) >= bufsize:
                    table.apply_changelog_batch(buf)
                    buf.clear()
                    self._last_flush_at = now
        self._count_processed(actives)

    def _count_processed(self, actives: int) -> None:
        """Samples for Faust's remaining-time estimate: the time per event."""
        if actives:
            done = monotonic()
            # Set once recovery starts (unset before: not worth failing for).
            last = getattr(self, "_last_active_event_processed_at", None)
            if last is not None:
                per_event = (done - last) / actives
                times = self._processing_times
                times.extend(itertools.repeat(per_event, min(actives, 1000)))
                excess = len(times) - self.num_samples_required_for_estimate
                for _ in range(max(0, excess)):
                    times.popleft()
            self._last_active_event_processed_at = done

    async def _signal_recovery_end_if_done(self, timeout: bool = False,
                                           timeout_count: int = 0) -> None:
        """Faust's ``_maybe_signal_recovery_end`` (local to its loop)."""
        if timeout and self.app.in_transaction and timeout_count > 1:
            await self._detect_aborted_tx()
        self._end_if_done()

    def _set_recovery_started(self) -> None:
        self.signal_recovery_end.clear()
        super()._set_recovery_started()

    def _end_if_done(self) -> None:
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            self.signal_recovery_end.set()

    async def _detect_aborted_tx(self) -> None:
        """Faust's ``detect_aborted_tx`` (local to its loop)."""
        highwaters = self.active_highwaters
        offsets = self.active_offsets
        for tp, highwater in highwaters.items():
            if highwater is not None and offsets[tp] is not None and offsets[tp] < highwater:
                position = await self.app.consumer.position(tp)
                if position is not None and position >= highwater:
                    recovery_logger.info(f"Aborted tx until highwater for {tp}")
                    offsets[tp] = highwater

    @Service.task
    async def _slurp_changelogs(self) -> None:
        await self.slurp()

    async def slurp(self) -> None:
        """Apply changelog events from the table manager's queue until stopped."""
        queue = self.tables.changelog_queue
        timeout_count = 0
        while not self.should_stop:
            try:
                # Not cleared here (Faust clears it at every turn): the end
                # may be signalled by the consumer (apply_fetched) before
                # the recovery task waits for it; _set_recovery_started
                # clears it for the next recovery instead.
                try:
                    first: EventT[Any] = await asyncio.wait_for(queue.get(), timeout=5.0)
                except TimeoutError:
                    timeout_count += 1
                    if self.should_stop:
                        return
                    await self._signal_recovery_end_if_done(True, timeout_count)
                    continue
                timeout_count = 0
                events = [first]
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        events.append(queue.get_nowait())
                await self._take(events)
                await self._signal_recovery_end_if_done()
                self._standbys_ready_if_done()
            except Exception as ex:
                recovery_logger.warning(f"Error in recovery {ex}")

    def _standbys_ready_if_done(self) -> None:
        standby_ready = self._standbys_span is None and self.tables.standbys_ready
        if not standby_ready and not self.standby_remaining_total():
            if self._standbys_span:
                finish_span(self._standbys_span)
                self._standbys_span = None
            self.tables.on_standbys_ready()

    # -- straight from the consumer -------------------------------------------

    def takes(self, tp: TP) -> bool:
        """Whether ``tp``'s fetched messages may skip the queue (see :meth:`apply_fetched`).

        A changelog partition being recovered or kept as a standby, of a
        table of raw keys and values (whose events are the messages' bytes)
        with no changelog callback.
        """
        if tp not in self.active_tps and tp not in self.standby_tps:
            return False
        table = self.tp_to_table.get(tp)
        callback = getattr(table, "_on_changelog_event", None)  # Faust keeps it private
        return (table is not None and table.key_type is bytes and table.value_type is bytes
                and callback is None)

    def apply_fetched(self, fetched: Mapping[TP, list[Message]]) -> None:
        """Apply one fetch's messages of partitions it :meth:`takes`, in bulk.

        What Faust's loop does with them (see :meth:`_take`), without an
        event, a queue and a task per message: each partition's messages
        past its recorded offset are written to the store in one batch (after
        whatever Faust's buffers held, which is older), its offset recorded,
        and the end of recovery checked once.
        """
        if any(self.buffers.values()):
            self.flush_buffers()
        now = monotonic()
        actives = 0
        for tp, messages in fetched.items():
            table = self.tp_to_table[tp]
            if tp in self.active_tps:
                offsets = self.active_offsets
                self._active_events_received_at[tp] = now
                actives += len(messages)
            else:
                offsets = self.standby_offsets
                self._standby_events_received_at.setdefault(tp, now)
            seen = offsets.get(tp, None)
            records = [_ChangelogRecord(m) for m in messages
                       if seen is None or m.offset > seen]
            if records:
                offsets[tp] = records[-1].message.offset
                # The stores read no more of an event than a record holds.
                table.apply_changelog_batch(records)  # type: ignore[arg-type]
        self._last_flush_at = now
        self._count_processed(actives)
        self._end_if_done()
        self._standbys_ready_if_done()


class BulkTableManager(TableManager):
    """Faust's table manager, recovering through :class:`BulkRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BulkRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class _ChangelogRecord:
    """A changelog message as the stores' ``apply_changelog_batch`` reads an event.

    For a table of raw keys and values the event's key and value are the
    message's bytes (the RocksDB store reads the message, the memory store
    the event).
    """

    __slots__ = ("key", "message", "value")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.key = message.key
        self.value = message.value


class BulkRecoveryConsumer(TunedConsumer):
    """The tuned consumer, handing changelog partitions' fetches to :class:`BulkRecovery`.

    Faust passes every changelog message through its fetch loop's per-message
    path: a two-task wait, the conductor (flow control, decoding into an
    event), the recovery queue and loop.  Messages of the partitions the
    recovery :meth:`~BulkRecovery.takes` are instead kept aside as
    ``getmany`` yields a fetch and applied in bulk, before any other
    message is handed on and at the end of the fetch, as long as the flow
    is on and the consumer generation the one they were fetched in (else
    dropped, as Faust clears its recovery queue: recovery restarts from
    what the store recorded).  The fetch loop still records their offsets
    as read.
    """

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        recovery = getattr(self.app.tables, "recovery", None)
        if not isinstance(recovery, BulkRecovery):
            async for item in super().getmany(timeout):
                yield item
            return
        read_offset = self._read_offset
        taking: dict[TP, bool] = {}
        taken: dict[TP, list[Message]] = {}
        # The generation the fetch belongs to: Faust's getmany may wait out a
        # whole rebalance for the flow to resume before it fetches, and stops
        # yielding once the generation moves on, so everything it yields is
        # of the generation current at its first message.
        generation: int | None = None
        async for tp, message in super().getmany(timeout):
            if generation is None:
                generation = self.app.consumer_generation_id
            takes = taking.get(tp)
            if takes is None:
                takes = taking[tp] = recovery.takes(tp)
            if takes:
                taken.setdefault(tp, []).append(message)
                read_offset[tp] = message.offset
                continue
            if taken:
                self._apply_taken(recovery, taken, generation)
                taken = {}
            yield tp, message
        if taken and generation is not None:
            self._apply_taken(recovery, taken, generation)

    def _apply_taken(self, recovery: BulkRecovery, taken: Mapping[TP, list[Message]],
                     generation: int) -> None:
        if (self.flow_active and self.app.flow_control.is_active()
                and self.app.consumer_generation_id == generation):
            recovery.apply_fetched(taken)


# Defined above the consumer it now names: the app's transport makes these.
TunedTransport.Consumer = BulkRecoveryConsumer


# -- a table's RocksDB store in bulk: writes and reads ------------------------


def put_many(store: Any, partition: int, items: Sequence[tuple[bytes, bytes]]) -> None:
    """Put ``items`` (key, value) into a table's store of ``partition`` as
    ``store[key] = value`` each would.

    Faust writes a key to its RocksDB store one call chain at a time: the key
    and the value through the app's serializer registry, the partition from
    the event being processed, then a put of its own.  A flush writes
    thousands of states.  When the store's codecs hand the bytes back
    unchanged (raw keys and values: checked on the first pair), the pairs go
    into the partition's database in one write batch, and the store's key
    index learns each key's partition, as Faust's own put does; otherwise,
    and for other stores, one assignment each.
    """
    if items and isinstance(store, RocksDBStore) and store.use_rocksdict:
        key, value = items[0]
        if store._encode_key(key) == key and store._encode_value(value) == value:  # noqa: SLF001 Faust's encoding of a stored pair
            batch = WriteBatch(raw_mode=True)
            index = store._key_index  # noqa: SLF001 which partition's database holds a key
            for key, value in items:
                batch.put(key, value)
                index[key] = partition
            store._db_for_partition(partition).write(batch)  # noqa: SLF001 the database Faust's own put would use
            return
    for key, value in items:
        store[key] = value


class RawItemsTable(faust.Table[Any, Any]):
    """A Faust table whose ``items()`` reads its RocksDB store's databases directly.

    Faust's items of a RocksDB table pass every pair through four nested
    generators and a codec look-up for its key and for its value; a worker
    reads every state once after a restart (the due index and the purchase
    histograms are re-derived from them), so that is paid per customer.
    When the store's codecs hand the bytes back unchanged (raw keys and
    values: checked on the first pair), the pairs come straight from the
    partitions' databases Faust itself would read (the active partitions'),
    without the offset key Faust skips; otherwise, and for other stores,
    they are Faust's.
    """

    def items(self) -> ItemsView[Any, Any]:
        store = self.data
        if isinstance(store, RocksDBStore) and store.use_rocksdict:
            return _RawItems(self, store)
        items: ItemsView[Any, Any] = super().items()
        return items


class _RawItems(ItemsView[Any, Any]):
    def __init__(self, table: Any, store: RocksDBStore) -> None:
        super().__init__(table)
        self.store = store

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        store = self.store
        offset_key = store.offset_key
        raw: bool | None = None
        for db in store._dbs_for_actives():  # noqa: SLF001 the databases of Faust's own items
            for key, value in db.items():
                if key == offset_key:
                    continue
                if raw is None:
                    raw = (store._decode_key(key), store._decode_value(value)) == (key, value)  # noqa: SLF001 Faust's decoding of a stored pair
                if raw:
                    yield key, value
                else:
                    yield store._decode_key(key), store._decode_value(value)  # noqa: SLF001 Faust's decoding of a stored pair
