"""Whether the broker is there, and whether it still holds what this worker knows.

Faust and aiokafka retry a lost broker forever: the worker kept answering
``/ready`` and logged about a hundred errors a second, and a broker that came
back empty (a restart of an in-memory broker, a cluster rebuilt under the
same address) was rejoined as if nothing had happened, with every new event
taken for one already applied.  This module gives the worker three answers:

* **Reachable?**  A probe asks the brokers for their metadata every
  :data:`PROBE_SECONDS`; ``/ready`` is not ready from the first failed probe
  on (see :data:`WATCH`), and after ``CHURNWATCH_BROKER_TIMEOUT_SECONDS``
  without an answer the worker exits non-zero, so an orchestrator restarts
  it.  A worker that cannot reach a broker does nothing useful, and its
  restart is cheap: its state is on disk or in the changelog.
* **Still the same data?**  The worker remembers the highest offset it has
  seen on each partition (input topics and the state changelog).  A topic
  that is gone, or that ends before such an offset, means the broker lost
  data this worker processed: its state and the broker no longer describe
  the same history, and no amount of retrying fixes that.  Checked on every
  reconnection and every :data:`CHECK_SECONDS`.
* **Before start-up**, :func:`preflight` waits for a broker (the same time
  limit), then compares the RocksDB store's changelog offsets with the
  changelog: a store ahead of it would otherwise fail deep inside recovery,
  or silently skip the new events.

Lost data is reported, never repaired automatically: the local store may be
the only copy of the customers' history left (a worker pointed at the wrong
cluster by mistake must not wipe it), so the operator decides to rebuild.

Offsets are compared with the high-water marks of fetches, never with
ListOffsets, which some Kafka-compatible brokers answer wrongly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ..core.settings import STATE_TABLE, Settings, env_name
from . import clients

log = logging.getLogger("churnwatch")

#: How often the worker asks the broker whether it is there.
PROBE_SECONDS = 2.0
#: A probe that has no answer by then counts as failed (a silent network
#: drops packets rather than refusing connections).
PROBE_TIMEOUT = 5.0
#: How often the broker's partitions are compared with what the worker knows.
CHECK_SECONDS = 30.0
#: A data-loss check gives up (inconclusive, not lost) after this long.
CHECK_TIMEOUT = 15.0
#: The exit status of a worker that gives up on the broker.
EXIT_CODE = 1
#: Where RocksDB keeps a table partition's last changelog offset (Faust's key).
_OFFSET_KEY = b"__faust\0offset__"


@dataclass
class Reachability:
    """The probe's verdicts over time: reachable, or unreachable since when.

    Times are ``time.monotonic()`` seconds.  Unreachable counts from the
    first failed probe after the last good one, so a worker that never
    reached its broker is held to the same limit as one that lost it.
    """

    timeout: float
    started: float = field(default_factory=time.monotonic)
    last_ok: float | None = None
    down_since: float | None = None
    error: str = ""

    def ok(self, now: float) -> float | None:
        """A probe succeeded; returns how long the broker had been unreachable, if it had."""
        was_down = None if self.down_since is None else now - self.down_since
        self.last_ok, self.down_since, self.error = now, None, ""
        return was_down

    def failed(self, now: float, error: str) -> None:
        if self.down_since is None:
            self.down_since = now if self.last_ok is not None else self.started
        self.error = error

    @property
    def reachable(self) -> bool:
        return self.last_ok is not None and self.down_since is None

    def unreachable_for(self, now: float) -> float:
        return 0.0 if self.down_since is None else now - self.down_since

    def expired(self, now: float) -> bool:
        return self.down_since is not None and now - self.down_since >= self.timeout

    def reason(self, now: float) -> str | None:
        """Why the worker is not ready as far as the broker goes (None: it is)."""
        if self.reachable:
            return None
        if self.down_since is None:
            return "the broker has not answered yet"
        return (f"no broker reachable for {self.unreachable_for(now):.0f} s ({self.error}); "
                f"the worker exits after {self.timeout:.0f} s "
                f"({env_name('broker_timeout_seconds')})")


#: The running worker's verdicts, read by ``/ready``; replaced by :func:`watch`.
WATCH = Reachability(timeout=float("inf"))


@dataclass(frozen=True)
class Lost:
    """A partition that holds less than this worker has seen on it."""

    topic: str
    partition: int
    #: The number of messages the worker knows the partition once held.
    known: int
    #: The partition's end now; None: the topic is gone.
    highwater: int | None

    def describe(self) -> str:
        where = f"{self.topic}[{self.partition}]"
        if self.highwater is None:
            return f"{where} is gone, where this worker had seen {self.known:,} messages"
        return f"{where} now ends at offset {self.highwater:,}, where this worker had seen " \
               f"{self.known:,} messages"


def _consumer(s: Settings, **options: Any) -> AIOKafkaConsumer:
    return clients.aio_consumer(s, group_id=None, enable_auto_commit=False,
                                request_timeout_ms=int(PROBE_TIMEOUT * 1000), **options)


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer in {PROBE_TIMEOUT:.0f} s"
    name, text = exc.__class__.__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


async def find_lost(s: Settings, known: Mapping[tuple[str, int], int],
                    timeout: float = CHECK_TIMEOUT) -> list[Lost]:
    """The partitions of ``known`` (topic, partition -> messages once held) that hold fewer now.

    Asks for the partitions' end offsets first (one request per broker),
    and confirms each one that seems to hold fewer by a fetch at its last
    known offset: a broker that still has it returns it with the high-water
    mark; one that does not returns nothing (with the mark) or answers out
    of range, and the consumer then fetches from the end.  The fetch
    decides, because some Kafka-compatible brokers answer end offsets
    wrongly.  A partition whose end cannot be learnt in ``timeout`` is not
    reported.  Raises :class:`KafkaError` (or :class:`TimeoutError`) when no
    broker answers, even with nothing to compare: it is also the start-up
    reachability check.
    """
    wanted = {key: n for key, n in known.items() if n > 0}
    consumer = _consumer(s, auto_offset_reset="latest", fetch_max_wait_ms=100,
                         max_partition_fetch_bytes=64 * 1024)
    try:
        await asyncio.wait_for(consumer.start(), PROBE_TIMEOUT)
        topics = await asyncio.wait_for(consumer.topics(), PROBE_TIMEOUT)
        lost = [Lost(t, p, n, None) for (t, p), n in sorted(wanted.items()) if t not in topics]
        present = {TopicPartition(t, p): n for (t, p), n in wanted.items() if t in topics}
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(list(present)), timeout)
        except (TimeoutError, KafkaError):
            ends = {}
        suspects = {tp: n for tp, n in present.items() if ends.get(tp, -1) < n}
        if suspects:
            consumer.assign(list(suspects))
            for tp, n in suspects.items():
                consumer.seek(tp, n - 1)
            deadline = time.monotonic() + timeout
            waiting = set(suspects)
            while waiting and time.monotonic() < deadline:
                with contextlib.suppress(KafkaError):  # e.g. a record over 64 KiB
                    await consumer.getmany(*waiting, timeout_ms=200)
                known_now = {tp for tp in waiting if consumer.highwater(tp) is not None}
                consumer.pause(*known_now)
                waiting -= known_now
            for tp, n in sorted(suspects.items()):
                highwater = consumer.highwater(tp)
                if highwater is not None and highwater < n:
                    lost.append(Lost(tp.topic, tp.partition, n, highwater))
        return lost
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def lost_data_message(s: Settings, lost: list[Lost], *, store_ahead: bool) -> str:
    """The one line that says the broker lost data, and what to do about it."""
    first = lost[0].describe() + (f"; {len(lost) - 1} more partitions likewise"
                                  if len(lost) > 1 else "")
    what = ("this worker's local store is ahead of the broker's changelog" if store_ahead
            else "the broker lost data this worker had processed")
    todo = (f"stop every worker, delete each one's data directory (here "
            f"{env_name('data_dir')}={s.data_dir}) and start them again: they rebuild their "
            "state from what the broker holds" if s.store == "rocksdb://" else
            "restart the worker: it rebuilds its state from what the broker holds")
    return (f"{what} ({first}): the broker was restarted empty or replaced, or its topics "
            f"were recreated, so this worker's state and the broker no longer describe the "
            f"same history. To start over from what the broker holds, {todo}.")


def stop_worker(message: str, **fields: Any) -> NoReturn:
    """Log one line and exit with :data:`EXIT_CODE` at once.

    Not a graceful stop: with the broker gone or wrong there is nothing to
    commit, and Faust's shutdown would wait on the broker.  Exiting now is
    what a crash does, which the worker survives by design (uncommitted work
    is redone on restart).
    """
    log.critical(message, extra={"fields": {"exit_code": EXIT_CODE, **fields}})
    for handler in (*log.handlers, *logging.getLogger().handlers):
        handler.flush()
    os._exit(EXIT_CODE)


def stored_offsets(tabledir: Path, partitions: Iterable[int]) -> dict[int, int]:
    """The RocksDB store's last changelog offset per partition (those it has)."""
    from rocksdict import AccessType, Rdict

    offsets = {}
    for partition in partitions:
        path = tabledir / f"{STATE_TABLE}-{partition}.db"
        if not (path / "CURRENT").is_file():
            continue
        try:
            db = Rdict(str(path), access_type=AccessType.read_only())
        except Exception:  # rocksdict raises plain Exception
            continue  # unreadable: Faust's own open of it says why
        try:
            raw = db.get(_OFFSET_KEY)
        finally:
            db.close()
        if raw is not None:
            offsets[partition] = int(raw)
    return offsets


