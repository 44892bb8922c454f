"""The bulk state writer: what reaches the store and the changelog batches.

aiokafka's own batch builder encodes the records (a producer is built but
never started); only the submission of a finished batch is captured, and
the batches are decoded again as a consumer would read them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.memory_records import MemoryRecords
from faust.types import TP

from stream_app.kafka.changelog import ChangelogWriter
from stream_app.kafka.faust_internals import encoded_batch

TOPIC = "churnwatch-customer_to_state-changelog"


class Store(dict[bytes, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


@dataclass
class Broker:
    """Stands in for the producer's submission of batches: offsets from ``next_offset``."""

    producer: AIOKafkaProducer
    next_offset: int = 100
    batches: list[tuple[str, int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    pending: list[tuple[asyncio.Future[Any], int]] = field(default_factory=list)

    def _ensure_producer(self) -> Broker:
        return self

    def create_batch(self) -> Any:
        return self.producer.create_batch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        records = MemoryRecords(encoded_batch(batch)).next_batch()
        decoded = [(r.key, r.value) for r in records]
        self.batches.append((topic, partition, decoded))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((future, len(decoded)))
        return future

    def deliver(self) -> None:
        for future, count in self.pending:
            future.set_result(type("Metadata", (), {"offset": self.next_offset})())
            self.next_offset += count
        self.pending.clear()


@pytest.fixture
async def broker() -> Broker:
    # A small batch size, so that a flush of a few states spans several batches.
    return Broker(AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", max_batch_size=2048))


def table(broker: Broker) -> Any:
    app = type("App", (), {"producer": broker})()
    topic = type("Topic", (), {"get_topic_name": lambda self: TOPIC})()
    return type("Table", (), {"data": Store(), "changelog_topic": topic, "app": app})()


async def test_states_reach_the_store_and_the_changelog_in_order(broker: Broker) -> None:
    t = table(broker)
    items = [(f"C{i:03d}".encode(), (f"state {i} ".encode() * 40)) for i in range(12)]
    delivered = await ChangelogWriter(t)(2, items)
    assert dict(t.data) == dict(items)
    assert len(broker.batches) > 1  # several batches, each within the batch size
    assert {(topic, partition) for topic, partition, _ in broker.batches} == {(TOPIC, 2)}
    assert [kv for _, _, records in broker.batches for kv in records] == items
    # The changelog offset is recorded once the broker has every batch.
    assert t.data.persisted == {}
    broker.deliver()
    await delivered
    assert t.data.persisted == {TP(TOPIC, 2): 100 + len(items) - 1}


async def test_nothing_to_write_sends_nothing(broker: Broker) -> None:
    t = table(broker)
    await (await ChangelogWriter(t)(0, []))
    assert broker.batches == [] and t.data.persisted == {}


async def test_a_state_larger_than_a_batch_goes_out_alone_in_its_batch(broker: Broker) -> None:
    t = table(broker)
    items = [(b"C1", b"x" * 100), (b"C2", b"y" * 5000), (b"C3", b"z" * 100)]
    delivered = await ChangelogWriter(t)(0, items)
    assert [records for _, _, records in broker.batches] == [items[:1], items[1:2], items[2:]]
    broker.deliver()
    await delivered
    assert t.data.persisted == {TP(TOPIC, 0): 102}
