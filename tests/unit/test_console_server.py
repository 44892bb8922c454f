"""The console's HTTP: the token gate, escaping, outcomes, the API.  No broker:
the index is filled by hand, the feedback producer and the worker are fakes."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream_app.core.decoding import Decoded, decode
from stream_app.core.settings import Settings
from stream_app.interfaces.console.index import Filter
from stream_app.interfaces.console.server import Console, make_app

from .console_samples import alert

TOKEN = "t0ken-for-the-console"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVIL = "<script>document.title='pwned'</script> & \"quotes\""


@dataclass
class FakeProducer:
    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    fail: bool = False

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.sent.append((topic, key, value))


def _worker_report(customer_id: str) -> dict[str, Any]:
    return {"customer_id": customer_id, "at": "2025-03-03T00:00:00Z", "risk_score": 72.0,
            "severity": "high", "route": "call_center",
            "risk": {"value_at_risk": 640.0}, "episode": {"number": 1, "open": True},
            "signals": [], "actions": [],
            "history": {"purchases": [{"ts": "2025-01-02T00:00:00Z", "event_id": "p1"}],
                        "complaints": [{"ts": "2025-03-01T09:00:00Z", "event_id": "k1",
                                        "category": "technical_fault", "severity": 4}],
                        "outreach": [], "concerns": []}}


@pytest.fixture
async def console() -> AsyncIterator[tuple[TestClient[Any, Any], Console, FakeProducer]]:
    worker = web.Application()

    async def lookup(request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        if cid.startswith("unknown"):
            return web.json_response({"error": "no customer"}, status=404)
        return web.json_response(_worker_report(cid))

    worker.router.add_get("/customers/{cid}", lookup)
    worker_server = TestServer(worker)
    await worker_server.start_server()
    producer = FakeProducer()
    c = Console(Settings(), TOKEN, str(worker_server.make_url("")).rstrip("/"))
    c.producer = producer
    c.http = aiohttp.ClientSession()
    c.index.add_alert(alert("C1", ts="2025-03-01T10:00:00Z", risk=64, value=600))
    c.index.add_alert(alert("C2", risk=30, value=50, route="marketing", severity="medium"))
    c.words.add("complaints", {"event_id": "k1", "customer_id": "C1",
                               "ts": "2025-03-01T09:00:00Z", "category": "technical_fault",
                               "severity": 4, "text": EVIL})
    client = TestClient(TestServer(make_app(c)))
    await client.start_server()
    try:
        yield client, c, producer
    finally:
        await client.close()
        await c.http.close()
        await worker_server.close()


@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("GET", "/customers/C1"), ("GET", "/alerts"), ("GET", "/alerts?format=csv"),
    ("POST", "/feedback"), ("GET", "/events"), ("GET", "/search?q=C1"),
    ("POST", "/customers/C1/outcome"), ("GET", "/no/such/page")])
async def test_without_the_token_nothing_about_customers_is_shown(
        console: Any, method: str, path: str) -> None:
    client, _, producer = console
    r = await client.request(method, path, data=b'{"customer_id":"C1","outcome":"retained"}')
    body = await r.text()
    assert r.status == 401
    assert "C1" not in body and "C2" not in body
    assert producer.sent == []
    r = await client.request(method, path, headers={"Authorization": "Bearer wrong"})
    assert r.status == 401


async def test_the_sign_in_form_sets_a_cookie_that_opens_the_pages(console: Any) -> None:
    client, _, _ = console
    r = await client.get("/")
    assert r.status == 401 and 'name="token"' in await r.text()
    r = await client.post("/login", data={"token": "guess"}, allow_redirects=False)
    assert r.status == 401 and "not the API token" in await r.text()
    r = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert r.status == 303
    cookie = r.cookies["churnwatch_console"]
    assert cookie.value != TOKEN and cookie["httponly"] and cookie["samesite"] == "Strict"
    r = await client.get("/")
    page = await r.text()
    assert r.status == 200 and "C1" in page and "C2" in page
    assert page.index("C1") < page.index("C2"), "the riskier money comes first"
    r = await client.post("/logout", allow_redirects=False)
    assert r.status == 303
    client.session.cookie_jar.clear()
    assert (await client.get("/")).status == 401


async def test_customer_text_is_shown_as_text_never_as_markup(console: Any) -> None:
    client, _, _ = console
    r = await client.get("/customers/C1", headers=AUTH)
    page = await r.text()
    assert r.status == 200
    assert "<script>document" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt; &amp; &quot;" in page
    assert page.count("<script") == 1 and '<script src="/static/console.js">' in page
    assert '<p dir="rtl" lang="he" class="he">לקוח C1' in page
    assert "<svg" in page and "72<span>%</span>" in page  # the worker's risk now
    assert "p1" in page and "technical fault, severity 4/5" in page  # the timeline


async def test_an_outcome_button_writes_valid_feedback_and_the_card_shows_it(
        console: Any) -> None:
    client, _, producer = console
    r = await client.post("/customers/C1/outcome", headers=AUTH,
                          data={"outcome": "retained", "alert_id": "C1-1-0", "note": "kept"},
                          allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/customers/C1?done=retained"
    ((topic, key, value),) = producer.sent
    assert topic == "feedback" and key == b"C1"
    decoded = decode("feedback", key, value)
    assert isinstance(decoded, Decoded) and decoded.record.outcome == "retained"
    assert decoded.record.ts == "2025-03-03T00:00:00Z"  # the worker's clock for the customer
    page = await (await client.get("/customers/C1?done=retained", headers=AUTH)).text()
    assert "Recorded <strong>Retained</strong>" in page and "leaves the queue" in page
    assert 'class="status st-closed"' in page
    queue = await (await client.get("/", headers=AUTH)).text()
    assert "/customers/C1" not in queue and "/customers/C2" in queue


async def test_unknown_outcomes_are_refused_with_a_clear_message(console: Any) -> None:
    client, _, producer = console
    r = await client.post("/customers/C1/outcome", headers=AUTH, data={"outcome": "won"})
    assert r.status == 400
    assert "Unknown outcome &#x27;won&#x27;: choose one of contacted, retained" in await r.text()
    r = await client.post("/feedback", headers=AUTH,
                          data=orjson.dumps({"customer_id": "C1", "outcome": "won"}))
    assert r.status == 400
    assert (await r.json())["error"].startswith("unknown outcome 'won': the outcomes are")
    r = await client.post("/feedback", headers=AUTH, data=b"{not json")
    assert r.status == 400 and "not JSON" in (await r.json())["error"]
    assert producer.sent == []


async def test_post_feedback_for_crms(console: Any) -> None:
    client, c, producer = console
    r = await client.post("/feedback", headers=AUTH, data=orjson.dumps({
        "event_id": "crm-1", "customer_id": "C2", "ts": "2025-03-02T00:00:00Z",
        "outcome": "false_alarm"}))
    assert r.status == 202
    assert (await r.json())["event"]["event_id"] == "crm-1"
    assert [k for _, k, _ in producer.sent] == [b"C2"]
    closed = c.index.rows(Filter(status="closed"))
    assert [r.alert["customer_id"] for r in closed] == ["C2"]
    producer.fail = True
    r = await client.post("/feedback", headers=AUTH, data=orjson.dumps({
        "customer_id": "C2", "outcome": "contacted"}))
    body = await r.text()
    assert r.status == 503 and "cannot be written" in body and "Traceback" not in body


async def test_get_alerts_pages_filters_and_exports_csv(console: Any) -> None:
    client, _, _ = console
    r = await client.get("/alerts?per_page=1", headers=AUTH)
    data = await r.json()
    assert r.status == 200 and data["total"] == 2 and data["more"] is True
    assert [a["customer_id"] for a in data["alerts"]] == ["C1"]
    assert data["alerts"][0]["status"] == "new"
    r = await client.get("/alerts?route=marketing", headers=AUTH)
    assert [a["customer_id"] for a in (await r.json())["alerts"]] == ["C2"]
    r = await client.get("/alerts?format=csv", headers=AUTH)
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert [row["customer_id"] for row in rows] == ["C1", "C2"]
    assert rows[0]["signals"] == "COMPLAINTS" and rows[0]["status"] == "new"
    r = await client.get("/alerts?severity=urgent", headers=AUTH)
    assert r.status == 400 and "severity: urgent is not one of" in (await r.json())["error"]


async def test_errors_are_messages_never_stack_traces(console: Any) -> None:
    client, c, _ = console

    def broken(*_: Any) -> Any:
        raise RuntimeError("internal detail that must not leak")

    c.index.rows = broken  # type: ignore[method-assign]
    r = await client.get("/", headers=AUTH)
    body = await r.text()
    assert r.status == 500 and "went wrong" in body
    assert "internal detail" not in body and "Traceback" not in body
    r = await client.get("/customers/unknown-9", headers=AUTH)
    assert r.status == 404 and "No alerts, outcomes or state" in await r.text()
    r = await client.get("/customers/" + "x" * 200, headers=AUTH)
    assert r.status == 400


async def test_static_assets_ship_in_the_package(console: Any) -> None:
    client, _, _ = console
    for name in ("console.css", "console.js", "favicon.svg"):
        r = await client.get(f"/static/{name}")
        assert r.status == 200 and len(await r.read()) > 100
    page = await (await client.get("/", headers=AUTH)).text()
    assert "http://" not in page and "https://" not in page, "no asset from the internet"
