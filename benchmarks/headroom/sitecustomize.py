"""Loaded by a benchmark worker whose ``PYTHONPATH`` starts here: part of the engine off.

Python imports ``sitecustomize`` at start-up, before the worker's own code
runs.  ``HEADROOM_OFF`` says what this one switches off:

- ``assessment``: :meth:`stream_app.engine.assess.Assessor.assess` (every
  signal, the alert decision and the next due time) only marks the
  customer's state to be written, the one thing the rest of the engine
  relies on it for.  Events are still decoded, ordered, folded into the
  state (the purchase model's fit included), written and committed.
- ``core``: the whole pure core.  An event only moves its customer's
  offsets and times (what redelivery and the clock need) and marks the
  state to be written: no fold, no purchase model, no assessment.  What
  is left is the engine's bookkeeping, the state's load and write, Faust
  and the Kafka client.

What such a worker reaches is the most a faster (compiled) assessment, or
core, could give: the throughput benchmark's ``--headroom`` figures.  It
raises no alert and is never a way to run Churnwatch.
"""

from __future__ import annotations

import os
from typing import Any

from stream_app.core.state import _touch
from stream_app.engine.apply import Applier
from stream_app.engine.assess import Assessor
from stream_app.engine.partition_model import Models

OFF = os.environ.get("HEADROOM_OFF", "assessment")
if OFF not in ("assessment", "core"):
    raise SystemExit(f"HEADROOM_OFF must be 'assessment' or 'core', not {OFF!r}")


def _marked_only(self: Assessor, partition: int, work: Any, state: Any, now: float,
                 purchase_at: float | None = None, reported: str | None = None) -> None:
    work.dirty.add(state.customer_id)


def _touched_only(self: Applier, partition: int, work: Any, q: Any, state: Any,
                  now: float) -> bool:
    _touch(state, q.topic, partition, q.offset, q.decoded.ts)
    work.dirty.add(state.customer_id)
    self.stats.events[self.kinds[q.topic]] += 1
    return True


def _never(self: Models, partition: int, now: float) -> bool:
    return False


Assessor.assess = _marked_only  # type: ignore[assignment,method-assign]
if OFF == "core":
    Applier._fold_rest = _touched_only  # type: ignore[assignment,method-assign]  # noqa: SLF001
    Models.refit_due = _never  # type: ignore[assignment,method-assign]
