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
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
from aiohttp import web as aiohttp_web
from faust import web
from faust.exceptions import ConsumerNotStarted
from faust.tables.manager import TableManager
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from ..core.alerting import iso
from ..core.decoding import BadTimestamp, parse_event_time
from ..core.records import asdict
from ..core.report import report
from ..kafka import brokerwatch
from ..kafka.worker import Worker

_CUSTOMER_ID = re.compile(r"^[^\s/]{1,128}$")


#: The routes that answer without the token: probes and the scraper, which
#: carry no customer data (no customer id is ever a metric label).
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})

_Handler = Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]]


def has_partitions(app: faust.App) -> bool:
    """Whether the worker's consumer holds partitions; False before it has started
    (the web server answers probes from the first moment of start-up)."""
    try:
        return bool(app.consumer.assignment())
    except ConsumerNotStarted:
        return False


def _error(view: web.View, status: int, message: str) -> web.Response:
    return view.json({"error": message, "status": status}, status=status)


def _authorized(request: aiohttp_web.Request, token: str) -> bool:
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given, f"Bearer {token}")


def _token_gate(token: str) -> Any:
    """Every route but :data:`OPEN_PATHS` needs the token.

    Decided by the route the request matched, not by its text, and before the
    view runs: a look-up Faust would forward to the owning worker is refused
    here, and a forwarded one (Faust copies the request's headers, the
    ``Authorization`` header with them) passes the owner's gate again.  An
    unknown path answers 401 too, so the answer tells nothing about what
    exists.
    """

    @aiohttp_web.middleware
    async def gate(request: aiohttp_web.Request,
                   handler: _Handler) -> aiohttp_web.StreamResponse:
        resource = request.match_info.route.resource
        if ((resource is not None and resource.canonical in OPEN_PATHS)
                or _authorized(request, token)):
            return await handler(request)
        return aiohttp_web.json_response(
            {"error": "missing or wrong bearer token (Authorization header)", "status": 401},
            status=401, headers={"WWW-Authenticate": "Bearer"})

    return gate


def _server(worker: Worker) -> AiohttpWeb:
    return cast(AiohttpWeb, worker.app.web)


def served_routes(worker: Worker) -> list[tuple[str, str]]:
    """Every (method, path pattern) the worker's web server answers.

    Mounts Faust's pages as the worker's web server does when it starts, so
    the list has what Faust adds as well as our views: a check of what is
    exposed can walk them all instead of a list kept by hand.  For a process
    that inspects the app, not for the worker (whose server mounts them).
    """
    server = _server(worker)
    server.init_server()
    return sorted({(route.method, route.resource.canonical)
                   for route in server.web_app.router.routes()
                   if route.resource is not None})


def mount_web(worker: Worker) -> None:
    """Put the token gate and the views on the worker's web server."""
    app, processor, policy = worker.app, worker.processor, worker.policy
    customer_to_state = worker.table
    _server(worker).web_app.middlewares.append(_token_gate(worker.settings.api_token))

    @app.page("/health")
    async def health(view: web.View, request: web.Request) -> web.Response:
        """The process is up and serving (liveness)."""
        return view.json({"status": "ok"})

    @app.page("/ready")
    async def ready(view: web.View, request: web.Request) -> web.Response:
        """Broker reachable, partitions assigned and tables recovered: the worker
        processes events.  Not ready says why, in ``reason``."""
        assigned = has_partitions(app)
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
        try:
            since = parse_event_time(since_text) if since_text else 0.0
        except BadTimestamp as exc:
            return _error(view, 400, f"since: {exc}")
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "100"))))
        except ValueError:
            return _error(view, 400, "limit must be a whole number")
        chosen = [a for a in processor.recent_alerts if parse_event_time(a.ts) >= since]
        # Exactly as published on the alerts topic (the churn-alerts schema).
        page: list[Any] = [asdict(a) for a in chosen[:limit]]
        return view.json({"alerts": page, "more": len(chosen) > limit, "as_of": iso(time.time())})