async def _preflight(s: Settings, tabledir: Path) -> str | None:
    reach = Reachability(timeout=s.broker_timeout_seconds)
    stored = stored_offsets(tabledir, range(s.partitions)) if s.store == "rocksdb://" else {}
    known = {(s.state_changelog_topic, p): offset + 1 for p, offset in stored.items()}
    while True:
        try:
            lost = await find_lost(s, known)
        except (TimeoutError, KafkaError, OSError) as exc:
            now = time.monotonic()
            reach.failed(now, _describe_error(exc))
            if reach.expired(now):
                return timeout_message(s, reach, now, starting=True)
            await asyncio.sleep(1.0)
            continue
        return lost_data_message(s, lost, store_ahead=True) if lost else None


def preflight(s: Settings, tabledir: Path) -> None:
    """Before Faust starts: wait for a broker, and refuse a store ahead of the changelog.

    Exits with :data:`EXIT_CODE` and one line otherwise.  Faust would crash
    at once with a traceback on a missing broker, and on a store ahead of
    its changelog would either fail in recovery or take every new event for
    one it had already applied.  Runs on its own event loop, leaving the
    thread's current loop to Faust.
    """
    # The client library logs each failed attempt; the outcome is one line here.
    library = logging.getLogger("aiokafka")
    level = library.level
    library.setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    try:
        problem = loop.run_until_complete(_preflight(s, tabledir))
    finally:
        loop.close()
        library.setLevel(level)
    if problem is not None:
        stop_worker(problem)


