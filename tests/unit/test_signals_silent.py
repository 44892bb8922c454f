"""The signals the assessment skips for a state without complaints or concerns.

A signal naming a state field in ``SILENT_WITHOUT`` is not called for a state
whose field is empty: that is only right if it would have said nothing there
(neither fired nor asked to be woken), which these tests hold it to over the
states of a synthetic population, at many times.
"""

from __future__ import annotations

import asyncio
import zlib

import orjson
import pytest

from stream_app.core import alerting
from stream_app.core.policy import Policy
from stream_app.core.signals import MODULES, SILENT_WITHOUT
from stream_app.core.state import DAY, CustomerState
from stream_app.engine.processing import Processor
from stream_app.offline.synthetic import generate

from .fakes import Outputs, handle

POLICY = Policy()
KINDS = {k: k for k in ("purchases", "contacts", "complaints", "feedback")}


def _population_states() -> list[CustomerState]:
    pop = generate(customers=60, days=540, seed=5)
    out = Outputs()
    proc = Processor({}, POLICY, out.send_alert, out.send_dead, KINDS, wall=lambda: 1.8e9)
    offsets: dict[tuple[str, int], int] = {}

    async def go() -> None:
        for e in pop.events:
            part = zlib.crc32(e.customer_id.encode()) % 2
            off = offsets[(e.topic, part)] = offsets.get((e.topic, part), -1) + 1
            await handle(proc, e.topic, part, off, e.customer_id.encode(),
                         orjson.dumps(e.value))

    asyncio.run(go())
    return list(proc.cache.values())


STATES = _population_states()
SILENT = [(m, field) for m, field in zip(MODULES, SILENT_WITHOUT, strict=True) if field]


def test_the_population_has_complaints_and_concerns_to_take_away() -> None:
    assert {m.CODE for m, _ in SILENT} == {
        "COMPLAINTS", "TECHNICAL_FAULTS", "COMPENSATION_ESCALATION", "COMPETITOR_PROBING",
        "HOSTILE_TONE"}
    assert sum(bool(s.complaints) for s in STATES) >= 10
    assert sum(bool(s.notes) for s in STATES) >= 10


@pytest.mark.parametrize(("module", "field"), SILENT, ids=[m.CODE for m, _ in SILENT])
def test_a_signal_is_silent_without_its_field(module: object, field: str) -> None:
    for state in STATES:
        bare = CustomerState.from_bytes(state.to_bytes())
        setattr(bare, field, [])
        for days in (-30, 0, 1, 7, 29, 31, 60, 90, 120, 200, 365, 800):
            now = state.last_ts + days * DAY
            assert module.evaluate(bare, now, POLICY) is None  # type: ignore[attr-defined]
            for firing in (None, False, True):
                assert module.next_check(  # type: ignore[attr-defined]
                    bare, now, POLICY, firing) is None


def test_the_assessment_with_the_skip_is_the_assessment_without_it() -> None:
    """Over every signal and a bare copy of each state, the fired list and the due
    time are those of asking all nine."""
    for state in STATES:
        for field in ("complaints", "notes"):
            bare = CustomerState.from_bytes(state.to_bytes())
            setattr(bare, field, [])
            for days in (0, 3, 45, 180, 400):
                now = state.last_ts + days * DAY
                every = alerting.EVALUATORS, tuple(zip(alerting.CODES, alerting.NEXT_CHECKS,
                                                       strict=True))
                full = alerting.evaluate_signals(bare, now, POLICY, every[0])
                assert alerting.evaluate_signals(bare, now, POLICY) == full
                codes = [f.code for f in full]
                assert (alerting.next_due(bare, now, POLICY, codes)
                        == alerting.next_due(bare, now, POLICY, codes, every[1]))
