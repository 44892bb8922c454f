"""Resuming: what memory holds is re-derived from the table, and a partition
starts from its checkpoint."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson

from stream_app.core.policy import Policy
from stream_app.core.state import DAY, CustomerState, Note, new_state
from stream_app.engine.clock import DueIndex
from stream_app.engine.ordering import MergeQueue
from stream_app.engine.partition_model import Models, model_key
from stream_app.engine.resume import (
    CHECKPOINT_PREFIX,
    Resumed,
    checkpoint_key,
    is_customer_key,
    rebuild,
    resume_partition,
    summarize,
)
from stream_app.engine.work import PartitionWork

from .test_state import LIST_ROWS, VERSION_1

FITTING = Policy(model=replace(Policy().model, fit=True))


def test_checkpoints_and_fits_are_not_customers() -> None:
    assert checkpoint_key(2) == CHECKPOINT_PREFIX + b"2"
    assert not is_customer_key(checkpoint_key(2)) and not is_customer_key(model_key(2))
    assert is_customer_key(b"C000001")


def test_rebuild_schedules_every_customer_and_counts_buyers_into_the_histogram() -> None:
    buyer, quiet = new_state("b"), new_state("q")
    buyer.partition, quiet.partition = 1, 0
    buyer.due_ts, quiet.due_ts = 50 * DAY, 60 * DAY
    buyer.first_purchase_ts, buyer.last_purchase_ts, buyer.purchases = DAY, 9 * DAY, 3
    models = Models(FITTING)
    fit = orjson.dumps({"params": {"r": 1.0, "alpha": 2.0, "s": 3.0, "beta": 4.0},
                        "fitted_at": 7.0, "customers": 5, "next_fit": 8.0})
    table = {b"b": buyer.to_bytes(), b"q": quiet.to_bytes(), model_key(1): fit,
             checkpoint_key(1): b"{}"}
    due = DueIndex()
    assert rebuild(table, due, models) == 2
    assert due.heaps == {1: [(50 * DAY, "b")], 0: [(60 * DAY, "q")]}
    assert len(models[1].cells) == 1 and 0 not in models
    assert models.policy_for(1).model.beta == 4.0 and models[1].fitted_at == 7.0


def test_a_partition_resumes_at_its_checkpoint_with_its_clock_and_published_alerts() -> None:
    table = {checkpoint_key(3): orjson.dumps({"alerts_offset": 17, "clock": 123.0})}
    asked: list[tuple[int, int]] = []

    async def resume(partition: int, checkpoint: int) -> Resumed:
        asked.append((partition, checkpoint))
        return Resumed({"a1"}, 20, {"purchases": 40})

    work = PartitionWork(MergeQueue({}))
    asyncio.run(resume_partition(table, 3, work, resume, lambda: 999.0))
    assert asked == [(3, 17)] and work.checkpoint == 17
    assert (work.clock, work.saved_clock, work.clock_wall) == (123.0, 123.0, 999.0)
    assert work.published == {"a1"} and work.offered == {"purchases": 39}


def _whole(raw: bytes) -> tuple[object, ...]:
    """The summary's fields read from the whole state, as the state reads them."""
    s = CustomerState.from_bytes(raw)
    bought = (None if s.first_purchase_ts is None
              else (s.repeat_days, s.first_purchase_ts, s.last_purchase_ts, s.spend,
                    s.purchases))
    return s.partition, s.due_ts, bought


def test_the_summary_reads_what_the_whole_state_holds() -> None:
    buyer = new_state("b")
    buyer.partition, buyer.due_ts, buyer.purchases, buyer.repeat_days = 2, 70 * DAY, 4, 3
    buyer.spend = 120.5
    buyer.first_purchase_ts, buyer.last_purchase_ts = DAY, 9 * DAY
    # Keys of the summarised runs inside a nested object and inside text: the
    # runs no longer parse, and the whole state is read instead.
    buyer.offsets = {"first_ts": 1, "bucket_idx": 2, "due_ts": 3, "customer_id": 4}
    buyer.notes = [Note(DAY, "c-1", "hostile", '"due_ts":1,"alerting":[]}', None)]
    quiet = new_state("q")
    quiet.partition, quiet.due_ts = 1, 5 * DAY
    for raw in (buyer.to_bytes(), quiet.to_bytes(), VERSION_1, LIST_ROWS):
        assert summarize(raw) == _whole(raw)
    assert summarize(quiet.to_bytes()) == (1, 5 * DAY, None)
    assert summarize(buyer.to_bytes()) == (2, 70 * DAY, (3, DAY, 9 * DAY, 120.5, 4))


def test_a_state_without_purchase_days_counts_one_per_purchase_after_the_first() -> None:
    d = orjson.loads(new_state("o").to_bytes())
    d.update(v=2, purchases=5, first_purchase_ts=DAY, last_purchase_ts=3 * DAY, spend=10.0)
    del d["repeat_days"]
    assert summarize(orjson.dumps(d))[2] == (4, DAY, 3 * DAY, 10.0, 5)
