"""Assessing a customer: marked to be written, and due again when its state says so."""

from __future__ import annotations

from stream_app.core.policy import Policy
from stream_app.core.state import DAY, new_state
from stream_app.engine.assess import Assessor
from stream_app.engine.clock import DueIndex
from stream_app.engine.ordering import MergeQueue
from stream_app.engine.partition_model import Models
from stream_app.engine.work import PartitionWork


def test_an_assessed_customer_is_dirty_and_rescheduled_only_when_its_due_time_moves() -> None:
    due = DueIndex()
    assessor = Assessor(due, Models(Policy()), lambda: 1.8e9)
    work = PartitionWork(MergeQueue({}))
    state = new_state("c1")
    state.partition = 0
    state.purchases, state.first_purchase_ts = 1, 100 * DAY
    state.last_purchase_ts = state.last_ts = 100 * DAY
    assert assessor.assess(0, work, state, 100 * DAY) is None
    assert work.dirty == {"c1"}
    assert state.due_ts is not None  # silence will be worth a look then
    scheduled = list(due.heaps[0])
    assert scheduled == [(state.due_ts, "c1")]
    assessor.assess(0, work, state, 100 * DAY)  # nothing changed: not scheduled twice
    assert due.heaps.get(0, []) == scheduled
