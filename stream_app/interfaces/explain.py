"""``churnwatch explain CUSTOMER_ID``: a customer's state, signals and score.

Reads the customer's latest state from the state table's changelog topic, so
it needs only the broker, not a running worker, and re-scores it with the
current policy at the customer's own latest event time (or ``--at``); the
scoring and its wording are :mod:`stream_app.core.report`.
"""

from __future__ import annotations

from datetime import datetime

import orjson
from kafka import TopicPartition

from ..core.report import describe
from ..core.settings import Settings
from ..core.state import CustomerState
from ..kafka import clients

#: ``describe`` is the pure report's text (:mod:`stream_app.core.report`),
#: named here too because it is what ``churnwatch explain`` prints.
__all__ = ["describe", "latest_state", "parse_at"]


def latest_state(s: Settings, customer_id: str, timeout_ms: int = 3000
                 ) -> CustomerState | None:
    """The last changelog value for the customer (None if never seen)."""
    from kafka.errors import KafkaError

    from ..kafka import admin

    wanted = {customer_id.encode(), orjson.dumps(customer_id)}
    try:
        consumer = clients.consumer(s, enable_auto_commit=False, consumer_timeout_ms=timeout_ms,
                                    bootstrap_timeout_ms=int(admin.TOOL_TIMEOUT * 1000))
    except KafkaError as exc:  # no broker answered: say so, as the other tools do
        raise admin.unreachable(s, admin.TOOL_TIMEOUT) from exc
    try:
        parts = [TopicPartition(s.state_changelog_topic, p) for p in range(s.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        found: bytes | None = None
        for m in consumer:
            if m.key in wanted:
                found = m.value
        return CustomerState.from_bytes(found) if found else None
    finally:
        consumer.close()


def parse_at(text: str) -> float:
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"--at {text!r}: give a UTC offset, e.g. 2025-06-01T00:00:00Z")
    return dt.timestamp()
