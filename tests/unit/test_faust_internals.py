"""The adapter over Faust's and aiokafka's private API, against the installed Faust.

A real app and its (unstarted) tuned consumer; only what talks to a broker
is faked: the aiokafka consumer under Faust's, Faust's ``seek_to_committed``
and ``getmany``, and seeks.  Faust's own ``perform_seek`` runs for real, so
the committed and read offsets the adapter relies on are the ones Faust
records.  Where the adapter restates Faust code (the fetch loop), the test
pins the source it was written against: a Faust upgrade that changes it
fails here and names the file to revisit.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import inspect
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.subscription_state import SubscriptionState
from faust.exceptions import ConsumerNotStarted
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.streams import current_event
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message
from prometheus_client import CollectorRegistry

from stream_app.core.settings import Settings
from stream_app.kafka import faust_internals
from stream_app.kafka.app import ChurnwatchApp
from stream_app.kafka.faust_config import app_options
from stream_app.kafka.faust_internals import TunedConsumer, TunedTransport
from stream_app.kafka.monitor import LeanPrometheusMonitor, install_monitor

PURCHASES = TP("purchases", 0)
CONTACTS = TP("contacts", 0)
OTHER = TP("purchases", 1)

#: Faust's code that :class:`TunedConsumer` restates or wraps, as it was
#: read when the adapter was written (sha256 of the source, first 16 digits).
PINNED = {
    "faust.transport.consumer.Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer.Consumer.perform_seek": "0e8c130ff4b0afd8",
    # ack_range does ack's bookkeeping for a run of offsets; _new_offset reads it.
    "faust.transport.consumer.Consumer.ack": "5fcf41cf45153475",
    "faust.transport.consumer.Consumer._new_offset": "1d2c7ea89a7ad4f1",
    "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer":
        "c2701bfc3e6f6cad",
}


def _source_digest(dotted: str) -> str:
    module, cls, name = dotted.rsplit(".", 2)
    owner = {"faust.transport.consumer.Consumer": faust_consumer.Consumer,
             "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread":
                 driver.AIOKafkaConsumerThread}[f"{module}.{cls}"]
    return hashlib.sha256(inspect.getsource(getattr(owner, name)).encode()).hexdigest()[:16]


def test_the_faust_code_the_adapter_restates_is_the_code_it_was_written_against() -> None:
    changed = {name for name, digest in PINNED.items() if _source_digest(name) != digest}
    assert not changed, (
        f"Faust changed {sorted(changed)}: compare with stream_app/kafka/faust_internals.py "
        "(TunedConsumer), bring it in line, then update PINNED")


class FakeClient:
    """aiokafka's consumer as the adapter reads it: its partition states, aiokafka's own
    (so a change to them fails here), with the poll times and marks of fetches."""

    def __init__(self, polled: Mapping[TP, float | None], highwaters: Mapping[TP, int]) -> None:
        self._subscription = SubscriptionState()
        self._subscription.assign_from_user(set(polled))
        for tp, timestamp in polled.items():
            self.poll(tp, timestamp, highwaters.get(tp))

    def poll(self, tp: TP, timestamp: float | None, highwater: int | None = None) -> None:
        """As a fetch response leaves the partition's state."""
        state = self._subscription.subscription.assignment.state_value(tp)
        state.timestamp = timestamp
        if highwater is not None:
            state.highwater = highwater


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[ChurnwatchApp]:
    settings = Settings().with_overrides(store="memory://", broker_profile="local",
                                         data_dir=str(tmp_path), app_id="internals-test",
                                         fetch_max_wait_ms=7)
    # This test's loop: mode otherwise takes whichever loop is current, which
    # another test may have left behind.
    app = ChurnwatchApp(settings.app_id, fetch_max_wait_ms=settings.fetch_max_wait_ms,
                        loop=asyncio.get_running_loop(), **app_options(settings))
    app.batched_topics = frozenset({"purchases", "contacts"})
    yield app


@pytest.fixture
async def consumer(app: ChurnwatchApp) -> TunedConsumer:
    # Made in the test's loop, as the worker makes it in its own (mode binds
    # a service to the loop current when it is made).
    consumer = app.tuned_consumer
    assert isinstance(app.transport, TunedTransport)
    assert consumer.loop is app.loop
    return consumer


