"""The peer benchmark's quix-streams job: its per-customer fold and the topic-config defaults.

The job module imports quixstreams only when it runs, so these need no broker
and no quixstreams.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.peer import ratio
from benchmarks.quix_job import (
    AMOUNTS_KEPT,
    KAFKA_TOPIC_DEFAULTS,
    fold,
    with_defaults,
)

START = datetime(2025, 1, 1, tzinfo=UTC)


def at(days: float) -> str:
    return (START + timedelta(days=days)).isoformat()


def complaint(days: float) -> dict[str, Any]:
    return {"customer_id": "c1", "ts": at(days), "category": "delivery"}


def test_broker_configs_override_the_defaults_and_the_gaps_are_filled() -> None:
    got = with_defaults({"cleanup.policy": "compact"})
    assert got["cleanup.policy"] == "compact"
    assert got["retention.ms"] == "604800000"
    assert got["retention.bytes"] == "-1"
    assert got["min.insync.replicas"] == "1"
    assert with_defaults(None) == KAFKA_TOPIC_DEFAULTS
    assert with_defaults({}) is not KAFKA_TOPIC_DEFAULTS


def test_counts_each_kind_and_keeps_the_last_twelve_amounts() -> None:
    state = None
    for i in range(20):
        state, alert = fold(state, "purchases", {"amount": float(i), "ts": at(i)})
        assert alert is None
    state, _ = fold(state, "contacts", {"ts": at(21)})
    assert state["counts"] == {"purchases": 20, "contacts": 1}
    assert len(state["amounts"]) == AMOUNTS_KEPT
    assert state["amounts"] == [float(i) for i in range(20 - AMOUNTS_KEPT, 20)]


def test_the_third_complaint_in_thirty_days_raises_an_alert() -> None:
    state, a1 = fold(None, "complaints", complaint(0))
    state, a2 = fold(state, "complaints", complaint(10))
    state, a3 = fold(state, "complaints", complaint(20))
    assert a1 is None and a2 is None
    assert a3 is not None
    assert a3["customer_id"] == "c1" and a3["complaints"] == 3 and a3["ts"] == at(20)


def test_complaints_older_than_the_window_are_forgotten() -> None:
    state, _ = fold(None, "complaints", complaint(0))
    state, _ = fold(state, "complaints", complaint(10))
    state, alert = fold(state, "complaints", complaint(45))  # the first two aged out
    assert alert is None
    assert len(state["complaints"]) == 1
    state, alert = fold(state, "complaints", complaint(50))
    state, alert = fold(state, "complaints", complaint(55))
    assert alert is not None and alert["complaints"] == 3


def test_ratio_to_a_missing_ceiling_is_zero_not_an_error() -> None:
    assert ratio(5.0, 10.0) == 0.5
    assert ratio(5.0, 0.0) == 0.0
