"""What a partition has in flight between two flushes, and the processor's counts.

All of it is derived: a rebalance drops it, and Kafka delivers again
everything it stood for from the committed offsets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from ..core.decoding import Decoded
from .acks import AckLedger
from .ordering import MergeQueue


@dataclass(slots=True)
class Stats:
    """Per-processor counts (the Prometheus metrics are process-wide)."""

    events: Counter[str] = field(default_factory=Counter)
    #: Redelivered messages (an offset already applied) and events sent again
    #: (an event id already applied, at another offset).
    duplicates: int = 0
    duplicate_events: int = 0
    suppressed: int = 0
    #: Messages handed in before a reset, dropped (delivered again after it).
    before_reset: int = 0


@dataclass(slots=True)
class Queued:
    """A decoded event waiting in the merge queue for its turn."""

    topic: str
    offset: int
    decoded: Decoded
    ingested: float | None
    #: The message as it came (for its dead letter, should it be refused at release).
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class PartitionWork:
    """What a partition has in flight between two flushes."""

    queue: MergeQueue[Queued]
    #: Topic -> offset of the last message handed in (for the backlog check).
    offered: dict[str, int] = field(default_factory=dict)
    #: Event time of the latest applied event, and the wall time it was applied.
    clock: float | None = None
    clock_wall: float = 0.0
    dirty: set[str] = field(default_factory=set)
    #: The acknowledgements not given yet (see :mod:`stream_app.engine.acks`).
    acks: AckLedger = field(default_factory=AckLedger)
    #: Events done since the last flush (applied or dead-lettered).
    done: int = 0
    alert_offsets: list[Awaitable[int]] = field(default_factory=list)
    other_sends: list[Awaitable[Any]] = field(default_factory=list)
    #: Alert ids already on the alerts topic but maybe not in the states yet.
    published: set[str] | None = None
    checkpoint: int = 0
    #: The clock as the last checkpoint written holds it.
    saved_clock: float | None = None
    last_flush: float = 0.0
