"""Run one Faust worker in this process (``churnwatch worker``).

SIGTERM and Ctrl-C stop it gracefully: Faust finishes the in-flight events,
commits their offsets and flushes the producer before it exits.
"""

from __future__ import annotations

import gc
import logging

import faust

#: The cyclic garbage collector's generation thresholds for the worker.
#: Python's default (700 allocations per young collection) suits programs
#: that allocate little; the worker allocates several objects per event and
#: keeps many long-lived customer states, so with the default it spent about
#: a fifth of its time collecting, mostly re-scanning live states (in-process
#: on the 2,000-customer stream: 5,900-6,400 events/s, 7,700-8,400 with these;
#: the worker: 3,594 -> 6,150).  Reference counting still frees everything
#: without a cycle at once (the states have none); only cyclic garbage waits
#: longer, so memory is not what this trades.  A full collection scans every
#: live state: 115-145 ms each, twice a minute at 2,000 events/s, and the
#: longest pauses in the latency tail; the third threshold makes them about
#: ten times rarer (ingest to alert at 2,000 events/s, two runs each: p99
#: 180 / 204 ms and max 232 / 265 ms, against 191 / 324 ms and 368 / 389 ms).
GC_THRESHOLDS = (20_000, 50, 1000)


def run_worker(create_topics: bool = True) -> None:
    from . import agents, logs, web  # noqa: F401  registers agents, timer, tables, views
    from .app import app, settings

    if create_topics:
        from .admin import create_topics as create

        create(settings)

    @app.task  # type: ignore[untyped-decorator]
    async def _quiet_root_logger() -> None:
        # The worker leaves the root logger at DEBUG whatever its own level,
        # so every debug call in aiokafka's hot path builds a record; at the
        # configured level this measured 20-40% faster.
        logging.getLogger().setLevel(settings.log_level.upper())
        logs.setup(settings.log_level, settings.log_format)
        logging.getLogger("churnwatch").info("worker started", extra={"fields": {
            "app_id": settings.app_id, "broker": settings.broker_url,
            "store": settings.store, "partitions": settings.partitions}})

    # Start-up's objects (modules, the app) are never garbage: out of every scan.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
