"""The worker settles each alert's prediction once its horizon has passed."""

from __future__ import annotations

import asyncio

import orjson
from prometheus_client import REGISTRY

from stream_app.core.decoding import parse_ts
from stream_app.core.outcomes import decile, expect, settle
from stream_app.core.policy import Policy
from stream_app.core.state import DAY, new_state
from stream_app.engine.processing import Processor

from ..conftest import at
from .fakes import Outputs, handle

KINDS = {k: k for k in ("purchases", "contacts", "complaints", "feedback")}


def test_a_purchase_within_the_horizon_settles_it_as_bought_and_silence_as_no_purchase() -> None:
    s = new_state("c1")
    expect(s, 100 * DAY, 82.5, 90.0)
    expect(s, 150 * DAY, 40.0, 90.0)
    assert settle(s, 120 * DAY) == []  # neither horizon has passed, nobody bought
    assert settle(s, 191 * DAY) == [(82.5, "no_purchase")]  # the first one's has
    assert settle(s, 200 * DAY, purchase_at=200 * DAY) == [(40.0, "bought")]
    assert s.alerting.pending == []


def test_a_feedback_report_settles_every_waiting_alert_at_once() -> None:
    s = new_state("c1")
    expect(s, 10 * DAY, 70.0, 90.0)
    expect(s, 12 * DAY, 90.0, 90.0)
    assert settle(s, 13 * DAY, reported="churned") == [(70.0, "churned"), (90.0, "churned")]
    assert decile(0.0) == "0-10" and decile(83.0) == "80-90" and decile(100.0) == "90-100"


def _outcomes() -> dict[tuple[str, str], float]:
    return {(s.labels["outcome"], s.labels["risk_decile"]): s.value
            for m in REGISTRY.collect() if m.name == "churnwatch_alert_outcomes"
            for s in m.samples if s.name == "churnwatch_alert_outcomes_total"}


def test_the_worker_counts_each_alert_once_its_prediction_matures() -> None:
    """Two customers complain and get an alert; one buys again within 90 days,
    the other is never heard of again; the clock (another customer's purchases)
    moves past both horizons."""
    out = Outputs()
    proc = Processor({}, Policy(), out.send_alert, out.send_dead, KINDS,
                     wall=lambda: 1.8e9)
    before = _outcomes()

    def event(kind: str, cid: str, n: int, day: float, **fields: object) -> tuple:
        return (kind, 0, n, cid.encode(), orjson.dumps(
            {"event_id": f"{cid}-{kind}-{n}", "customer_id": cid, "ts": at(day), **fields}))

    msgs = [event("purchases", c, n, d, amount=40.0)
            for n, (c, d) in enumerate((c, d) for d in range(0, 300, 20) for c in ("a", "b"))]
    offset = len(msgs)
    for cid in ("a", "b"):
        for day in (301, 302, 303):
            msgs.append(event("complaints", cid, offset, day, category="billing", severity=4))
            offset += 1
    msgs.append(event("purchases", "a", offset, 340, amount=40.0))
    for n, day in enumerate(range(350, 500, 10)):
        msgs.append(event("purchases", "clock", offset + 1 + n, day, amount=5.0))
    offsets: dict[str, int] = {}

    async def go() -> None:
        for kind, part, _, key, value in msgs:
            off = offsets[kind] = offsets.get(kind, -1) + 1
            await handle(proc, kind, part, off, key, value)
        await proc.flush(0)

    asyncio.run(go())
    alerted = {a.customer_id for a in out.alerts}
    assert {"a", "b"} <= alerted
    after = _outcomes()
    gained = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    by_outcome: dict[str, float] = {}
    for (outcome, _), n in gained.items():
        by_outcome[outcome] = by_outcome.get(outcome, 0.0) + n
    end = float(parse_ts(at(490)))
    bought_at = float(parse_ts(at(340)))
    expected: dict[str, int] = {}
    waiting = {"a": 0, "b": 0}
    for x in out.alerts:
        if x.customer_id not in waiting:
            continue
        t = float(parse_ts(x.ts))
        if x.customer_id == "a" and t < bought_at <= t + 90 * DAY:
            expected["bought"] = expected.get("bought", 0) + 1
        elif t + 90 * DAY <= end:
            expected["no_purchase"] = expected.get("no_purchase", 0) + 1
        else:
            waiting[x.customer_id] += 1
    assert expected.get("bought") and expected.get("no_purchase")
    assert by_outcome == expected
    for cid in ("a", "b"):
        state = proc.load(cid)
        assert state is not None and len(state.alerting.pending) == waiting[cid]
