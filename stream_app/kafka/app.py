"""The Faust app class, alone (topics, tables and agents are built beside it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust

from .faust_internals import BatchHandler, TunedApp


class ChurnwatchApp(TunedApp):
    """A Faust app on the tuned transport (:mod:`stream_app.kafka.faust_internals`).

    ``batch_handler`` takes the messages of ``batched_topics`` (see that
    module's docstring); the handler acknowledges each message through the
    consumer once its effects are written.

    The app also runs hooks *before* Faust stops its consumer: the processor
    holds acknowledgements until its writes are done, and Faust commits the
    acknowledged offsets as its consumer stops, so the processor must flush
    first (graceful shutdown finishes and commits in-flight work).
    """

    def __init__(self, id: str, *, fetch_max_wait_ms: int | None = None,
                 **options: Any) -> None:
        super().__init__(id, **options)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.before_stop: list[Callable[[], Awaitable[None]]] = []

    def take_batches(self, topics: list[faust.TopicT], handler: BatchHandler) -> None:
        """Subscribe to ``topics`` and hand their messages to ``handler`` a fetch at a time."""
        for topic in topics:
            self.topics.add(topic)
        self.batched_topics = frozenset(t for topic in topics for t in topic.topics)
        self.batch_handler = handler

    async def on_stop(self) -> None:
        for hook in self.before_stop:
            try:
                await hook()
            except Exception:
                self.log.exception("shutdown hook failed; its work is redone on restart")
        await super().on_stop()
