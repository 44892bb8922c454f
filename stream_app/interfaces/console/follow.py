"""Follow the topics from their beginning into the console's memory.

No consumer group and no committed offsets: every console process reads
every partition of ``churn-alerts`` and ``feedback`` from offset 0 (and the
complaints and contacts topics, for the customers' words), so each one holds
the whole cluster's picture and a restart rebuilds it from the topics.
Messages are taken as the worker takes them: feedback, complaints and
contacts through :func:`stream_app.core.decoding.decode` (what the worker
would refuse is ignored here too); alerts as published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import TopicPartition

from ...core.decoding import Decoded, decode
from ...core.records import asdict
from ...core.settings import Settings
from ...kafka import clients
from .index import AlertIndex
from .words import Words

log = logging.getLogger(__name__)


class Follower:
    def __init__(self, settings: Settings, index: AlertIndex, words: Words,
                 changed: Callable[[], None]) -> None:
        self.settings, self.index, self.words, self.changed = settings, index, words, changed
        s = settings
        self.kinds = {s.topic_alerts: "alerts", s.topic_feedback: "feedback",
                      s.topic_complaints: "complaints", s.topic_contacts: "contacts"}
        #: Read everything that was on the topics when the console started.
        self.caught_up = False
        #: Why the topics cannot be read right now (shown on every page), or None.
        self.problem: str | None = None

    def take(self, topic: str, key: bytes | None, value: bytes | None) -> bool:
        kind = self.kinds[topic]
        if kind == "alerts":
            try:
                alert = orjson.loads(value or b"")
            except orjson.JSONDecodeError:
                return False
            return isinstance(alert, dict) and self.index.add_alert(alert)
        result = decode(kind, key, value)
        if not isinstance(result, Decoded):
            return False
        event = asdict(result.record)
        if kind == "feedback":
            return self.index.add_feedback(event)
        return self.words.add(kind, event)

    async def run(self) -> None:
        """Follow until cancelled; broker trouble is reported and retried, never raised."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any broker or metadata failure: say so, retry
                self.problem = f"cannot read the topics ({type(exc).__name__}: {exc}); retrying"
                log.warning("console follower: %s", self.problem)
                await asyncio.sleep(3.0)

    async def _follow(self) -> None:
        consumer = clients.aio_consumer(self.settings, enable_auto_commit=False, group_id=None,
                                        auto_offset_reset="earliest",
                                        client_id="churnwatch-console")
        await consumer.start()
        try:
            parts = await self._partitions(consumer)
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends: dict[Any, int] = await consumer.end_offsets(parts)
            self.problem = None
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                moved = False
                for tp, messages in batch.items():
                    for m in messages:
                        moved = self.take(tp.topic, m.key, m.value) or moved
                if not self.caught_up:
                    done = [await consumer.position(tp) >= end for tp, end in ends.items()]
                    if all(done):
                        self.caught_up = True
                        moved = True
                if moved:
                    self.changed()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _partitions(self, consumer: Any) -> list[TopicPartition]:
        """Every partition of the four topics, waiting for any that do not exist yet."""
        while True:
            await consumer.topics()  # fetches the cluster's metadata
            found = {t: consumer.partitions_for_topic(t) for t in self.kinds}
            missing = sorted(t for t, p in found.items() if not p)
            if not missing:
                return [TopicPartition(t, p) for t, ps in found.items() for p in sorted(ps)]
            self.problem = (f"waiting for the topics {', '.join(missing)} "
                            "(start a worker, or run churnwatch topics)")
            await asyncio.sleep(2.0)
