"""Partition locks: one holder at a time, several always taken in ascending order."""

from __future__ import annotations

import asyncio

from stream_app.engine.locks import PartitionLocks


def test_a_partition_has_one_lock_and_holding_several_takes_them_all() -> None:
    locks = PartitionLocks()
    assert locks.lock(3) is locks.lock(3) and locks.lock(3) is not locks.lock(4)

    async def go() -> None:
        async with locks.hold([1, 3]):
            assert locks.lock(1).locked() and locks.lock(3).locked()
            assert not locks.lock(4).locked()
        assert not locks.lock(1).locked() and not locks.lock(3).locked()

    asyncio.run(go())


def test_holding_all_waits_for_every_holder_and_for_locks_made_meanwhile() -> None:
    locks = PartitionLocks()
    order: list[str] = []

    async def go() -> None:
        first = locks.lock(0)
        await first.acquire()
        holding = asyncio.create_task(_hold_all(locks, order))
        await asyncio.sleep(0)
        late = locks.lock(7)  # made while hold_all waits for partition 0
        await late.acquire()
        first.release()
        await asyncio.sleep(0)
        order.append("released 0")
        late.release()
        order.append("released 7")
        await holding

    asyncio.run(go())
    assert order == ["released 0", "released 7", "all held"]


async def _hold_all(locks: PartitionLocks, order: list[str]) -> None:
    async with locks.hold_all():
        assert all(lock.locked() for lock in locks.locks.values())
        order.append("all held")
