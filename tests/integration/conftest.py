"""A real local broker and a real worker process, shared by the integration tests.

Started once per session (the worker needs a few seconds to join its group);
each test uses its own customer ids, so tests don't see each other's alerts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner.default import murmur2

from stream_app.core.settings import Settings, kafka_client_options
from stream_app.kafka.admin import create_topics
from stream_app.kafka.broker import LocalBroker, free_port
from stream_app.offline.harness import running_worker
from stream_app.offline.synthetic import Population

#: Upper bound on waiting for an expected output; the tests poll, never sleep.
WAIT = 120.0


class Cluster:
    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks=1)

    def send(self, topic: str, key: bytes | None, value: dict[str, Any] | bytes) -> None:
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        self.producer.send(topic, key=key, value=raw)

    def flush(self) -> None:
        self.producer.flush()

    def wait_processed(self, topic: str, key: bytes, value: dict[str, Any],
                       timeout: float = WAIT) -> None:
        """Send one message, then wait until the worker has committed past it.

        Committed offsets of the worker's group are the honest progress signal
        (the local broker's end offsets are not), and Faust commits an offset
        only once the event has been processed.
        """
        md = self.producer.send(topic, key=key, value=orjson.dumps(value)).get(timeout=30)
        tp = TopicPartition(topic, md.partition)
        probe = KafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers,
                              group_id=self.settings.app_id, enable_auto_commit=False)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if (probe.committed(tp) or 0) > md.offset:
                    return
                time.sleep(0.2)
        finally:
            probe.close()
        raise AssertionError(f"the worker did not process {topic}@{md.offset} in {timeout} s")

    def read_until(self, topic: str, done: Callable[[list[dict[str, Any]]], bool],
                   timeout: float = WAIT) -> list[dict[str, Any]]:
        """All records of ``topic`` once ``done(records)`` holds; fails after ``timeout``."""
        consumer = KafkaConsumer(topic, bootstrap_servers=self.settings.bootstrap_servers,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 consumer_timeout_ms=500)
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                records.extend(orjson.loads(m.value) for m in consumer)
                if done(records):
                    return records
        finally:
            consumer.close()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise AssertionError(f"no expected output on {topic} within {timeout:.0f} s; "
                             f"got {len(records)} records. Worker log tail:\n{tail}")


#: (topic, partition) -> the offset after the last message put there.
Ends = dict[tuple[str, int], int]


def _record_ends(ends: Ends, sent: list[Any]) -> None:
    """Wait for each send's acknowledgement and move its partition's end past it."""
    for fut in sent:
        md = fut.get(timeout=60)
        ends[(md.topic, md.partition)] = max(ends.get((md.topic, md.partition), 0),
                                             md.offset + 1)


def produce_population(s: Settings, pop: Population) -> Ends:
    """Put a synthetic population's events on the broker; the end offset per partition."""
    producer = KafkaProducer(**kafka_client_options(s), acks=1, linger_ms=20)
    sent = [producer.send(e.topic, key=e.customer_id.encode(), value=orjson.dumps(e.value))
            for e in pop.events]
    ends: Ends = {}
    _record_ends(ends, sent)
    producer.close()
    return ends


def produce_in_merge_order(s: Settings, pop: Population) -> Ends:
    """Put the events on the broker so that the broker holds, at any moment, all
    of them up to some time, and beyond it at most one topic's of each partition.

    A worker merges a partition's topics by event time, and judges a topic
    with nothing waiting on the broker to be caught up: that judgement is
    true here at every moment, so a worker reading live applies the events
    in the order one reading them all afterwards does.  The events are sent
    in time order, and whenever a partition's next event is of another topic
    than the ones in flight for it, everything in flight is acknowledged
    first.  The end offset per partition.
    """
    producer = KafkaProducer(**kafka_client_options(s), acks=1, linger_ms=2)
    partitions = {t: len(producer.partitions_for(t)) for t in {e.topic for e in pop.events}}
    ends: Ends = {}
    in_flight: list[Any] = []
    topic_of: dict[int, str] = {}

    def acknowledged() -> None:
        producer.flush()
        _record_ends(ends, in_flight)
        in_flight.clear()
        topic_of.clear()

    for e in sorted(pop.events, key=lambda e: e.ts):
        key = e.customer_id.encode()
        # The producer's own partitioner, as Kafka's Java client has it.
        partition = (murmur2(key) & 0x7FFFFFFF) % partitions[e.topic]
        if topic_of.setdefault(partition, e.topic) != e.topic:
            acknowledged()
            topic_of[partition] = e.topic
        in_flight.append(producer.send(e.topic, key=key, value=orjson.dumps(e.value)))
    acknowledged()
    producer.close()
    return ends


@contextmanager
def start_cluster(work: Path, app_id: str = "churnwatch-it") -> Iterator[Cluster]:
    """A broker and a worker of their own, in ``work``, stopped on the way out."""
    with LocalBroker(log_path=work / "broker.log") as broker:
        settings = Settings().with_overrides(
            broker_url=broker.url, broker_profile="local", store="rocksdb://",
            data_dir=str(work / "state"), web_port=free_port(), tick_seconds=1.0,
            app_id=app_id, log_level="info",
            policy_file=str(Path(__file__).with_name("policy.toml")),
        )
        create_topics(settings)
        with running_worker(settings, work / "worker.log") as worker:
            c = Cluster(settings, work / "worker.log")
            yield c
            c.producer.close()
            assert worker.poll() is None, "the worker died during the tests"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c
