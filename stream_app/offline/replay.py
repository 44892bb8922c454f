"""``churnwatch replay``: historical events into the topics, in event-time order.

The worker judges silence and windows by the events' own time, so last
year's data replayed in order gives the alerts that living through it would
have given.  Files are mapped and validated by :mod:`stream_app.offline.mapping`;
this module only sends: keyed by customer id (one customer's events share a
partition, as the worker requires), as fast as the broker takes them, or
time-compressed (``speed`` seconds of event time per wall-clock second) to
watch alerts appear as they would have.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core.settings import Settings
from ..kafka import clients
from .mapping import MappedEvent
from .progress import Progress

#: Time-compressed replays sleep at most this long at once, so Ctrl-C and the
#: progress line stay responsive through quiet stretches of history.
MAX_SLEEP = 0.5


@dataclass
class Sent:
    events: int
    seconds: float
    #: (topic, partition) -> offset after the last message sent there: what
    #: the worker must have committed once it has processed everything.
    offsets: dict[tuple[str, int], int]


def send(s: Settings, events: Iterable[MappedEvent], total: int, progress: Progress,
         speed: float | None = None) -> Sent:
    """Send events in the order given; returns once the broker acknowledged them all."""
    producer = clients.producer(s, linger_ms=20, batch_size=256 * 1024, acks=1)
    offsets: dict[tuple[str, int], int] = {}
    failures: list[BaseException] = []

    def record(md: Any) -> None:
        key = (md.topic, md.partition)
        offsets[key] = max(offsets.get(key, 0), md.offset + 1)

    started = time.monotonic()
    first_ts: float | None = None
    sent = 0
    try:
        for e in events:
            if speed:
                first_ts = e.ts if first_ts is None else first_ts
                due = started + (e.ts - first_ts) / speed
                while (wait := due - time.monotonic()) > 0:
                    time.sleep(min(wait, MAX_SLEEP))
                    _show(progress, sent, total, e.ts, started)
            future = producer.send(s.topic_for(e.kind), key=e.customer_id.encode(),
                                   value=e.value)
            future.add_callback(record).add_errback(failures.append)
            sent += 1
            if sent % 2000 == 0 or sent == total:
                _show(progress, sent, total, e.ts, started)
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} events were not accepted by the broker "
                           f"(first: {failures[0]}); check CHURNWATCH_BROKER_URL")
    return Sent(sent, time.monotonic() - started, offsets)


def _show(progress: Progress, sent: int, total: int, ts: float, started: float) -> None:
    rate = sent / max(1e-6, time.monotonic() - started)
    day = time.strftime("%Y-%m-%d", time.gmtime(ts))
    progress.show(f"  replaying: {sent:,}/{total:,} events (event time {day}, {rate:,.0f}/s)",
                  100 * sent / max(1, total))
