"""One coroutine at a time per partition.

The fetch loop, the clock agent's ticks and the shutdown flush run
concurrently, and an await in the middle of applying an event must not let
another event of the partition overtake it.  Several partitions are always
taken in ascending order, so two holders never wait for each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager


class PartitionLocks:
    __slots__ = ("locks",)

    def __init__(self) -> None:
        self.locks: dict[int, asyncio.Lock] = {}

    def lock(self, partition: int) -> asyncio.Lock:
        lock = self.locks.get(partition)
        if lock is None:
            lock = self.locks[partition] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def hold(self, partitions: Iterable[int]) -> AsyncIterator[None]:
        """Hold the partitions' locks (``partitions`` in ascending order)."""
        async with AsyncExitStack() as held:
            for partition in partitions:
                await held.enter_async_context(self.lock(partition))
            yield

    @asynccontextmanager
    async def hold_all(self) -> AsyncIterator[None]:
        """Hold every partition's lock, those created while waiting too."""
        held_partitions: set[int] = set()
        async with AsyncExitStack() as held:
            while missing := [p for p in self.locks if p not in held_partitions]:
                for partition in sorted(missing):
                    await held.enter_async_context(self.locks[partition])
                    held_partitions.add(partition)
            yield
