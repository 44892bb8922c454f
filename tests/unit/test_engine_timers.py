"""The timer sweep: due customers judged at their due time, superseded entries skipped."""

from __future__ import annotations

import asyncio

import orjson

from stream_app.core.alerting import iso
from stream_app.core.policy import Policy
from stream_app.core.state import DAY
from stream_app.engine.processing import Processor

from ..conftest import at, epoch
from .fakes import Outputs, handle


def _purchase(n: int, day: int) -> bytes:
    return orjson.dumps({"event_id": f"p{n}", "customer_id": "c1", "ts": at(day),
                         "amount": 5.0})


def test_a_customer_gone_quiet_is_judged_at_its_due_time_by_the_sweep() -> None:
    out = Outputs()
    proc = Processor({}, Policy(), out.send_alert, out.send_dead, {"purchases": "purchases"},
                     wall=lambda: 1.8e9)
    judged: list[float] = []

    async def go() -> int:
        for n, day in enumerate(range(0, 300, 10)):  # a steady buyer, every ten days
            await handle(proc, "purchases", 0, n, b"c1", _purchase(n, day))
        state = proc.load("c1")
        assert state is not None and state.due_ts is not None and not out.alerts
        assert state.due_ts < epoch(2000)
        proc.due.schedule(0, "c1", state.due_ts - DAY)  # an entry since superseded
        assess = proc.timers.assess

        def watching(partition, work, state, now, *args):  # type: ignore[no-untyped-def]
            judged.append(now)
            return assess(partition, work, state, now, *args)

        proc.timers.assess = watching
        return await proc.timers.run_due(0, proc.parts[0], epoch(2000))

    swept = asyncio.run(go())
    # Each customer at its own due time (the silence growing), never at the sweep's time.
    assert swept == len(judged) >= 1 and epoch(2000) not in judged
    assert judged == sorted(judged) and judged[0] > epoch(290)
    assert out.alerts and {a.ts for a in out.alerts} <= {iso(t) for t in judged}
    assert all(due > epoch(2000) for due, _ in proc.due.heaps[0])
