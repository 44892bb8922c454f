"""Dead letters: what becomes of a message that cannot be applied.

Bad input goes to the dead-letters topic with the reason, so nothing is
lost silently and nothing stops the worker.  A letter is always small
enough to send, and one that still cannot be sent is retried and then
skipped: a message that failed at every restart would be a crash loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.alerting import iso
from ..core.decoding import MAX_EVENT_BYTES, REASON_CODES
from ..core.records import DeadLetter, asdict
from . import metrics
from .work import PartitionWork

log = logging.getLogger("churnwatch")

SendDeadLetter = Callable[[bytes | None, DeadLetter], Awaitable[Awaitable[Any]]]

#: The most of a message's value (and key) a dead letter copies.  As much as
#: an event may be, so every message that could have been an event is kept
#: whole; JSON escaping (six bytes for a control character) and base64 keep
#: the letter well under a broker's default message size limit (1 MB).
DEAD_LETTER_VALUE_BYTES = MAX_EVENT_BYTES
DEAD_LETTER_KEY_BYTES = 1024
#: Tries to send a dead letter, and the pause before each retry (seconds).
DEAD_LETTER_TRIES = 4
DEAD_LETTER_BACKOFF = 0.5


def _text(raw: bytes, cut: bool) -> tuple[str, str]:
    """The bytes as text when they are UTF-8, else base64.

    A prefix (``cut``) of UTF-8 text may end inside a character: that
    character is dropped rather than the whole copy turned into base64.
    """
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if cut and exc.end == len(raw) and exc.reason == "unexpected end of data":
            return raw[:exc.start].decode("utf-8"), "utf-8"
        return base64.b64encode(raw).decode("ascii"), "base64"


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, reason: str, code: str = "other") -> DeadLetter:
    """A dead letter that is always small enough to send.

    The value is copied whole up to :data:`DEAD_LETTER_VALUE_BYTES`, else its
    prefix; the digest and the size name the original, which stays at
    ``topic``/``partition``/``offset`` for as long as the topic keeps it.
    """
    raw = value or b""
    copied = raw[:DEAD_LETTER_VALUE_BYTES]
    text, encoding = _text(copied, cut=len(copied) < len(raw))
    shown_key = None
    if key is not None:
        shown_key = key[:DEAD_LETTER_KEY_BYTES].decode("utf-8", "replace")
    return DeadLetter(
        topic=topic, partition=partition, offset=offset, reason=reason,
        key=shown_key, value=text, value_encoding=encoding, received_at=iso(time.time()),
        reason_code=code if code in REASON_CODES else "other", value_size=len(raw),
        value_sha256=hashlib.sha256(raw).hexdigest(), value_truncated=len(copied) < len(raw),
    )


def without_value(letter: DeadLetter) -> DeadLetter:
    """The letter with no copy of the value: what is sent when the full one cannot be."""
    fields = asdict(letter)
    fields.update(value="", value_encoding="utf-8", value_truncated=letter.value_size > 0)
    return DeadLetter(**fields)


class DeadLetters:
    """Sends a partition's dead letters; the flush waits for them with its alerts."""

    __slots__ = ("send",)

    def __init__(self, send: SendDeadLetter) -> None:
        self.send = send

    async def reject(self, work: PartitionWork, topic: str, partition: int, offset: int,
                     key: bytes | None, value: bytes | None, reason: str, code: str) -> None:
        letter = dead_letter(topic, partition, offset, key, value, reason, code)
        metrics.DEAD_LETTERS.labels(topic, letter.reason_code).inc()
        log.warning("dead-lettered", extra={"fields": {
            "topic": topic, "partition": partition, "offset": offset,
            "reason_code": letter.reason_code, "reason": reason}})
        if key is not None:
            key = key[:DEAD_LETTER_KEY_BYTES]
        work.other_sends.append(await self._send(key, letter))

    async def _send(self, key: bytes | None, letter: DeadLetter) -> Awaitable[None]:
        """Hand a dead letter to the producer; what it returns never raises.

        A failure (now, or when the broker answers) is logged, counted and
        retried, without the copy of the value after the first (its size is
        the likely cause); after the last try the message is skipped with a
        metric and an error line naming where it still is.
        """
        try:
            sent = await self.send(key, letter)
        except Exception as exc:
            _failed(letter, exc, 1)
            return asyncio.ensure_future(self._retry(key, letter))
        return asyncio.ensure_future(self._confirm(sent, key, letter))

    async def _confirm(self, sent: Awaitable[Any], key: bytes | None,
                       letter: DeadLetter) -> None:
        try:
            await sent
        except Exception as exc:
            _failed(letter, exc, 1)
            await self._retry(key, letter)

    async def _retry(self, key: bytes | None, letter: DeadLetter) -> None:
        letter = without_value(letter)
        for attempt in range(2, DEAD_LETTER_TRIES + 1):
            await asyncio.sleep(DEAD_LETTER_BACKOFF * 2 ** (attempt - 2))
            try:
                await (await self.send(key, letter))
                return
            except Exception as exc:
                _failed(letter, exc, attempt)
        metrics.DEAD_LETTERS_UNSENT.labels(letter.topic).inc()
        log.error("dead letter not sent; the message is skipped", extra={"fields": {
            "topic": letter.topic, "partition": letter.partition, "offset": letter.offset,
            "reason_code": letter.reason_code, "tries": DEAD_LETTER_TRIES}})


def _failed(letter: DeadLetter, exc: Exception, attempt: int) -> None:
    metrics.DEAD_LETTER_SEND_FAILURES.labels(letter.topic).inc()
    log.warning("could not send a dead letter", extra={"fields": {
        "topic": letter.topic, "partition": letter.partition, "offset": letter.offset,
        "attempt": attempt, "of": DEAD_LETTER_TRIES,
        "error": f"{type(exc).__name__}: {exc}"[:500]}})
