"""Faust's aiokafka transport with one knob Faust does not expose.

Faust's worker consumer hard-codes ``fetch_max_wait_ms=1500``: a fetch may be
held by the broker that long even when data is waiting, which measured as a
p50 of 1.3 s from event to alert on the local broker.  This transport builds
the same consumer and then sets the wait from ``CHURNWATCH_FETCH_MAX_WAIT_MS``
before the consumer starts (aiokafka reads it when it creates its fetcher).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TransportT

#: Set from the settings by :func:`stream_app.faust_config.app_options`.
FETCH_MAX_WAIT_MS: int | None = None


class TunedConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if FETCH_MAX_WAIT_MS is not None:
            consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class TunedConsumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TunedTransport(driver.Transport):
    Consumer: ClassVar[Any] = TunedConsumer


class ChurnwatchApp(faust.App):
    """A Faust app whose consumer uses :class:`TunedTransport`.

    It also runs hooks *before* Faust stops its consumer: the processor holds
    acknowledgements until its writes are done, and Faust commits the
    acknowledged offsets as its consumer stops, so the processor must flush
    first (graceful shutdown finishes and commits in-flight work).
    """

    before_stop: list[Callable[[], Awaitable[None]]]

    def _new_transport(self) -> TransportT:
        return TunedTransport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        for hook in getattr(self, "before_stop", []):
            try:
                await hook()
            except Exception:
                self.log.exception("shutdown hook failed; its work is redone on restart")
        await super().on_stop()
