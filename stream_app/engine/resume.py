"""Where processing resumes after a (re)start or a rebalance.

What a worker keeps in memory is derived: :func:`rebuild` re-derives the
due index and the purchase models' histograms from the table, and
:func:`resume_partition` reads a partition's checkpoint before its first
event.  Alert ids are deterministic (the same events in the same order give
the same ids), so the alerts published after the checkpoint, read back from
the alerts topic, are not published twice when the events since the last
commit are applied again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..core.model import basket_bucket
from ..core.state import DAY
from . import metrics
from .clock import DueIndex
from .partition_model import MODEL_PREFIX, Models
from .work import PartitionWork

log = logging.getLogger("churnwatch")

#: Table keys that are not customers start with a zero byte: the
#: per-partition alert checkpoints and purchase-model fits.
CHECKPOINT_PREFIX = b"\x00checkpoint/"


def is_customer_key(key: bytes) -> bool:
    return not key.startswith(b"\x00")


def checkpoint_key(partition: int) -> bytes:
    return CHECKPOINT_PREFIX + str(partition).encode()


@dataclass(slots=True)
class Resumed:
    """Where a partition's processing resumes after a (re)start or a rebalance."""

    #: Alert ids on the alerts topic from the checkpoint on.
    published: set[str]
    #: The alerts topic's end offset (logged).
    alerts_end: int
    #: Input topic -> the first offset Kafka will deliver (the committed one).
    starts: dict[str, int] = field(default_factory=dict)


#: (partition, alerts checkpoint) -> what resuming this partition starts from.
Resume = Callable[[int, int], Awaitable[Resumed]]


async def nothing_published(partition: int, offset: int) -> Resumed:
    return Resumed(set(), offset)


#: What :func:`rebuild` needs of a state: (partition, due time, and for a
#: customer who bought: (purchase days after the first, first and last
#: purchase time, spend, purchases)).
Summary = tuple[int, float, tuple[int, float, float, float, int] | None]

#: The state's fields that the summary reads, by the run of the encoding
#: they sit in.  A state's bytes are its fields in declaration order (see
#: ``CustomerState.to_bytes``), so each run is a short stretch of them: the
#: head up to the offsets, the purchase counts, and the due time (the
#: field before the alerting state).
_HEAD_END = b',"offsets":'
_HEAD_KEYS = ("customer_id", "partition")
_PURCHASES = (b'"first_ts":', b',"bucket_idx":')
_PURCHASES_KEYS = ("first_ts", "last_ts", "purchases", "spend", "first_purchase_ts",
                   "last_purchase_ts", "repeat_days")
_DUE = b'"due_ts":'
_AFTER_DUE = b',"alerting":'


def _fields(run: bytes, keys: tuple[str, ...]) -> dict[str, Any]:
    """``run`` parsed as one object, which must hold exactly ``keys`` in order.

    A key found inside a string cannot be (every quote in one is escaped);
    found inside a nested object (the offsets' topic names), it cuts the run
    out of balance or yields other keys: either raises ValueError, and the
    caller parses the whole state.
    """
    parsed = orjson.loads(run)
    if not isinstance(parsed, dict) or tuple(parsed) != keys:
        raise ValueError("not the expected fields")
    return parsed


def summarize(raw: bytes) -> Summary:
    """What the due index and the purchase histogram need of an encoded state.

    Parsing a whole state costs several times what the few fields needed
    here do, and a restarted worker reads every state in the table once:
    the summary parses only the short runs of the encoding that hold them.
    A state in another layout (an earlier version's, one whose runs cannot
    be cut out) is parsed whole; either way the values are the state's own.
    """
    try:
        head_end = raw.find(_HEAD_END)
        start = raw.find(_PURCHASES[0], head_end)
        end = raw.find(_PURCHASES[1], start)
        due_at = raw.rfind(_DUE)
        due_end = raw.find(_AFTER_DUE, due_at)
        if min(head_end, start, end, due_at, due_end) < 0:
            raise ValueError("not in the expected layout")
        partition = _fields(raw[:head_end] + b"}", _HEAD_KEYS)["partition"]
        bought = _fields(b"{" + raw[start:end] + b"}", _PURCHASES_KEYS)
        # The due time alone: a number or null, or the slice is not one.
        due = orjson.loads(raw[due_at + len(_DUE):due_end])
        if due is not None and not isinstance(due, (int, float)):
            raise ValueError("not a due time")
        purchases, repeat = bought["purchases"], bought["repeat_days"]
        first, last = bought["first_purchase_ts"], bought["last_purchase_ts"]
        spend = bought["spend"]
    except (ValueError, KeyError, TypeError):
        d = orjson.loads(raw)
        partition, due, purchases = d["partition"], d["due_ts"], d["purchases"]
        first, last = d["first_purchase_ts"], d["last_purchase_ts"]
        repeat, spend = d.get("repeat_days"), d["spend"]
    if first is None:
        return partition, due, None
    if repeat is None:
        # Before version 3 purchase days were not counted (as the state reads).
        repeat = max(0, purchases - 1)
    return partition, due, (repeat, first, last, spend, purchases)


def rebuild(table: MutableMapping[bytes, bytes], due: DueIndex, models: Models) -> int:
    """Re-derive the due index and the purchase models from the table; the customers.

    The partitions' clocks are not taken from the states (a state may be
    ahead of the committed offsets: written, but the commit did not happen
    before a crash) but from the checkpoints, when each partition resumes
    (see :func:`resume_partition`).
    """
    count = 0
    fits: dict[int, bytes] = {}
    fitting = models.policy.model.fit
    # Streamed, not listed: a list of every state would hold all of them in
    # memory at once.
    for key, raw in table.items():
        if not is_customer_key(key):
            if key.startswith(MODEL_PREFIX):
                fits[int(key[len(MODEL_PREFIX):])] = raw
            continue
        count += 1
        partition, due_ts, bought = summarize(raw)
        due.schedule(partition, key.decode(), due_ts)
        if bought is not None and fitting:
            repeat, first, last, spend, purchases = bought
            models.model(partition).cells.add(repeat, first / DAY, last / DAY,
                                              basket_bucket(spend, purchases))
    for partition, raw in fits.items():
        models.model(partition).restore(raw, models.policy)
    metrics.CUSTOMERS.set(count)
    return count


async def resume_partition(table: MutableMapping[bytes, bytes], partition: int,
                           work: PartitionWork, resume: Resume,
                           wall: Callable[[], float]) -> None:
    """Read the partition's checkpoint and what was published after it."""
    raw = table.get(checkpoint_key(partition))
    saved = orjson.loads(raw) if raw else {}
    work.checkpoint = int(saved.get("alerts_offset", 0))
    # The clock over the events committed so far, so that lateness after a
    # restart is judged as it would have been without one.
    clock = saved.get("clock")
    if clock is not None and work.clock is None:
        work.clock = work.saved_clock = float(clock)
        work.clock_wall = wall()
    resumed = await resume(partition, work.checkpoint)
    work.published = resumed.published
    # Until a topic delivers, its backlog counts from where Kafka resumes.
    for topic, start in resumed.starts.items():
        work.offered.setdefault(topic, start - 1)
    log.info("partition ready", extra={"fields": {
        "partition": partition, "alerts_checkpoint": work.checkpoint,
        "alerts_end": resumed.alerts_end, "resumes_at": resumed.starts,
        "published_after_checkpoint": len(work.published)}})
