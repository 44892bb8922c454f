"""Stand-ins for the processor's producer callbacks (unit tests have no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from stream_app.core.records import ChurnAlert, DeadLetter


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
