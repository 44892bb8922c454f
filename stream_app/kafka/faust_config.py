"""Faust settings derived from our one settings object.

The ``local`` profile holds the few settings the embedded broker needs and
nothing else; the ``kafka`` profile keeps Faust's defaults for a real cluster.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types.auth import CredentialsT
from yarl import URL

from ..core.settings import Settings, ssl_context
from .faust_internals import BulkTableManager, RawItemsTable


def broker_credentials(s: Settings) -> CredentialsT | None:
    """Faust's form of the broker security settings (None: plain text).

    Faust's aiokafka driver turns these into the consumer's, producer's and
    topic creator's ``security_protocol``/``sasl_*``/``ssl_context``
    arguments, so the worker connects exactly like :func:`kafka_client_options`.
    """
    if s.uses_sasl:
        return faust.SASLCredentials(username=s.sasl_username, password=s.sasl_password,
                                     mechanism=s.sasl_mechanism, ssl_context=ssl_context(s))
    context = ssl_context(s)
    return faust.SSLCredentials(context) if context is not None else None


#: Faust's switches for its own web pages, all off (see :func:`app_options`).
FAUST_PAGES_OFF = dict(web_tables_enabled=False, web_router_enabled=False,
                       web_stats_enabled=False, web_graph_enabled=False,
                       web_metrics_enabled=False)


def faust_environment() -> dict[str, str]:
    """What Faust may read its own settings from: nothing.

    Faust lets an environment variable override a setting given in code
    (``APP_WEB_TABLES_ENABLED=1`` would put the table pages back, and
    ``WEB_PORT`` would beat ``CHURNWATCH_WEB_PORT``).  The worker has one
    settings object, read from ``CHURNWATCH_*`` variables and checked at
    start-up; a second, unchecked source beside it would make the effective
    configuration differ from what ``churnwatch config`` shows.
    """
    return {}


def app_options(s: Settings) -> dict[str, Any]:
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
        # Faust listens on ``web_bind`` and announces ``canonical_url`` to the
        # other workers, which route table look-ups to it; ``web_host`` only
        # feeds the announced URL.
        web_bind=s.web_host,
        web_host=URL(s.canonical_url).host,
        web_port=s.web_port,
        canonical_url=s.canonical_url,
        broker_credentials=broker_credentials(s),
        web_in_thread=False,
        # None of Faust's own pages: /table/ serves table rows (a customer's
        # whole state, complaint text included) and /router/ the workers'
        # URLs, both without our token; the statistics, graph and
        # performance pages show internals.  @app.table_route still works
        # across workers without /router/: it reads the owner of a key from
        # the partition assignor (the URLs the workers exchange when they
        # join the group), and no worker asks another's /router/ page.
        **FAUST_PAGES_OFF,
        env=faust_environment(),
        autodiscover=False,
        origin="stream_app",
        table_standby_replicas=0 if s.broker_profile == "local" else 1,
        producer_linger=0.005,
        producer_max_batch_size=262144,
        stream_buffer_maxsize=8192,
        # The processor acknowledges events only once their effects are
        # written, so some stay unacknowledged until the next flush: Faust
        # must not wait for them at a rebalance or at shutdown (the unacked
        # ones are delivered again from the committed offset).
        stream_wait_empty=False,
        # Faust's table recovery, taking the changelog a queue-full at a time.
        TableManager=BulkTableManager,
        # Tables whose items() read a RocksDB store without Faust's layers.
        Table=RawItemsTable,
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
