"""A flush's state writes, in bulk: into the table's store, and to its changelog in batches.

Faust writes a table key through a chain built for one write at a time: the
store, then a changelog message that goes through Faust's send buffer as a
future of its own, whose delivery callback writes the changelog offset into
the store again.  A flush writes thousands of states at once, and on a large
customer base nearly every event ends in one of them, so that chain cost
more than serialising the state itself.

:class:`ChangelogWriter` keeps what recovery depends on and drops the rest:
each state goes into the store exactly as ``table[key] = value`` puts it
there (in one write batch per chunk: :func:`~.faust_internals.put_many`),
and to the changelog topic as the same message (same key, same raw value,
the same partition as the events that changed it), but appended to the
producer's record batches directly, one batch per 256 KiB.  Once the
batches are delivered, the store learns the partition's last changelog
offset once, as Faust's callback would have after each message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

from faust.types import TP

from .faust_internals import aiokafka_producer, put_many


class ChangelogWriter:
    """Writes states to a Faust table's store and changelog (see the module doc)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    async def __call__(self, partition: int,
                       items: Sequence[tuple[bytes, bytes]]) -> Awaitable[None]:
        """Write ``items`` (key, value) of ``partition``; returns once they are
        queued, with an awaitable that ends once the broker has them all.

        The caller runs in the partition's event context (the RocksDB store
        picks its database from the event being processed).
        """
        put_many(self.table.data, partition, items)
        topic = self.table.changelog_topic.get_topic_name()
        producer = aiokafka_producer(self.table.app.producer)
        sent: list[tuple[Awaitable[Any], int]] = []
        batch, count = producer.create_batch(), 0
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                sent.append((await producer.send_batch(batch, topic, partition=partition), count))
                batch, count = producer.create_batch(), 0
                # A fresh batch takes its first record whatever its size.
                batch.append(key=key, value=value, timestamp=None)
            count += 1
        if count:
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
        return self._delivered(TP(topic, partition), sent)

    async def _delivered(self, tp: TP, sent: list[tuple[Awaitable[Any], int]]) -> None:
        last = None
        for future, count in sent:
            metadata = await future
            last = metadata.offset + count - 1
        if last is not None:
            self.table.data.set_persisted_offset(tp, last)
