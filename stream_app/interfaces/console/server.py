"""The console's web server (aiohttp): pages for agents, an API for CRMs.

A process apart from the workers, on its own port: it must see every
worker's alerts (a worker sees only its own partitions'), it is exposed to
many more people than the workers' probes and look-ups are, and it can be
restarted, scaled or put behind a different proxy without touching the
stream processing.

One gate (:func:`_gate`) in front of every route: the API token as
``Authorization: Bearer <token>``, or the session cookie the sign-in form
sets.  Only the sign-in page, the static files and ``/health`` answer without
it; anything else is 401 and tells nothing about customers.  Errors are a
short message (JSON for the API, a page for people), never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import hmac
import io
import logging
import re
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TextIO
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from ...core.decoding import parse_ts
from ...core.records import FEEDBACK_OUTCOMES
from ...core.settings import Settings
from ...kafka import clients
from . import render
from .follow import Follower
from .index import AlertIndex, FilterError, Row, parse_filter
from .outcomes import Outcome, OutcomeError, from_button, from_request
from .words import Words

log = logging.getLogger(__name__)

COOKIE = "churnwatch_console"
_CUSTOMER_ID = re.compile(r"^[^\s/]{1,128}$")
#: Routes that answer without the token: no customer data in any of them.
OPEN = frozenset({"/login", "/health", "/static/{name}"})
_API = ("/alerts", "/feedback", "/events", "/api/")
_STATIC = {"console.css": "text/css", "console.js": "text/javascript",
           "favicon.svg": "image/svg+xml"}
PER_PAGE = 50

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Console:
    settings: Settings
    token: str
    worker_url: str
    index: AlertIndex = field(default_factory=AlertIndex)
    words: Words = field(default_factory=Words)
    follower: Follower | None = None
    producer: Any = None
    http: aiohttp.ClientSession | None = None
    listeners: set[asyncio.Event] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def session_value(self) -> str:
        """The cookie: derived from the token, so the token itself is never stored."""
        return hmac.new(self.token.encode(), b"churnwatch console session",
                        hashlib.sha256).hexdigest()

    def authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        if given and hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(),
                                                    self.session_value().encode())

    def changed(self) -> None:
        for ev in self.listeners:
            ev.set()

    def status_line(self) -> str:
        f = self.follower
        return render.feed_status(bool(f and f.caught_up), f.problem if f else None,
                                  self.index.counts())

    async def lookup(self, customer_id: str) -> tuple[dict[str, Any] | None, str | None]:
        """The worker's report on the customer, or why there is none."""
        assert self.http is not None
        url = f"{self.worker_url}/customers/{quote(customer_id, safe='')}"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self.http.get(url, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=5)) as r:
                if r.status == 200:
                    return await r.json(), None
                if r.status == 404:
                    return None, "The worker holds no state for this customer."
                if r.status == 401:
                    return None, ("The worker refused the look-up (401): give the console the "
                                  "workers' CHURNWATCH_API_TOKEN.")
                return None, f"The worker answered HTTP {r.status} to the look-up."
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return None, (f"The worker's look-up API at {self.worker_url} cannot be reached "
                          f"({type(exc).__name__}); showing the alerts alone.")

    async def write(self, outcome: Outcome) -> None:
        await self.producer.send_and_wait(self.settings.topic_feedback, value=outcome.value,
                                          key=outcome.key)
        if self.index.add_feedback(outcome.event):
            self.changed()


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)


def _json(data: Any, status: int = 200, **headers: str) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json", headers=headers)


def _is_api(request: web.Request) -> bool:
    path = request.path
    return any(path == p or path.startswith(p) for p in _API)


def _fail(request: web.Request, status: int, message: str, signed_in: bool = True,
          **headers: str) -> web.Response:
    if _is_api(request):
        return _json({"error": message, "status": status}, status, **headers)
    return web.Response(text=render.error_page(status, message, signed_in), status=status,
                        content_type="text/html", headers=headers)


