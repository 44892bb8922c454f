"""A partition's work in flight: each partition's containers are its own."""

from __future__ import annotations

from stream_app.engine.ordering import MergeQueue
from stream_app.engine.work import PartitionWork, Stats


def test_partitions_share_no_containers() -> None:
    a, b = PartitionWork(MergeQueue({"t": 0})), PartitionWork(MergeQueue({"t": 0}))
    a.offered["t"] = 4
    a.dirty.add("c1")
    a.acks.take("t", 4, None)
    a.alert_offsets.append(None)  # type: ignore[arg-type]
    assert (b.offered, b.dirty, len(b.acks), b.alert_offsets) == ({}, set(), 0, [])
    assert a.published is None and a.clock is None and a.done == 0


def test_stats_count_per_processor() -> None:
    one, two = Stats(), Stats()
    one.events["purchases"] += 1
    one.duplicates += 1
    assert two.events == {} and two.duplicates == 0
