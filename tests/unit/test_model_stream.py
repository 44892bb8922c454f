"""The purchase model as the worker keeps it: fitted from the stream, kept in
the table, the same after a restart and on a replay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import orjson
import pytest

from stream_app.core.model import Cells
from stream_app.core.policy import Policy
from stream_app.core.scoring import risk_score
from stream_app.core.signals import EVALUATORS
from stream_app.engine.partition_model import Models
from stream_app.engine.processing import MODEL_PREFIX, Processor, model_key, purchase_cell
from stream_app.offline.synthetic import generate

from .fakes import Outputs, handle
from .test_processor import PARTITIONS, messages

KINDS = {k: k for k in ("purchases", "contacts", "complaints", "feedback")}
FITTING = Policy(model=replace(Policy().model, fit=True, min_customers=20, refit_days=60.0))


def _messages() -> list[tuple[str, int, int, bytes, bytes]]:
    return messages(generate(customers=160, days=400, seed=21))


def _run(table: dict[bytes, bytes], msgs: list[tuple[str, int, int, bytes, bytes]],
         before: Callable[[Processor], object] = lambda proc: None) -> Processor:
    out = Outputs()
    ends: dict[tuple[str, int], int] = {}
    for topic, part, off, _, _ in msgs:
        ends[(topic, part)] = off + 1
    proc = Processor(table, FITTING, out.send_alert, out.send_dead, KINDS,
                     backlog=lambda t, p, o: o + 1 < ends.get((t, p), 0), wall=lambda: 1.8e9)
    before(proc)

    async def go() -> None:
        for m in msgs:
            await handle(proc, *m)
        for part in range(PARTITIONS):
            await proc.flush(part)

    asyncio.run(go())
    return proc


@pytest.fixture(scope="module")
def fitted() -> tuple[Processor, dict[bytes, bytes], list[tuple[str, int, int, bytes, bytes]]]:
    table: dict[bytes, bytes] = {}
    msgs = _messages()
    return _run(table, msgs), table, msgs


def test_each_partition_fits_its_numbers_and_keeps_them_in_the_table(
        fitted: tuple[Processor, dict[bytes, bytes], list]) -> None:
    proc, table, _ = fitted
    for part in range(PARTITIONS):
        pm = proc.models[part]
        assert pm.fitted_at is not None and pm.customers >= 20
        m = pm.policy.model
        assert (m.r, m.alpha, m.s, m.beta) != (Policy().model.r, Policy().model.alpha,
                                              Policy().model.s, Policy().model.beta)
        saved = orjson.loads(table[model_key(part)])
        assert saved["params"] == {"r": m.r, "alpha": m.alpha, "s": m.s, "beta": m.beta}
        assert saved["fitted_at"] == pm.fitted_at
    assert sum(k.startswith(MODEL_PREFIX) for k in table) == PARTITIONS


def test_the_histogram_kept_as_events_arrive_is_the_one_rebuilt_from_the_states(
        fitted: tuple[Processor, dict[bytes, bytes], list]) -> None:
    proc, table, _ = fitted
    again = Processor(table, FITTING, Outputs().send_alert, Outputs().send_dead, KINDS)
    again.rebuild()
    for part in range(PARTITIONS):
        assert again.models[part].cells == proc.models[part].cells
        assert again.policy_for(part) == proc.policy_for(part)
    from_states = Cells()
    for cid, state in ((k, proc.load(k.decode())) for k in table if not k.startswith(b"\x00")):
        assert state is not None, cid
        cell = purchase_cell(state)
        if cell is not None and state.partition == 0:
            from_states.add(*cell)
    assert from_states == proc.models[0].cells


def test_a_restart_scores_with_the_same_numbers_and_a_replay_fits_the_same(
        fitted: tuple[Processor, dict[bytes, bytes], list]) -> None:
    proc, table, msgs = fitted
    restarted = Processor(table, FITTING, Outputs().send_alert, Outputs().send_dead, KINDS)
    restarted.rebuild()
    now = 1.8e9 - 200 * 86400
    for key in list(table)[:80]:
        if key.startswith(b"\x00"):
            continue
        a, b = proc.load(key.decode()), restarted.load(key.decode())
        assert a is not None and b is not None
        pa, pb = proc.policy_for(a.partition), restarted.policy_for(b.partition)
        fired_a = [f for ev in EVALUATORS if (f := ev(a, now, pa)) is not None]
        fired_b = [f for ev in EVALUATORS if (f := ev(b, now, pb)) is not None]
        assert risk_score(a, fired_a, now, pa) == risk_score(b, fired_b, now, pb)
    replayed = _run({}, msgs)
    for part in range(PARTITIONS):
        assert replayed.policy_for(part) == proc.policy_for(part)
        assert replayed.models[part].fitted_at == proc.models[part].fitted_at


def test_a_state_let_go_from_the_cache_during_a_fit_loses_no_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fit runs in a thread; a flush round may trim the cache meanwhile."""
    msgs = _messages()
    table: dict[bytes, bytes] = {}
    _run(table, msgs)
    real = Models.refit
    processors: list[Processor] = []
    trims: list[int] = []

    async def refit_and_trim(self: Models, partition: int, now: float) -> None:
        await real(self, partition, now)
        trims.append(partition)
        proc = processors[-1]
        dirty = set().union(*(w.dirty for w in proc.parts.values()))
        for cid in [c for c in proc.cache if c not in dirty]:
            del proc.cache[cid]  # as the trim of a flush round does

    monkeypatch.setattr(Models, "refit", refit_and_trim)
    trimmed: dict[bytes, bytes] = {}
    _run(trimmed, msgs, before=processors.append)
    assert trims, "no fit ran: the trim this test is about never happened"
    customers = [k for k in table if not k.startswith(b"\x00")]
    assert customers and all(trimmed[k] == table[k] for k in customers)