@web.middleware
async def _gate(request: web.Request, handler: _Handler) -> web.StreamResponse:
    console: Console = request.app[CONSOLE]
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else ""
    if canonical not in OPEN and not console.authorized(request):
        if _is_api(request):
            return _json({"error": "missing or wrong API token: send Authorization: Bearer "
                                   "<CHURNWATCH_API_TOKEN>", "status": 401}, 401,
                         **{"WWW-Authenticate": "Bearer"})
        return web.Response(text=render.login_page(), status=401, content_type="text/html",
                            headers={"WWW-Authenticate": "Bearer"})
    if request.method == "POST" and not request.headers.get("Authorization"):
        # Signed in by the cookie: the form must come from the console's own pages.
        origin = request.headers.get("Origin")
        if origin and origin not in (f"http://{request.host}", f"https://{request.host}"):
            return _fail(request, 403, "This form must be sent from the console's own page.")
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("console: %s %s failed", request.method, request.path)
        return _fail(request, 500, "Something went wrong on the console; the details are in "
                                   "its log.")


# -- sign-in ---------------------------------------------------------------

async def login_form(request: web.Request) -> web.StreamResponse:
    console: Console = request.app[CONSOLE]
    token = request.query.get("token")
    if token is not None:  # a link with the token (the demo prints one)
        return _signed_in(console, token, request)
    if console.authorized(request):
        raise web.HTTPSeeOther("/")
    return web.Response(text=render.login_page(), content_type="text/html")


async def login(request: web.Request) -> web.StreamResponse:
    console: Console = request.app[CONSOLE]
    form = await request.post()
    return _signed_in(console, str(form.get("token", "")), request)


def _signed_in(console: Console, token: str, request: web.Request) -> web.StreamResponse:
    if not hmac.compare_digest(token.encode(), console.token.encode()):
        return web.Response(text=render.login_page("That is not the API token."), status=401,
                            content_type="text/html")
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE, console.session_value(), httponly=True, samesite="Strict",
                        path="/", secure=request.secure)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def health(request: web.Request) -> web.StreamResponse:
    console: Console = request.app[CONSOLE]
    f = console.follower
    return _json({"status": "ok", "caught_up": bool(f and f.caught_up),
                  "problem": f.problem if f else None})


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    data = resources.files(__package__).joinpath("static", name).read_bytes()
    return web.Response(body=data, content_type=_STATIC[name],
                        headers={"Cache-Control": "max-age=300"})


# -- pages -----------------------------------------------------------------

def _page_args(request: web.Request) -> tuple[int, int]:
    try:
        page_no = max(1, int(request.query.get("page", "1")))
        per_page = max(1, min(1000, int(request.query.get("per_page", str(PER_PAGE)))))
    except ValueError as exc:
        raise FilterError("page and per_page must be whole numbers") from exc
    return page_no, per_page


async def queue(request: web.Request) -> web.StreamResponse:
    console: Console = request.app[CONSOLE]
    try:
        f = parse_filter(request.query)
        page_no, per_page = _page_args(request)
    except FilterError as exc:
        return _fail(request, 400, str(exc))
    rows = console.index.rows(f)
    shown = rows[(page_no - 1) * per_page: page_no * per_page]
    if request.headers.get("X-Fragment") == "rows":
        return _json({"rows": render.queue_rows(shown, (page_no - 1) * per_page + 1),
                      "feed": console.status_line()})
    query = {k: v for k, v in request.query.items() if k != "page" and v}
    return web.Response(text=render.queue_page(shown, len(rows), page_no, per_page, query,
                                               console.status_line()),
                        content_type="text/html")


def _customer_id(request: web.Request) -> str:
    cid = request.match_info["customer_id"]
    if not _CUSTOMER_ID.match(cid):
        raise FilterError("a customer id is 1-128 characters, with no spaces or '/'")
    return cid


