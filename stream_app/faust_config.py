"""Faust settings derived from our one settings object.

The ``local`` profile holds the few settings the embedded broker needs and
nothing else; the ``kafka`` profile keeps Faust's defaults for a real cluster.
"""

from __future__ import annotations

from typing import Any

from . import transport
from .settings import Settings


def app_options(s: Settings) -> dict[str, Any]:
    transport.FETCH_MAX_WAIT_MS = s.fetch_max_wait_ms
    options: dict[str, Any] = dict(
        broker=[u if "://" in u else "kafka://" + u for u in s.broker_url.split(";")],
        store=s.store,
        datadir=s.data_dir,
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication,
        # The local broker has no idempotent producer; correctness comes from
        # idempotent state updates and deterministic alert ids instead.
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        web_host=s.web_host,
        web_port=s.web_port,
        web_in_thread=False,
        autodiscover=False,
        origin="stream_app",
        table_standby_replicas=0 if s.broker_profile == "local" else 1,
        producer_linger=0.005,
        producer_max_batch_size=262144,
        stream_buffer_maxsize=8192,
    )
    if s.broker_profile == "local":
        options.update(
            # Group joins wait half the session timeout on the local broker.
            broker_session_timeout=6,
            broker_rebalance_timeout=6,
            broker_heartbeat_interval=1,
            # Its ListOffsets(latest) answer is wrong; don't check recovery by it.
            recovery_consistency_check=False,
        )
    return options
