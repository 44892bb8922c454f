"""Dead letters as a partition sends them: counted with its sends, never a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from stream_app.core.records import DeadLetter
from stream_app.engine import deadletters
from stream_app.engine.deadletters import DEAD_LETTER_KEY_BYTES, DeadLetters, without_value
from stream_app.engine.ordering import MergeQueue
from stream_app.engine.work import PartitionWork


def test_a_rejected_message_leaves_a_send_for_the_flush_to_wait_for() -> None:
    sent: list[tuple[bytes | None, DeadLetter]] = []

    async def send(key: bytes | None, letter: DeadLetter) -> Awaitable[Any]:
        sent.append((key, letter))
        return asyncio.sleep(0)

    work = PartitionWork(MergeQueue({}))

    async def go() -> None:
        await DeadLetters(send).reject(work, "contacts", 2, 9, b"k" * 5000, b"{", "bad", "not_json")
        await asyncio.gather(*work.other_sends)

    asyncio.run(go())
    [(key, letter)] = sent
    assert key == b"k" * DEAD_LETTER_KEY_BYTES and len(work.other_sends) == 1
    assert (letter.topic, letter.partition, letter.offset, letter.reason) == (
        "contacts", 2, 9, "bad")


def test_a_letter_the_broker_keeps_refusing_is_given_up_without_raising(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadletters, "DEAD_LETTER_BACKOFF", 0.0)
    tries: list[DeadLetter] = []

    async def send(key: bytes | None, letter: DeadLetter) -> Awaitable[Any]:
        tries.append(letter)
        raise RuntimeError("broker says no")

    work = PartitionWork(MergeQueue({}))

    async def go() -> None:
        await DeadLetters(send).reject(work, "contacts", 0, 1, None, b"x" * 10, "why", "other")
        await asyncio.gather(*work.other_sends)  # does not raise

    asyncio.run(go())
    assert len(tries) == deadletters.DEAD_LETTER_TRIES
    assert tries[0].value and all(t.value == "" for t in tries[1:])  # retried without the copy


def test_a_letter_without_its_value_still_names_the_original() -> None:
    letter = deadletters.dead_letter("purchases", 1, 2, b"c1", b"abc", "why")
    bare = without_value(letter)
    assert bare.value == "" and bare.value_truncated
    assert (bare.value_size, bare.value_sha256) == (3, letter.value_sha256)
