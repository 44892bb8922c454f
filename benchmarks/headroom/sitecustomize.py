"""Loaded by a benchmark worker whose ``PYTHONPATH`` starts here: the assessment off.

Python imports ``sitecustomize`` at start-up, before the worker's own code
runs.  This one replaces :meth:`stream_app.engine.assess.Assessor.assess`
(every signal, the alert decision and the next due time) with the one thing
the rest of the engine relies on it for: the customer's state is marked to
be written.  Events are still decoded, ordered, folded into the state
(the purchase model's fit included), written and committed.

What such a worker reaches is the most a faster (compiled) assessment could
give: the throughput benchmark's ``--headroom`` figure.  It raises no alert
and is never a way to run Churnwatch.
"""

from __future__ import annotations

from typing import Any

from stream_app.engine.assess import Assessor


def _marked_only(self: Assessor, partition: int, work: Any, state: Any, now: float,
                 purchase_at: float | None = None, reported: str | None = None) -> None:
    work.dirty.add(state.customer_id)


Assessor.assess = _marked_only  # type: ignore[assignment,method-assign]