async def card(request: web.Request, error: str = "", status: int = 200) -> web.StreamResponse:
    console: Console = request.app[CONSOLE]
    try:
        cid = _customer_id(request)
    except FilterError as exc:
        return _fail(request, 400, str(exc))
    alerts, feedback = console.index.history(cid)
    report, problem = await console.lookup(cid)
    if not alerts and not feedback and report is None:
        return _fail(request, 404, f"No alerts, outcomes or state for customer {cid!r}.")
    status_of = "none"
    if alerts:
        latest = alerts[-1]
        status_of = console.index.status_of(
            console.index.outcomes(cid, int(latest["episode"])))
    fb = console.settings.policy().feedback
    done = request.query.get("done")
    html = render.card_page(cid, alerts, feedback, console.words.of(cid), report, problem,
                            status_of, done if done in FEEDBACK_OUTCOMES else None,
                            {"contacted": fb.contacted_quiet_days,
                             "resolved": fb.resolved_quiet_days},
                            console.status_line(), error)
    return web.Response(text=html, content_type="text/html", status=status)


async def record_outcome(request: web.Request) -> web.StreamResponse:
    """An outcome button: validated as any feedback event, written, then the card again."""
    console: Console = request.app[CONSOLE]
    try:
        cid = _customer_id(request)
    except FilterError as exc:
        return _fail(request, 400, str(exc))
    form = await request.post()
    outcome = str(form.get("outcome", ""))
    if outcome not in FEEDBACK_OUTCOMES:
        return await card(request, error=f"Unknown outcome {outcome[:40]!r}: choose one of "
                                         f"{', '.join(FEEDBACK_OUTCOMES)}. Nothing was "
                                         "recorded.", status=400)
    report, _ = await console.lookup(cid)
    at = parse_ts(str(report.get("at"))) if report and report.get("at") else time.time()
    try:
        event = from_button(cid, outcome, at if isinstance(at, float) else time.time(),
                            str(form.get("alert_id") or "") or None,
                            str(form.get("note") or "") or None)
        await console.write(event)
    except OutcomeError as exc:
        return await card(request, error=f"Not recorded: {exc}", status=400)
    except Exception as exc:
        log.warning("console: feedback not written: %s", exc)
        return await card(request, error="Not recorded: the feedback topic cannot be written "
                                         "to right now; try again.", status=503)
    raise web.HTTPSeeOther(f"{render.customer_href(cid)}?done={outcome}")


async def search(request: web.Request) -> web.StreamResponse:
    console: Console = request.app[CONSOLE]
    text = request.query.get("q", "").strip()
    hits = console.index.customers(text)
    if text and _CUSTOMER_ID.match(text) and (not hits or hits[0] == text):
        raise web.HTTPSeeOther(render.customer_href(text))
    return web.Response(text=render.search_page(text, hits, console.status_line()),
                        content_type="text/html")


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the index's version, each time it changes (at most once a second)."""
    console: Console = request.app[CONSOLE]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    wake = asyncio.Event()
    console.listeners.add(wake)
    try:
        await response.write(f"retry: 3000\ndata: {console.index.version}\n\n".encode())
        while not console.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=15)
            if console.stopping.is_set():
                break
            if wake.is_set():
                wake.clear()
                await response.write(f"data: {console.index.version}\n\n".encode())
                await asyncio.sleep(1.0)
            else:
                await response.write(b": still here\n\n")
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    finally:
        console.listeners.discard(wake)
    return response


# -- the API ---------------------------------------------------------------

CSV_COLUMNS = ("alert_id", "customer_id", "ts", "episode", "status", "severity", "risk_score",
               "value_at_risk", "route", "signals", "actions", "opened", "summary")