def _attach(consumer: TunedConsumer, client: Any) -> None:
    """Give the consumer thread an aiokafka consumer, as its start would."""
    consumer._thread._consumer = client  # noqa: SLF001 what the thread's start sets


class Seeks:
    """Faust's seeks, recorded: ``seek_to_committed`` answers with ``committed``."""

    def __init__(self, consumer: TunedConsumer, committed: Mapping[TP, int],
                 assigned: set[TP], earliest: Mapping[TP, int] | None = None) -> None:
        self.consumer = consumer
        self.committed = dict(committed)
        self.sought: list[tuple[TP, int]] = []
        self.seeking_seen: list[tuple[bool, bool]] = []
        consumer.seek_to_committed = self.seek_to_committed  # type: ignore[method-assign]
        consumer.seek = self.seek  # type: ignore[method-assign]
        consumer.assignment = lambda: set(assigned)  # type: ignore[method-assign]
        consumer.earliest_offsets = self.earliest_offsets  # type: ignore[method-assign]
        self.earliest = dict(earliest or {})

    async def seek_to_committed(self) -> Mapping[TP, int]:
        # What the consumer says while Faust's seek is running.
        self.seeking_seen.append((self.consumer.seeking, self.consumer.positioned()))
        return self.committed

    async def seek(self, tp: TP, offset: int) -> None:
        # As Faust's seek: the messages from there on are read again.
        self.sought.append((tp, offset))
        self.consumer._read_offset[tp] = offset or None  # noqa: SLF001 what Faust's seek sets

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        return {tp: self.earliest[tp] for tp in partitions}


# -- the aiokafka consumer, and its fetch setting ------------------------------


async def test_the_client_is_the_threads_aiokafka_consumer_once_started(
        consumer: TunedConsumer) -> None:
    with pytest.raises(ConsumerNotStarted):
        consumer.client()
    client = FakeClient({}, {})
    _attach(consumer, client)
    assert consumer.client() is client