def timeout_message(s: Settings, reach: Reachability, now: float, *,
                    starting: bool = False) -> str:
    return (f"no broker reachable at {s.broker_url} for {reach.unreachable_for(now):.0f} s "
            f"({reach.error}); {'not starting' if starting else 'stopping'} so that the "
            f"worker is restarted ({env_name('broker_timeout_seconds')}="
            f"{s.broker_timeout_seconds:g})")


class Watch:
    """The worker's probe loop (see the module doc); ``known`` supplies the offsets seen."""

    def __init__(self, s: Settings,
                 known: Callable[[], Mapping[tuple[str, int], int]]) -> None:
        self.settings = s
        self.known_now = known
        self.known: dict[tuple[str, int], int] = {}
        self.reach = Reachability(timeout=s.broker_timeout_seconds)
        self.checked = time.monotonic()
        self.probe: AIOKafkaConsumer | None = None

    def remember(self) -> None:
        for key, n in self.known_now().items():
            if n > self.known.get(key, 0):
                self.known[key] = n

    async def run(self, stopping: Callable[[], bool]) -> None:
        global WATCH
        WATCH = self.reach
        try:
            while not stopping():
                await self.step()
                await asyncio.sleep(PROBE_SECONDS)
        finally:
            await self._drop_probe()

    async def _drop_probe(self) -> None:
        probe, self.probe = self.probe, None
        if probe is not None:
            with contextlib.suppress(Exception):
                await probe.stop()

    async def step(self) -> None:
        """One probe, and what follows from it."""
        try:
            if self.probe is None:
                self.probe = _consumer(self.settings)
                try:
                    await asyncio.wait_for(self.probe.start(), PROBE_TIMEOUT)
                except BaseException:
                    await self._drop_probe()  # a failed start is not retried in place
                    raise
            await asyncio.wait_for(self.probe.topics(), PROBE_TIMEOUT)
        except (TimeoutError, KafkaError, OSError) as exc:
            now = time.monotonic()
            if self.reach.down_since is None:
                log.error("broker unreachable", extra={"fields": {
                    "broker": self.settings.broker_url, "error": _describe_error(exc)}})
            self.reach.failed(now, _describe_error(exc))
            if self.reach.expired(now):
                stop_worker(timeout_message(self.settings, self.reach, now),
                            broker=self.settings.broker_url)
            return
        now = time.monotonic()
        was_down = self.reach.ok(now)
        if was_down is not None:
            log.warning("broker reachable again", extra={"fields": {
                "broker": self.settings.broker_url, "unreachable_seconds": round(was_down, 1)}})
        self.remember()
        if was_down is not None or now - self.checked >= CHECK_SECONDS:
            self.checked = now
            try:
                lost = await find_lost(self.settings, self.known)
            except (TimeoutError, KafkaError, OSError):
                return  # the next probe says whether the broker went away
            if lost:
                stop_worker(lost_data_message(self.settings, lost, store_ahead=False),
                            partitions=[f"{x.topic}[{x.partition}]" for x in lost])

