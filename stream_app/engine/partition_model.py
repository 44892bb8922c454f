"""Each partition's purchase model: its customers' histogram and its fit.

The histogram is derived (rebuilt from the states after a rebalance); the
fit is kept in the table, so a restart or a replay scores with the same
numbers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import orjson

from ..core.alerting import iso
from ..core.model import Cells, ParetoNBD, basket_bucket, fit
from ..core.policy import Policy, model_params
from ..core.state import DAY, CustomerState
from . import metrics

log = logging.getLogger("churnwatch")

#: Table keys of the purchase-model fits (not customers: they start with a zero byte).
MODEL_PREFIX = b"\x00model/"


def model_key(partition: int) -> bytes:
    return MODEL_PREFIX + str(partition).encode()


def with_params(policy: Policy, params: ParetoNBD,
                typical_basket: float | None = None) -> Policy:
    """The policy with a partition's fitted population numbers in ``[model]``
    (and its typical basket, when one is known)."""
    basket = policy.model.typical_basket if typical_basket is None else typical_basket
    return replace(policy, model=replace(policy.model, r=params.r, alpha=params.alpha,
                                         s=params.s, beta=params.beta,
                                         typical_basket=basket))


def read_fit(raw: bytes | None, policy: Policy) -> tuple[Policy, dict[str, Any]]:
    """A partition's policy and fit record from its table value (None: not fitted yet)."""
    if not raw:
        return policy, {}
    saved = orjson.loads(raw)
    return with_params(policy, ParetoNBD.from_dict(saved["params"]),
                       saved.get("typical_basket")), saved


def purchase_cell(state: CustomerState) -> tuple[int, float, float, int | None] | None:
    """The customer's cell in the model's histogram: (x, first day, last day,
    mean basket's log bucket)."""
    first, last = state.first_purchase_ts, state.last_purchase_ts
    if first is None or last is None:
        return None
    return state.repeat_days, first / DAY, last / DAY, basket_bucket(state.spend,
                                                                     state.purchases)


@dataclass(slots=True)
class PartitionModel:
    """A partition's purchase model.

    Fits happen every ``[model].refit_days`` of event time, from the
    histogram as it stands when the partition's clock passes the due time:
    in merge order, so the same input gives the same fits.
    """

    cells: Cells
    #: The policy with this partition's population numbers.
    policy: Policy
    #: Event time of the last fit, the customers it saw, and the next fit's time.
    fitted_at: float | None = None
    customers: int = 0
    next_fit: float | None = None
    #: Changed since the table last got it.
    dirty: bool = False

    def record(self) -> bytes:
        m = self.policy.model
        return orjson.dumps({"params": {"r": m.r, "alpha": m.alpha, "s": m.s, "beta": m.beta},
                             "typical_basket": m.typical_basket,
                             "fitted_at": self.fitted_at, "customers": self.customers,
                             "next_fit": self.next_fit})

    def restore(self, raw: bytes, policy: Policy) -> None:
        """Take the fit the table keeps (``policy``: the one configured)."""
        self.policy, saved = read_fit(raw, policy)
        self.fitted_at, self.next_fit = saved.get("fitted_at"), saved.get("next_fit")
        self.customers = int(saved.get("customers", 0))


class Models(dict[int, PartitionModel]):
    """Partition -> its purchase model, made on first use."""

    __slots__ = ("policy",)

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def model(self, partition: int) -> PartitionModel:
        pm = self.get(partition)
        if pm is None:
            pm = self[partition] = PartitionModel(Cells(), self.policy)
        return pm

    def policy_for(self, partition: int) -> Policy:
        """The policy a partition's customers are judged by (its fitted model's numbers)."""
        pm = self.get(partition)
        return pm.policy if pm is not None else self.policy

    def refit_due(self, partition: int, now: float) -> bool:
        """Whether a fit is to run now (see :meth:`refit`); else its schedule is kept.

        Synchronous, so that an event with no fit due waits for nothing.
        """
        m = self.policy.model
        pm = self.model(partition)
        if pm.next_fit is None:
            pm.next_fit = now + m.refit_days * DAY
            pm.dirty = True
            return False
        if now < pm.next_fit:
            return False
        pm.next_fit = now + m.refit_days * DAY
        pm.dirty = True
        return len(pm.cells) >= m.min_customers

    async def refit(self, partition: int, now: float) -> None:
        """Fit the partition's population numbers (once :meth:`refit_due` said so).

        In a thread, so that the other partitions go on while it runs (this
        partition waits: its lock is held, so its histogram does not change).
        """
        m = self.policy.model
        pm = self.model(partition)
        start = model_params(pm.policy.model)
        started = time.monotonic()
        try:
            params = await asyncio.to_thread(partial(
                fit, pm.cells, now / DAY, start, prior_weight=m.prior_customers))
        except (ValueError, ArithmeticError) as exc:
            log.warning("purchase model fit failed; the previous numbers stay", extra={
                "fields": {"partition": partition, "error": f"{type(exc).__name__}: {exc}"}})
            return
        # Taken with the fit, from the same histogram (the lock is held).
        pm.policy = with_params(self.policy, params, pm.cells.typical_basket())
        pm.fitted_at, pm.customers = now, len(pm.cells)
        metrics.MODEL_FITS.inc()
        log.info("purchase model fitted", extra={"fields": {
            "partition": partition, "at": iso(now), "customers": len(pm.cells),
            "cells": pm.cells.n_cells, "seconds": round(time.monotonic() - started, 3),
            "typical_basket": pm.policy.model.typical_basket, **params.to_dict()}})
