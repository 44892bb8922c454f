"""Applying released events: once each, and a failure is a dead letter, not a stop."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from stream_app.core.policy import Policy
from stream_app.engine import apply as apply_module
from stream_app.engine.processing import Processor

from ..conftest import at, epoch
from .fakes import Outputs

KINDS = {"purchases": "purchases"}


def _purchase(n: int, day: int) -> bytes:
    return orjson.dumps({"event_id": f"p{n}", "customer_id": f"c{n % 2}", "ts": at(day),
                         "amount": 5.0})


def _processor(out: Outputs) -> Processor:
    return Processor({}, Policy(), out.send_alert, out.send_dead, KINDS, wall=lambda: 1.8e9)


def test_an_offset_applied_before_moves_the_clock_but_changes_nothing() -> None:
    out = Outputs()
    proc = _processor(out)

    async def go() -> None:
        await proc.handle_many("purchases", 0, [(0, b"c0", _purchase(0, 10), None, None)])
        work = proc.parts[0]
        # As after a crash: the state has offset 0 and it comes again, dated later.
        work.offered.clear()
        work.clock = None
        await proc.handle_many("purchases", 0, [(0, b"c0", _purchase(0, 10), None, None)])
        assert work.clock == epoch(10)

    asyncio.run(go())
    state = proc.load("c0")
    assert state is not None and state.purchases == 1
    assert proc.stats.duplicates == 1 and proc.stats.events["purchases"] == 1


def test_an_event_that_fails_to_apply_is_dead_lettered_and_the_next_one_applied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = apply_module.apply_event

    def failing(state: Any, record: Any, *args: Any, **kwargs: Any) -> None:
        if record.event_id == "p1":
            raise ValueError("a bug")
        real(state, record, *args, **kwargs)

    monkeypatch.setattr(apply_module, "apply_event", failing)
    out = Outputs()
    proc = _processor(out)
    asyncio.run(proc.handle_many("purchases", 0, [
        (n, f"c{n % 2}".encode(), _purchase(n, 10 + n), None, None) for n in range(3)]))
    [letter] = out.dead
    assert (letter.offset, letter.reason_code) == (1, "processing_failed")
    assert "ValueError: a bug" in letter.reason
    assert proc.stats.events["purchases"] == 2 and proc.parts[0].done == 3
