"""Stand-ins for the processor's producer callbacks (unit tests have no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from stream_app.core.records import ChurnAlert, DeadLetter
from stream_app.engine.acks import Ack
from stream_app.engine.processing import Processor


def _confirmed(value: Any) -> asyncio.Future[Any]:
    done = asyncio.get_running_loop().create_future()
    done.set_result(value)
    return done


class Outputs:
    """Collects what the processor publishes; each send is 'acked' at once."""

    def __init__(self) -> None:
        self.alerts: list[ChurnAlert] = []
        self.dead: list[DeadLetter] = []

    async def send_alert(self, alert: ChurnAlert, partition: int) -> Awaitable[int]:
        self.alerts.append(alert)
        return _confirmed(len(self.alerts) - 1)

    async def send_dead(self, key: bytes | None, letter: DeadLetter) -> Awaitable[Any]:
        self.dead.append(letter)
        return _confirmed(None)


async def handle(proc: Processor, topic: str, partition: int, offset: int,
                 key: bytes | None, value: bytes | None, ingested: float | None = None,
                 ack: Ack | None = None) -> None:
    """Hand the processor one message, as a fetch of one."""
    await proc.handle_many(topic, partition, ((offset, key, value, ingested, ack),))
