"""A partition's purchase model: its fit kept in the table, refits in event time."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import orjson
import pytest

from stream_app.core.model import BASKET_STEP, Cells, ParetoNBD
from stream_app.core.policy import Policy
from stream_app.core.state import DAY, new_state
from stream_app.engine.partition_model import (
    MODEL_PREFIX,
    Models,
    PartitionModel,
    model_key,
    purchase_cell,
    read_fit,
    with_params,
)

FITTING = Policy(model=replace(Policy().model, fit=True, min_customers=3, refit_days=30.0))


def test_a_fit_record_reads_back_as_the_same_policy() -> None:
    policy = with_params(Policy(), ParetoNBD(r=0.7, alpha=12.0, s=0.9, beta=40.0), 35.5)
    assert policy.model.typical_basket == 35.5
    pm = PartitionModel(Cells(), policy, fitted_at=5.0, customers=9, next_fit=7.0)
    again, saved = read_fit(pm.record(), Policy())
    assert again == policy and (saved["fitted_at"], saved["customers"]) == (5.0, 9)
    # A record written before the typical basket was kept reads as "not known".
    older = orjson.dumps({k: v for k, v in orjson.loads(pm.record()).items()
                          if k != "typical_basket"})
    assert read_fit(older, Policy())[0].model.typical_basket == 0.0
    restored = PartitionModel(Cells(), Policy())
    restored.restore(pm.record(), Policy())
    assert (restored.policy, restored.fitted_at, restored.next_fit, restored.customers) == (
        policy, 5.0, 7.0, 9)
    assert read_fit(None, Policy()) == (Policy(), {})
    assert model_key(3) == MODEL_PREFIX + b"3"


def test_a_customer_without_two_purchase_times_has_no_cell() -> None:
    state = new_state("c1")
    assert purchase_cell(state) is None
    state.first_purchase_ts, state.last_purchase_ts = 10 * DAY, 40 * DAY
    state.repeat_days = 2
    assert purchase_cell(state) == (2, 10.0, 40.0, None)  # no spend: no basket
    state.purchases, state.spend = 3, 90.0
    assert purchase_cell(state) == (2, 10.0, 40.0, round(math.log(30.0) / BASKET_STEP))


def test_each_partition_gets_its_model_and_the_policy_falls_back_to_the_configured() -> None:
    models = Models(FITTING)
    assert models.policy_for(1) is FITTING and 1 not in models
    assert models.model(1) is models.model(1) and list(models) == [1]


def test_refits_fall_due_in_event_time_and_need_enough_customers() -> None:
    models = Models(FITTING)
    now = 1000 * DAY

    async def go() -> None:
        assert not models.refit_due(0, now)  # the first look only schedules
        pm = models[0]
        assert pm.next_fit == now + 30 * DAY and pm.dirty and pm.fitted_at is None
        pm.dirty = False
        assert not models.refit_due(0, now + DAY)
        assert not pm.dirty  # not due yet
        assert not models.refit_due(0, now + 30 * DAY)  # due, but too few customers
        assert pm.dirty and pm.fitted_at is None and pm.next_fit == now + 60 * DAY
        for (x, first, last), basket in zip(
                ((1, 900, 950), (3, 800, 990), (0, 960, 960), (5, 700, 995)),
                (10.0, 40.0, None, 20.0), strict=True):
            pm.cells.add(x, first, last, None if basket is None else
                         round(math.log(basket) / BASKET_STEP))
        assert models.refit_due(0, now + 60 * DAY)
        await models.refit(0, now + 60 * DAY)
        assert pm.fitted_at == now + 60 * DAY and pm.customers == 4
        # The typical basket is taken with the fit: the baskets' geometric mean.
        assert pm.policy.model.typical_basket == pytest.approx(20.0, rel=BASKET_STEP)
        assert orjson.loads(pm.record())["typical_basket"] == pm.policy.model.typical_basket
        assert models.policy_for(0) is pm.policy and pm.policy != FITTING

    asyncio.run(go())
