"""Run one Faust worker in this process (``churnwatch worker``).

SIGTERM and Ctrl-C stop it gracefully: Faust finishes the in-flight events,
commits their offsets and flushes the producer before it exits.  Losing the
broker for ``CHURNWATCH_BROKER_TIMEOUT_SECONDS``, or finding that it lost
data the worker had processed, stops it with one line and a non-zero exit
status (see :mod:`stream_app.kafka.brokerwatch`).
"""

from __future__ import annotations

import gc
import logging

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from ..core.settings import Settings, from_env

#: The cyclic garbage collector's generation thresholds for the worker.
#: Python's default suits programs that allocate little; the worker
#: allocates several objects per event and keeps many long-lived customer
#: states, so with the default it spends much of its time collecting, mostly
#: re-scanning live states.  Reference counting still frees everything
#: without a cycle at once (the states have none); only cyclic garbage waits
#: longer, so memory is not what this trades.  A full collection scans every
#: live state and makes the longest pauses in the latency tail; the third
#: threshold makes them much rarer.
GC_THRESHOLDS = (20_000, 50, 1000)


def run_worker(create_topics: bool = True, settings: Settings | None = None) -> None:
    """Run a worker built from ``settings`` (default: the environment's) until stopped."""
    from ..engine import logs
    from ..kafka.brokerwatch import Watch, preflight
    from ..kafka.worker import build_worker
    from .web import mount_web

    if settings is None:
        settings = from_env()
    built = build_worker(settings)
    mount_web(built)
    app, customer_to_state = built.app, built.table

    logs.setup(settings.log_level, settings.log_format)
    # Before the topics are created: a changelog that is gone is the clearest
    # sign that the broker lost what the local store was built from.
    preflight(settings, app.conf.tabledir)
    if create_topics:
        from ..kafka.admin import create_topics as create

        create(settings)

    @app.task  # type: ignore[untyped-decorator]
    async def _quiet_root_logger() -> None:
        # At the configured level whatever Faust's worker did with it (with its
        # spinner it left the root logger at DEBUG, and every debug call in
        # aiokafka's hot path built a record; see the spinner below).
        logging.getLogger().setLevel(settings.log_level.upper())
        logs.setup(settings.log_level, settings.log_format)
        logs.quiet_repeats()
        logging.getLogger("churnwatch").info("worker started", extra={"fields": {
            "app_id": settings.app_id, "broker": settings.broker_url,
            "store": settings.store, "partitions": settings.partitions}})

    def seen() -> dict[tuple[str, int], int]:
        """Messages this worker knows each partition held: read, or written to
        the changelog (the RocksDB store's last changelog offset)."""
        held = {(tp.topic, tp.partition): offset + 1
                for tp, offset in app.monitor.tp_read_offsets.items()}
        if settings.store == "rocksdb://" and not app.rebalancing:
            changelog = settings.state_changelog_topic
            try:
                assigned = app.consumer.assignment()
            except ConsumerNotStarted:
                return held
            for tp in assigned:
                if tp.topic == settings.topic_purchases:
                    offset = customer_to_state.persisted_offset(TP(changelog, tp.partition))
                    if offset is not None:
                        held[(changelog, tp.partition)] = offset + 1
        return held

    @app.task  # type: ignore[untyped-decorator]
    async def _watch_broker() -> None:
        await Watch(settings, seen).run(lambda: bool(app.should_stop))

    # Start-up's objects (modules, the app) are never garbage: out of every scan.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    # Without a spinner Faust leaves the root logger at the configured level.
    # With one (its default at WARNING and above) it sets the root logger to
    # DEBUG so that every record turns the spinner, and app tasks (the one
    # above) only start once the tables are recovered: every debug call of
    # the changelog recovery loop, two per changelog message, would build and
    # dispatch a record.  The spinner only ever draws on a terminal.
    worker.spinner = None
    worker.execute_from_commandline()