def _cell(value: Any) -> Any:
    """A spreadsheet must not take a value for a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(rows: list[Row]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for r in rows:
        a = r.alert
        w.writerow([_cell(v) for v in (
            a.get("alert_id"), a.get("customer_id"), a.get("ts"), a.get("episode"), r.status,
            a.get("severity"), a.get("risk_score"), a.get("value_at_risk"), a.get("route"),
            ";".join(s.get("code", "") for s in a.get("signals", ())),
            ";".join(x.get("code", "") for x in a.get("actions", ())), r.opened,
            a.get("summary"))])
    return out.getvalue()


async def list_alerts(request: web.Request) -> web.StreamResponse:
    """``GET /alerts``: every episode's latest alert, cluster-wide, filtered and paged."""
    console: Console = request.app[CONSOLE]
    try:
        f = parse_filter(request.query, default_status="all")
        page_no, per_page = _page_args(request)
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "csv"):
            raise FilterError(f"format: {fmt[:20]!r} is not json or csv")
    except FilterError as exc:
        return _fail(request, 400, str(exc))
    rows = console.index.rows(f)
    shown = rows[(page_no - 1) * per_page: page_no * per_page]
    if fmt == "csv":
        return web.Response(text=_csv(shown), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition":
                                     'attachment; filename="churn-alerts.csv"'})
    fol = console.follower
    return _json({"alerts": [{**r.alert, "status": r.status,
                              "outcomes": [o.get("outcome") for o in r.outcomes]}
                             for r in shown],
                  "page": page_no, "per_page": per_page, "total": len(rows),
                  "more": page_no * per_page < len(rows),
                  "complete": bool(fol and fol.caught_up)})


async def post_feedback(request: web.Request) -> web.StreamResponse:
    """``POST /feedback``: a CRM's outcome, validated as the worker validates it."""
    console: Console = request.app[CONSOLE]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return _fail(request, 400, f"the body is not JSON: {exc}")
    try:
        event = from_request(body)
    except OutcomeError as exc:
        return _fail(request, 400, str(exc))
    try:
        await console.write(event)
    except Exception as exc:
        log.warning("console: feedback not written: %s", exc)
        return _fail(request, 503, "the feedback topic cannot be written to right now; "
                                   "send it again (the event_id makes a repeat harmless)")
    return _json({"status": "accepted", "event": event.event}, 202)


# -- the process -----------------------------------------------------------

def make_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[_gate], client_max_size=256 * 1024)
    app[CONSOLE] = console
    app.router.add_get("/", queue)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/health", health)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/search", search)
    app.router.add_get("/events", events)
    app.router.add_get("/customers/{customer_id}", card)
    app.router.add_post("/customers/{customer_id}/outcome", record_outcome)
    app.router.add_get("/alerts", list_alerts)
    app.router.add_post("/feedback", post_feedback)
    return app


async def serve(console: Console, host: str, port: int, ready: Callable[[str], None],
                stop: asyncio.Event) -> None:
    """Run until ``stop`` is set: follow the topics, answer HTTP, then close it all."""
    console.http = aiohttp.ClientSession()
    console.producer = clients.aio_producer(console.settings, acks="all",
                                            enable_idempotence=False)
    follower = console.follower = Follower(console.settings, console.index, console.words,
                                           console.changed)
    follow = asyncio.ensure_future(follower.run())
    runner = web.AppRunner(make_app(console), access_log=None)
    try:
        await console.producer.start()
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        ready(f"http://{host}:{port}/")
        await stop.wait()
    finally:
        console.stopping.set()
        console.changed()
        follow.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follow
        await runner.cleanup()
        with contextlib.suppress(Exception):
            await console.producer.stop()
        await console.http.close()


def run_console(settings: Settings, host: str, port: int, worker_url: str,
                out: TextIO = sys.stdout) -> int:
    """``churnwatch console``: until SIGINT or SIGTERM."""
    token = settings.api_token
    made_up = not token
    if made_up:
        token = secrets.token_urlsafe(18)
    console = Console(settings, token, worker_url.rstrip("/"))

    def ready(url: str) -> None:
        out.write(f"Console on {url} (alerts and feedback from {settings.broker_url}; "
                  f"look-ups from {console.worker_url})\n")
        if made_up:
            out.write(f"No CHURNWATCH_API_TOKEN is set: this run's token is {token}\n"
                      f"Sign in at {url}login?token={token}\n")
        else:
            out.write("Sign in with CHURNWATCH_API_TOKEN (the form, or "
                      "Authorization: Bearer for the API).\n")
        out.flush()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(console, host, port, ready, stop)

    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
    return 0
