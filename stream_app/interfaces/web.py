"""HTTP on the worker's web server: health, readiness, metrics, customer look-up.

Read-only.  ``GET /customers/{id}`` is routed by Faust to the worker that owns
the customer's partition, so a call centre can ask any worker.  Errors are
JSON with a message.

When ``CHURNWATCH_API_TOKEN`` is set, one gate in front of every route asks
for ``Authorization: Bearer <token>``; only :data:`OPEN_PATHS` answer without
it.  The gate is on the server, not in each view, so a route added later (by
us or by Faust) is closed until someone opens it on purpose.  Faust's own
table, router and statistics pages are switched off in
:func:`stream_app.kafka.faust_config.app_options`.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from aiohttp import web as aiohttp_web
from faust import web
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import PrometheusMonitor, setup_prometheus_sensors
from faust.tables.manager import TableManager
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from ..core.alerting import iso
from ..core.decoding import parse_ts
from ..core.records import asdict
from ..core.report import report
from ..engine.metrics import child
from ..kafka import brokerwatch
from ..kafka.agents import processor
from ..kafka.app import app, policy, settings
from ..kafka.tables import customer_to_state

_CUSTOMER_ID = re.compile(r"^[^\s/]{1,128}$")


class LeanPrometheusMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor without its per-stream-event bookkeeping.

    For every event Faust's monitor builds a timing record and updates five
    metrics on the way in and out of each stream: about a tenth of a busy
    worker's time, measured with py-spy.  Messages in and out per topic,
    commits, table operations, rebalances and the rest are kept; the
    per-stream event counts and the event runtime histogram are not
    (``churnwatch_events_total`` and ``churnwatch_ingest_to_alert_seconds``
    cover them).  The per-message, per-send and per-table-operation metrics
    use kept labelled children (:func:`stream_app.engine.metrics.child`) instead of
    looking them up on every call (another tenth of the worker's time).
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self.on_messages_in(tp, (message,))

    def on_messages_in(self, tp: Any, messages: Sequence[Any]) -> None:
        """Faust's ``on_message_in`` for one fetch of one partition, one update per metric.

        The same totals and the same last read offset; every message gets the
        same arrival time (they arrived in the same fetch).
        """
        n = len(messages)
        self.messages_received_total += n
        self.messages_active += n
        self.messages_received_by_topic[tp.topic] += n
        last = messages[-1].offset
        self.tp_read_offsets[tp] = last
        now = self.time()
        for message in messages:
            message.time_in = now
        m = self._metrics
        m.messages_received.inc(n)
        m.active_messages.inc(n)
        child(m.messages_received_per_topics, tp.topic).inc(n)
        child(m.messages_received_per_topics_partition, tp.topic, tp.partition).set(last)

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        # Faust's consumer calls this for every message it fetches.
        Monitor.track_tp_end_offset(self, tp, offset)
        child(self._metrics.topic_partition_end_offset, tp.topic, tp.partition).set(offset)

    def on_send_initiated(self, producer: Any, topic: str, message: Any,
                          keysize: int, valsize: int) -> Any:
        child(self._metrics.topic_messages_sent, f"topic.{topic}").inc()
        return Monitor.on_send_initiated(self, producer, topic, message, keysize, valsize)

    def on_table_get(self, table: Any, key: Any) -> None:
        Monitor.on_table_get(self, table, key)
        child(self._metrics.table_operations, f"table.{table.name}",
              self.KEYS_RETRIEVED).inc()

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        Monitor.on_table_set(self, table, key, value)
        child(self._metrics.table_operations, f"table.{table.name}",
              self.KEYS_UPDATED).inc()

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: Any = None) -> None:
        return None


setup_prometheus_sensors(app, name_prefix="churnwatch_faust")
app.monitor = LeanPrometheusMonitor(metrics=cast(PrometheusMonitor, app.monitor)._metrics)


#: The routes that answer without the token: probes and the scraper, which
#: carry no customer data (no customer id is ever a metric label).
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})

_Handler = Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]]


def _error(view: web.View, status: int, message: str) -> web.Response:
    return view.json({"error": message, "status": status}, status=status)


def _authorized(request: aiohttp_web.Request) -> bool:
    if not settings.api_token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given, f"Bearer {settings.api_token}")


@aiohttp_web.middleware
async def _token_gate(request: aiohttp_web.Request,
                      handler: _Handler) -> aiohttp_web.StreamResponse:
    """Every route but :data:`OPEN_PATHS` needs the token.

    Decided by the route the request matched, not by its text, and before the
    view runs: a look-up Faust would forward to the owning worker is refused
    here, and a forwarded one (Faust copies the request's headers, the
    ``Authorization`` header with them) passes the owner's gate again.  An
    unknown path answers 401 too, so the answer tells nothing about what
    exists.
    """
    resource = request.match_info.route.resource
    if (resource is not None and resource.canonical in OPEN_PATHS) or _authorized(request):
        return await handler(request)
    return aiohttp_web.json_response(
        {"error": "missing or wrong bearer token (Authorization header)", "status": 401},
        status=401, headers={"WWW-Authenticate": "Bearer"})


def _server() -> AiohttpWeb:
    return cast(AiohttpWeb, app.web)


_server().web_app.middlewares.append(_token_gate)


def served_routes() -> list[tuple[str, str]]:
    """Every (method, path pattern) the worker's web server answers.

    Mounts Faust's pages as the worker's web server does when it starts, so
    the list has what Faust adds as well as our views: a check of what is
    exposed can walk them all instead of a list kept by hand.  For a process
    that inspects the app, not for the worker (whose server mounts them).
    """
    server = _server()
    server.init_server()
    return sorted({(route.method, route.resource.canonical)
                   for route in server.web_app.router.routes()
                   if route.resource is not None})


@app.page("/health")
async def health(view: web.View, request: web.Request) -> web.Response:
    """The process is up and serving (liveness)."""
    return view.json({"status": "ok"})


@app.page("/ready")
async def ready(view: web.View, request: web.Request) -> web.Response:
    """Broker reachable, partitions assigned and tables recovered: the worker
    processes events.  Not ready says why, in ``reason``."""
    assigned = bool(app.consumer.assignment()) if app.consumer else False
    recovered = cast(TableManager, app.tables).recovery.completed.is_set()
    broker = brokerwatch.WATCH
    now = time.monotonic()
    body: dict[str, Any] = {
        "assigned": assigned, "recovered": recovered, "rebalancing": app.rebalancing,
        "broker_reachable": broker.reachable,
        "broker_unreachable_seconds": round(broker.unreachable_for(now), 1)}
    reason = broker.reason(now) or (
        "rebalancing: partitions are being reassigned" if app.rebalancing else
        "no partitions assigned yet" if not assigned else
        "recovering the tables from their changelogs" if not recovered else None)
    if reason is None:
        return view.json({"status": "ready", **body})
    return view.json({"status": "not ready", "reason": reason, **body}, status=503)


@app.page("/customers/{customer_id}")
@app.table_route(table=customer_to_state, match_info="customer_id")
async def customer(view: web.View, request: web.Request, customer_id: str) -> web.Response:
    """The customer's current risk, signals with evidence, episode and actions."""
    if not _CUSTOMER_ID.match(customer_id):
        return _error(view, 400, "customer id must be 1-128 characters, no spaces or '/'")
    try:
        state = processor.load(customer_id)
    except ValueError as exc:  # a state this release cannot read
        return _error(view, 500, str(exc))
    if state is None:
        return _error(view, 404, f"no customer {customer_id!r} on this worker's partitions")
    now = processor.clock_now(state.partition, time.time())
    return view.json(report(state, policy, max(now, state.last_ts) if now else None))


@app.page("/alerts")
async def alerts(view: web.View, request: web.Request) -> web.Response:
    """This worker's latest alerts, oldest first: ``?since=ISO-8601&limit=N``."""
    since_text = request.query.get("since")
    since = parse_ts(since_text) if since_text else 0.0
    if isinstance(since, str):
        return _error(view, 400, f"since: {since}")
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "100"))))
    except ValueError:
        return _error(view, 400, "limit must be a whole number")
    chosen = [a for a in processor.recent_alerts if float(parse_ts(a.ts)) >= since]
    # Exactly as published on the alerts topic (the churn-alerts schema).
    page: list[Any] = [asdict(a) for a in chosen[:limit]]
    return view.json({"alerts": page, "more": len(chosen) > limit, "as_of": iso(time.time())})