async def test_the_worker_consumer_gets_the_configured_fetch_wait(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    thread = consumer._thread  # noqa: SLF001 the thread the consumer made
    built = thread._create_worker_consumer(app.transport)  # noqa: SLF001 Faust's builder
    assert isinstance(built, AIOKafkaConsumer)
    # aiokafka's fetcher is built from this attribute when the consumer starts.
    assert built._fetch_max_wait_ms == 7  # noqa: SLF001 aiokafka's setting


# -- the settled high-water mark -----------------------------------------------


async def test_settled_highwater_waits_for_a_fetch_as_fresh_as_the_siblings(
        consumer: TunedConsumer) -> None:
    client = FakeClient({PURCHASES: 10.0, CONTACTS: 12.0, OTHER: None},
                        {PURCHASES: 40, CONTACTS: 7, OTHER: 3})
    _attach(consumer, client)
    # Older than the contacts' newest fetch: it may be out of date.
    assert consumer.settled_highwater(PURCHASES, [CONTACTS]) is None
    # Fetched since: the mark counts.
    client.poll(PURCHASES, 12.0)
    assert consumer.settled_highwater(PURCHASES, [CONTACTS]) == 40
    assert consumer.settled_highwater(CONTACTS, [PURCHASES]) == 7
    # Never fetched: unknown.
    assert consumer.settled_highwater(OTHER, []) is None
    # Not assigned (a rebalance under way): unknown, not an error.
    assert consumer.settled_highwater(TP("purchases", 9), [PURCHASES]) is None


async def test_settled_highwater_follows_a_new_assignment(consumer: TunedConsumer) -> None:
    client = FakeClient({PURCHASES: 10.0, CONTACTS: 10.0}, {PURCHASES: 40, CONTACTS: 7})
    _attach(consumer, client)
    assert consumer.settled_highwater(PURCHASES, [CONTACTS]) == 40
    client.poll(PURCHASES, 11.0, 41)  # a fetch of the same assignment: read afresh
    assert consumer.settled_highwater(PURCHASES, [CONTACTS]) == 41
    # A rebalance: aiokafka makes the partitions' states afresh, unfetched.
    client._subscription.assign_from_user({PURCHASES, CONTACTS})  # noqa: SLF001 aiokafka's partition states
    assert consumer.settled_highwater(PURCHASES, [CONTACTS]) is None
    client.poll(PURCHASES, 20.0, 55)
    client.poll(CONTACTS, 20.0, 9)
    assert consumer.settled_highwater(PURCHASES, [CONTACTS]) == 55


async def test_settled_highwater_before_the_start_says_not_started(
        consumer: TunedConsumer) -> None:
    with pytest.raises(ConsumerNotStarted):
        consumer.settled_highwater(PURCHASES, [CONTACTS])


# -- positioned ----------------------------------------------------------------


async def test_positioned_once_fausts_seek_of_this_generation_is_done(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    app.consumer_generation_id = 3
    seeks = Seeks(consumer, committed={PURCHASES: 5, CONTACTS: 2}, assigned={PURCHASES, CONTACTS})
    assert not consumer.positioned()
    await consumer.perform_seek()
    # During Faust's seek: seeking, not positioned.  After: positioned.
    assert seeks.seeking_seen == [(True, False)]
    assert consumer.positioned() and not consumer.seeking
    # Faust recorded the commits the adapter reads.
    assert consumer.committed_offset(PURCHASES) == 5
    assert consumer.committed_offset(OTHER) is None
    # Every partition had a commit: Faust's seek is the only one.
    assert seeks.sought == []
    # A new generation (a rebalance): not positioned until its own seek.
    app.consumer_generation_id = 4
    assert not consumer.positioned()
    await consumer.perform_seek()
    assert consumer.positioned()


async def test_a_failed_seek_leaves_the_consumer_unpositioned(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    app.consumer_generation_id = 1

    async def broken() -> Mapping[TP, int]:
        raise RuntimeError("broker gone")

    Seeks(consumer, committed={}, assigned={PURCHASES})
    consumer.seek_to_committed = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await consumer.perform_seek()
    assert not consumer.seeking and not consumer.positioned()


async def test_batched_partitions_without_a_commit_are_read_from_the_start(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    app.consumer_generation_id = 1
    clock = TP("clock", 0)
    seeks = Seeks(consumer, committed={PURCHASES: 5}, assigned={PURCHASES, CONTACTS, clock},
                  earliest={CONTACTS: 0})
    await consumer.perform_seek()
    # Contacts had no commit; the clock topic is not batched, Faust's alone.
    assert seeks.sought == [(CONTACTS, 0)]


# -- acknowledged as runs of offsets -------------------------------------------


async def test_a_run_of_offsets_is_acknowledged_as_fausts_ack_would_each(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    app.topics._acking_topics.add(PURCHASES.topic)  # noqa: SLF001 what subscribing sets
    consumer._committed_offset[PURCHASES] = 10  # noqa: SLF001 as a commit leaves it
    # Below the commit: nothing; from it on, each offset once.
    assert consumer.ack_range(PURCHASES, 5, 12) == 3
    assert consumer.ack_range(PURCHASES, 12, 14) == 2
    assert consumer._new_offset(PURCHASES) == 15  # noqa: SLF001 Faust's next commit
    # A topic Faust does not ack (not subscribed with acks) is left alone.
    assert consumer.ack_range(CONTACTS, 0, 3) == 0


async def test_a_run_after_a_hole_is_not_committed_past_the_hole(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    app.topics._acking_topics.add(PURCHASES.topic)  # noqa: SLF001 what subscribing sets
    consumer._committed_offset[PURCHASES] = 0  # noqa: SLF001 as a commit leaves it
    consumer.ack_range(PURCHASES, 0, 3)
    consumer.ack_range(PURCHASES, 6, 8)  # 4 and 5 still in the merge
    assert consumer._new_offset(PURCHASES) == 4  # noqa: SLF001 Faust's next commit


# -- dropped and read again ----------------------------------------------------


async def test_dropped_keeps_the_first_offset_per_partition_and_generation(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    app.consumer_generation_id = 1
    for tp, offset in ((PURCHASES, 10), (PURCHASES, 7), (PURCHASES, 9), (CONTACTS, 3)):
        consumer.note_dropped(tp, offset)
    assert consumer.rewind == {PURCHASES: 7, CONTACTS: 3}
    # Dropped in a new generation: the old generation's are covered by its seek.
    app.consumer_generation_id = 2
    consumer.note_dropped(PURCHASES, 20)
    assert consumer.rewind == {PURCHASES: 20} and consumer.rewind_generation == 2


async def test_rewind_seeks_back_to_the_first_dropped_never_past_the_commit(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    app.consumer_generation_id = 1
    seeks = Seeks(consumer, committed={PURCHASES: 5, CONTACTS: 2},
                  assigned={PURCHASES, CONTACTS})
    await consumer.perform_seek()
    consumer.note_dropped(PURCHASES, 7)  # after the commit: from 7
    consumer.note_dropped(CONTACTS, 1)  # before the commit: from where it was dropped
    consumer.note_dropped(OTHER, 4)  # no longer assigned: nothing
    await consumer.rewind_dropped()
    assert sorted(seeks.sought) == [(CONTACTS, 1), (PURCHASES, 5)]
    assert consumer.rewind is None


async def test_rewind_of_an_older_generation_is_left_to_the_new_seek(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    app.consumer_generation_id = 1
    seeks = Seeks(consumer, committed={PURCHASES: 5}, assigned={PURCHASES})
    consumer.note_dropped(PURCHASES, 7)
    app.consumer_generation_id = 2
    await consumer.rewind_dropped()
    assert seeks.sought == [] and consumer.rewind is None


# -- the fetch loop ------------------------------------------------------------


def _message(tp: TP, offset: int) -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, 1, 1, tp)


class Fetches:
    """Faust's ``getmany``: one fetch per call; the fetcher stops after the last."""

    def __init__(self, consumer: TunedConsumer, *fetches: list[Message]) -> None:
        self.fetches = list(fetches)
        self.stopped = asyncio.Event()
        self._stopped = self.stopped  # the fetcher's flag, as Faust's loop reads it
        consumer.getmany = self.getmany  # type: ignore[method-assign]

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        for message in self.fetches.pop(0):
            yield message.tp, message
        if not self.fetches:
            self.stopped.set()


async def _drain(consumer: TunedConsumer, fetcher: Fetches) -> None:
    await consumer._drain_messages(fetcher)  # noqa: SLF001 Faust's fetch loop, overridden


@pytest.fixture
def handed(app: ChurnwatchApp, consumer: TunedConsumer) -> list[dict[TP, list[int]]]:
    batches: list[dict[TP, list[int]]] = []

    async def handler(batch: Mapping[TP, list[Message]]) -> None:
        batches.append({tp: [m.offset for m in ms] for tp, ms in batch.items()})

    app.batch_handler = handler
    return batches


async def test_the_fetch_loop_hands_over_a_fetch_grouped_by_partition(
        app: ChurnwatchApp, consumer: TunedConsumer,
        handed: list[dict[TP, list[int]]]) -> None:
    app.consumer_generation_id = 1
    Seeks(consumer, committed={PURCHASES: 3, CONTACTS: 1}, assigned={PURCHASES, CONTACTS})
    await consumer.perform_seek()
    seen_by_faust: list[int] = []

    async def callback(message: Message) -> None:  # Faust's path, for other topics
        seen_by_faust.append(message.offset)

    consumer.callback = callback
    clock = TP("clock", 0)
    fetcher = Fetches(consumer,
                      [_message(PURCHASES, 2), _message(PURCHASES, 3), _message(CONTACTS, 1),
                       _message(PURCHASES, 4), _message(clock, 8)],
                      [_message(PURCHASES, 3), _message(PURCHASES, 5)])
    await _drain(consumer, fetcher)
    # Offset 2 is before the position Faust sought to; 3 came twice, taken once.
    assert handed == [{PURCHASES: [3, 4], CONTACTS: [1]}, {PURCHASES: [5]}]
    assert seen_by_faust == [8]
    assert consumer.rewind is None


async def test_the_fetch_loop_drops_what_comes_before_the_consumer_is_positioned(
        app: ChurnwatchApp, consumer: TunedConsumer,
        handed: list[dict[TP, list[int]]]) -> None:
    app.consumer_generation_id = 1
    seeks = Seeks(consumer, committed={PURCHASES: 3}, assigned={PURCHASES})
    fetcher = Fetches(consumer, [_message(PURCHASES, 6), _message(PURCHASES, 7)])
    await _drain(consumer, fetcher)
    assert handed == [] and consumer.rewind == {PURCHASES: 6}
    # Once positioned, the next round of the loop seeks back to the first dropped.
    await consumer.perform_seek()
    fetcher = Fetches(consumer, [_message(PURCHASES, 3)])
    await _drain(consumer, fetcher)
    assert (PURCHASES, 3) in seeks.sought and consumer.rewind is None
    assert handed == [{PURCHASES: [3]}]


async def test_a_fetch_during_which_the_consumer_gets_positioned_is_dropped_whole(
        app: ChurnwatchApp, consumer: TunedConsumer,
        handed: list[dict[TP, list[int]]]) -> None:
    # The loop awaits Faust's path for a message of another topic, and Faust's
    # seek may finish meanwhile.  Handing over what follows in the same fetch
    # would put 7 in while 6 waits to be read again: the processor takes what
    # comes again up to 7 for copies of what it has, and never applies 6.
    app.consumer_generation_id = 1
    seeks = Seeks(consumer, committed={PURCHASES: 3}, assigned={PURCHASES})

    async def callback(message: Message) -> None:
        await consumer.perform_seek()

    consumer.callback = callback
    clock = TP("clock", 0)
    fetcher = Fetches(consumer, [_message(PURCHASES, 6), _message(clock, 8),
                                 _message(PURCHASES, 7)])
    await _drain(consumer, fetcher)
    assert handed == [] and consumer.rewind == {PURCHASES: 6}
    fetcher = Fetches(consumer, [_message(PURCHASES, 3)])
    await _drain(consumer, fetcher)
    assert (PURCHASES, 3) in seeks.sought and handed == [{PURCHASES: [3]}]


async def test_a_fetch_during_which_a_seek_ran_is_dropped_whole(
        app: ChurnwatchApp, consumer: TunedConsumer,
        handed: list[dict[TP, list[int]]]) -> None:
    # Positioned before and after, but sought again in between: what the
    # fetch holds after the seek came from the old position.
    app.consumer_generation_id = 1
    Seeks(consumer, committed={PURCHASES: 3}, assigned={PURCHASES})
    await consumer.perform_seek()

    async def callback(message: Message) -> None:
        await consumer.perform_seek()

    consumer.callback = callback
    clock = TP("clock", 0)
    fetcher = Fetches(consumer, [_message(PURCHASES, 3), _message(clock, 8),
                                 _message(PURCHASES, 4)])
    await _drain(consumer, fetcher)
    assert handed == [] and consumer.rewind == {PURCHASES: 3}


async def test_the_fetch_loop_counts_a_fetch_at_once_with_the_lean_monitor(
        app: ChurnwatchApp, consumer: TunedConsumer,
        handed: list[dict[TP, list[int]]]) -> None:
    monitor = install_monitor(app, CollectorRegistry())
    app.sensors.add(monitor)  # as the app's start does
    app.consumer_generation_id = 1
    Seeks(consumer, committed={PURCHASES: 3}, assigned={PURCHASES})
    await consumer.perform_seek()
    fetcher = Fetches(consumer, [_message(PURCHASES, 3), _message(PURCHASES, 4)])
    await _drain(consumer, fetcher)
    assert handed == [{PURCHASES: [3, 4]}]
    assert monitor.messages_received_total == 2 and monitor.tp_read_offsets == {PURCHASES: 4}


async def test_without_a_handler_the_fetch_loop_is_fausts(
        app: ChurnwatchApp, consumer: TunedConsumer) -> None:
    assert app.batch_handler is None
    seen: list[int] = []

    async def callback(message: Message) -> None:
        seen.append(message.offset)

    consumer.callback = callback
    fetcher = Fetches(consumer, [_message(PURCHASES, 0), _message(PURCHASES, 1)])
    await _drain(consumer, fetcher)
    assert seen == [0, 1]


# -- events, producers, batches, metrics ---------------------------------------


async def test_processing_makes_the_event_current_and_puts_back_the_one_before(
        app: ChurnwatchApp) -> None:
    first = faust_internals.event_for(app, _message(PURCHASES, 1))
    second = faust_internals.event_for(app, _message(CONTACTS, 2))
    assert first.message.offset == 1 and first.app is app
    assert current_event() is None
    with faust_internals.processing(first):
        assert current_event() is first
        with faust_internals.processing(second):
            assert current_event() is second
        assert current_event() is first
    assert current_event() is None


def test_fausts_current_event_is_still_a_context_variable() -> None:
    from faust import streams

    variable = streams._current_event  # noqa: SLF001 what processing() sets
    assert isinstance(variable, contextvars.ContextVar)


async def test_the_aiokafka_producer_under_fausts(app: ChurnwatchApp) -> None:
    with pytest.raises(Exception, match="not"):  # not started: Faust says so
        faust_internals.aiokafka_producer(app.producer)

    class Started:
        client = object()

        def _ensure_producer(self) -> object:
            return self.client

    started = Started()
    assert faust_internals.aiokafka_producer(started) is started.client  # type: ignore[arg-type]


def test_a_prometheus_monitors_metrics() -> None:
    metrics = FaustMetrics.create(CollectorRegistry(), "t")
    assert faust_internals.prometheus_metrics(PrometheusMonitor(metrics=metrics)) is metrics


async def test_install_monitor_keeps_fausts_metrics_under_the_lean_monitor(
        app: ChurnwatchApp) -> None:
    registry = CollectorRegistry()
    monitor = install_monitor(app, registry)
    assert app.monitor is monitor and isinstance(monitor, LeanPrometheusMonitor)
    assert isinstance(monitor, faust_internals.FetchSensor)
    monitor.on_messages_in(PURCHASES, [_message(PURCHASES, 4)])
    assert registry.get_sample_value("churnwatch_faust_messages_received_total") == 1


# -- table recovery, in bulk --------------------------------------------------

#: Faust's recovery code that :class:`BulkRecovery` restates (as RECOVERY_PINNED
#: is read: sha256 of the source, first 16 digits).
RECOVERY_PINNED = {"_slurp_changelogs": "7825c7e50f766d5a"}
CHANGELOG = TP("internals-test-t-changelog", 0)


def test_the_recovery_code_bulk_recovery_restates_is_the_code_it_was_written_against(
        ) -> None:
    from faust.tables.recovery import Recovery

    def digest(name: str) -> str:
        fun = getattr(Recovery, name)
        fun = getattr(fun, "fun", fun)  # a mode ServiceTask wraps its function
        return hashlib.sha256(inspect.getsource(fun).encode()).hexdigest()[:16]

    changed = {name for name, pinned in RECOVERY_PINNED.items() if digest(name) != pinned}
    assert not changed, (
        f"Faust changed Recovery.{sorted(changed)}: compare with BulkRecovery in "
        "stream_app/kafka/faust_internals.py, bring it in line, then update RECOVERY_PINNED")


def _changelog_event(app: ChurnwatchApp, tp: TP, offset: int, key: bytes,
                     value: bytes | None) -> Any:
    message = Message(tp.topic, tp.partition, offset, 0.0, 0, None, key, value, None,
                      len(key), len(value or b""), tp)
    return faust_internals.Event(app, key, value, None, message)


async def test_the_app_recovers_its_tables_in_bulk(app: ChurnwatchApp) -> None:
    assert isinstance(app.tables.recovery, faust_internals.BulkRecovery)


async def test_bulk_recovery_applies_every_event_in_fausts_batches_and_ends(
        app: ChurnwatchApp) -> None:
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=1,
                      recovery_buffer_size=3)
    recovery = app.tables.recovery
    assert isinstance(recovery, faust_internals.BulkRecovery)
    applied: list[list[int]] = []
    apply = table.apply_changelog_batch

    def spy(batch: list[Any]) -> None:
        applied.append([event.message.offset for event in batch])
        apply(batch)

    table.apply_changelog_batch = spy
    recovery.active_tps = {CHANGELOG}
    recovery.tp_to_table = {CHANGELOG: table}
    recovery.active_offsets[CHANGELOG] = -1
    recovery.active_highwaters[CHANGELOG] = 6
    recovery.in_recovery = True
    queue = app.tables.changelog_queue
    events = [_changelog_event(app, CHANGELOG, i, b"k%d" % (i % 4), b"v%d" % i)
              for i in range(6)]
    events.append(_changelog_event(app, CHANGELOG, 6, b"k0", None))  # a tombstone
    # Seen already (an offset not past the last one), and a partition
    # recovery does not know: both skipped.
    events.insert(3, _changelog_event(app, CHANGELOG, 1, b"k9", b"old"))
    events.insert(5, _changelog_event(app, TP("elsewhere", 0), 9, b"k8", b"x"))
    for event in events:
        queue.put_nowait(event)
    task = asyncio.ensure_future(recovery.slurp())
    try:
        await asyncio.wait_for(recovery.signal_recovery_end.wait(), timeout=5.0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Faust's buffer of three, then what was left once the changelog ended.
    assert applied == [[0, 1, 2], [3, 4, 5], [6]]
    assert dict(table.data) == {b"k1": b"v5", b"k2": b"v2", b"k3": b"v3"}
    assert recovery.active_offsets[CHANGELOG] == 6 and not recovery.in_recovery
    assert not recovery.need_recovery() and queue.empty()


def _recovering(app: ChurnwatchApp, highwater: int, **table_options: Any) -> Any:
    """The app's recovery, recovering CHANGELOG of a new table ``t`` up to ``highwater``."""
    table = app.Table("t", partitions=1, **{"key_type": bytes, "value_type": bytes,
                                            **table_options})
    recovery = app.tables.recovery
    recovery.active_tps = {CHANGELOG}
    recovery.tp_to_table = {CHANGELOG: table}
    recovery.active_offsets[CHANGELOG] = -1
    recovery.active_highwaters[CHANGELOG] = highwater
    recovery.in_recovery = True
    app.flow_control.resume()  # as Faust's recovery does before it reads the changelog
    return table


def _kv(tp: TP, offset: int, key: bytes, value: bytes | None) -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, None, key, value, None,
                   len(key), len(value or b""), tp)


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[list[Message]]:
    """Faust's ``getmany`` under the bulk consumer's: one listed fetch per call."""
    fetches: list[list[Message]] = []

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        for message in fetches.pop(0):
            yield message.tp, message

    monkeypatch.setattr(faust_internals.TunedConsumer, "getmany", getmany)
    return fetches


async def test_the_consumer_applies_a_recovering_changelog_fetch_in_bulk(
        app: ChurnwatchApp, fetched: list[list[Message]]) -> None:
    consumer = app.consumer
    assert isinstance(consumer, faust_internals.BulkRecoveryConsumer)
    table = _recovering(app, highwater=3)
    recovery = app.tables.recovery
    fetched.append([_kv(CHANGELOG, 0, b"a", b"1"), _kv(CHANGELOG, 1, b"b", b"2"),
                    _kv(PURCHASES, 7, b"c", b"{}"), _kv(CHANGELOG, 2, b"a", None),
                    _kv(CHANGELOG, 3, b"d", b"4")])
    handed_on: list[tuple[TP, int, dict[bytes, bytes]]] = []
    async for tp, message in consumer.getmany(timeout=1.0):
        # What came before a message handed on is in the store already.
        handed_on.append((tp, message.offset, dict(table.data)))
    assert handed_on == [(PURCHASES, 7, {b"a": b"1", b"b": b"2"})]
    assert dict(table.data) == {b"b": b"2", b"d": b"4"}
    assert recovery.active_offsets[CHANGELOG] == 3
    assert consumer._read_offset[CHANGELOG] == 3  # noqa: SLF001 Faust's read offsets
    assert not recovery.in_recovery and recovery.signal_recovery_end.is_set()


async def test_a_fetch_taken_while_the_flow_stopped_is_dropped(
        app: ChurnwatchApp, fetched: list[list[Message]]) -> None:
    table = _recovering(app, highwater=1)
    consumer = app.consumer
    fetched.append([_kv(CHANGELOG, 0, b"a", b"1"), _kv(CHANGELOG, 1, b"b", b"2")])
    consumer.stop_flow()
    assert [m async for _, m in consumer.getmany(timeout=1.0)] == []
    consumer.resume_flow()
    app.flow_control.suspend()  # a rebalance began
    fetched.append([_kv(CHANGELOG, 0, b"a", b"1")])
    assert [m async for _, m in consumer.getmany(timeout=1.0)] == []
    assert dict(table.data) == {} and app.tables.recovery.in_recovery


async def test_a_fetch_that_waited_out_a_rebalance_is_applied_in_its_new_generation(
        app: ChurnwatchApp, monkeypatch: pytest.MonkeyPatch) -> None:
    # Faust's getmany waits for the flow to resume before it fetches: a whole
    # rebalance may pass meanwhile, and what it then yields is the new
    # generation's recovery reading the changelog.  Dropped as of the old
    # generation, it would never come again (the consumer has read past it),
    # and the recovery would wait for it for ever.
    table = _recovering(app, highwater=1)
    app.consumer_generation_id = 1

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        app.consumer_generation_id = 2  # the rebalance, while Faust waited
        for message in (_kv(CHANGELOG, 0, b"a", b"1"), _kv(CHANGELOG, 1, b"b", b"2")):
            yield message.tp, message

    monkeypatch.setattr(faust_internals.TunedConsumer, "getmany", getmany)
    assert [m async for _, m in app.consumer.getmany(timeout=1.0)] == []
    assert dict(table.data) == {b"a": b"1", b"b": b"2"}
    assert not app.tables.recovery.in_recovery


async def test_a_table_with_a_changelog_callback_recovers_through_faust(
        app: ChurnwatchApp, fetched: list[list[Message]]) -> None:
    async def on_changelog_event(event: Any) -> None: ...

    table = _recovering(app, highwater=0, on_changelog_event=on_changelog_event)
    fetched.append([_kv(CHANGELOG, 0, b"a", b"1")])
    assert [m.offset async for _, m in app.consumer.getmany(timeout=1.0)] == [0]
    assert dict(table.data) == {}


async def test_a_rocksdb_tables_items_are_its_active_partitions_pairs(
        tmp_path: Path) -> None:
    settings = Settings().with_overrides(store="rocksdb://", broker_profile="local",
                                         data_dir=str(tmp_path), app_id="internals-rocks")
    app = ChurnwatchApp(settings.app_id, loop=asyncio.get_running_loop(),
                        **app_options(settings))
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    assert isinstance(table, faust_internals.RawItemsTable)
    mine, other = (TP("internals-rocks-t-changelog", p) for p in (0, 1))
    table.apply_changelog_batch([
        faust_internals._ChangelogRecord(_kv(tp, offset, key, b"v-" + key))  # noqa: SLF001 the bulk path's record
        for offset, (tp, key) in enumerate([(mine, b"b"), (mine, b"a"), (other, b"c")])])
    app.assignor.assigned_actives = lambda: {mine}  # type: ignore[method-assign]
    # Faust's store would list the same (its offset key left out).
    faust_items = list(super(faust_internals.RawItemsTable, table).items())
    assert list(table.items()) == faust_items == [(b"a", b"v-a"), (b"b", b"v-b")]
    assert sorted(table.keys()) == [b"a", b"b"]


async def test_put_many_writes_a_rocksdb_store_as_one_put_each_would(tmp_path: Path) -> None:
    settings = Settings().with_overrides(store="rocksdb://", broker_profile="local",
                                         data_dir=str(tmp_path), app_id="internals-put")
    app = ChurnwatchApp(settings.app_id, loop=asyncio.get_running_loop(),
                        **app_options(settings))
    bulk = app.Table("bulk", key_type=bytes, value_type=bytes, partitions=2)
    single = app.Table("single", key_type=bytes, value_type=bytes, partitions=2)
    items = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    faust_internals.put_many(bulk.data, 1, items)
    # Faust's own puts, one at a time, in partition 1's event context.
    event = faust_internals.event_for(app, _kv(TP("internals-put-single-changelog", 1), 0,
                                               b"x", b"x"))
    with faust_internals.processing(event):
        for key, value in items:
            single.data[key] = value
    for table in (bulk, single):
        store = table.data
        assert dict(store._db_for_partition(1).items()) == dict(items)  # noqa: SLF001 the partition's database
        assert dict(store._db_for_partition(0).items()) == {}  # noqa: SLF001 the partition's database
        assert {key: store._key_index[key] for key, _ in items} == {b"a": 1, b"b": 1, b"c": 1}  # noqa: SLF001 the store's key index
        assert [store[key] for key, _ in items] == [b"1", b"2", b"3"]


def test_put_many_falls_back_to_one_assignment_each() -> None:
    store: dict[bytes, bytes] = {}
    faust_internals.put_many(store, 0, [(b"a", b"1"), (b"b", b"2")])
    assert store == {b"a": b"1", b"b": b"2"}
