"""One alert's delivery against a local HTTP endpoint: what is retried, what is not.

:class:`Endpoint` is the fake receiver the sink's tests share: a threaded
``http.server`` on localhost that records every request, answers as the
test scripts it, de-duplicates by ``Idempotency-Key`` and can hold a
request until the test lets it go.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from stream_app.interfaces.sink import signing
from stream_app.interfaces.sink.config import SinkSettings, validate
from stream_app.interfaces.sink.delivery import Outcome, delay, deliver
from stream_app.kafka.broker import free_port


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Endpoint:
    """A webhook receiver on 127.0.0.1; ``answer(request, n)`` scripts the replies
    (``n``: the request's number, from 1), 200 by default."""

    answer: Callable[[Request, int], Answer] = lambda r, n: (200, {}, b"ok")
    requests: list[Request] = field(default_factory=list)
    #: Deliveries per Idempotency-Key (answered 2xx or not).
    seen: Counter[str] = field(default_factory=Counter)
    #: Requests numbered ``hold_from`` and later wait for ``release``.
    hold_from: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                r = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with endpoint.lock:
                    endpoint.requests.append(r)
                    n = len(endpoint.requests)
                    key = r.headers.get("idempotency-key")
                    if key:
                        endpoint.seen[key] += 1
                if endpoint.hold_from is not None and n >= endpoint.hold_from:
                    endpoint.held.set()
                    endpoint.release.wait(60)
                status, headers, text = endpoint.answer(r, n)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:  # the client went away (a killed sink)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/churn"

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.seen.values())

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.close()


def sink(url: str, **changes: Any) -> SinkSettings:
    return validate(SinkSettings(**{"sink_url": url, "sink_backoff_seconds": 0.5,
                                    "sink_max_delay_seconds": 30.0, **changes}))


class Sleeps:
    """The back-off's waits, recorded instead of waited; ``stop_after``: the
    wait at which the sink is asked to stop."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.waits: list[float] = []
        self.stop_after = stop_after

    async def __call__(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.stop_after is not None and len(self.waits) >= self.stop_after


def run(s: SinkSettings, body: bytes = b'{"alert_id": "a1"}', sleeps: Sleeps | None = None,
        stopping: Callable[[], bool] = lambda: False) -> tuple[Outcome, Sleeps]:
    sleeps = sleeps or Sleeps()

    async def go() -> Outcome:
        async with aiohttp.ClientSession() as session:
            return await deliver(session, s, "a1", body, stopping, sleeps, random.Random(1))

    return asyncio.run(go()), sleeps


def statuses(*codes: int, headers: dict[str, str] | None = None
             ) -> Callable[[Request, int], Answer]:
    """Answer the n-th request with codes[n-1], the last one from then on."""
    return lambda r, n: (codes[min(n, len(codes)) - 1], headers or {}, b"nope")


def test_a_2xx_is_delivered_at_once_with_the_idempotency_key(endpoint: Endpoint) -> None:
    endpoint.answer = statuses(202)
    outcome, sleeps = run(sink(endpoint.url, sink_headers="X-Team: retention"))
    assert (outcome.verdict, outcome.attempts, outcome.status) == ("delivered", 1, 202)
    (r,) = endpoint.requests
    assert r.path == "/hooks/churn" and r.body == b'{"alert_id": "a1"}'
    assert r.headers["idempotency-key"] == "a1"
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-team"] == "retention"
    assert signing.HEADER.lower() not in r.headers, "unsigned without a secret"
    assert sleeps.waits == []


def test_a_signed_request_verifies_with_the_secret_and_only_with_it(endpoint: Endpoint) -> None:
    run(sink(endpoint.url, sink_secret="s3cret", sink_authorization="Bearer tok"))
    (r,) = endpoint.requests
    header = r.headers[signing.HEADER.lower()]
    assert header.startswith("t=") and ",v1=" in header
    assert signing.verify("s3cret", r.body, header)
    assert not signing.verify("other", r.body, header)
    assert not signing.verify("s3cret", r.body + b" ", header)
    assert r.headers["authorization"] == "Bearer tok"


def test_a_signature_expires() -> None:
    header = signing.signature("k", b"{}", at=1_000_000)
    assert signing.verify("k", b"{}", header, now=1_000_000 + 299)
    assert not signing.verify("k", b"{}", header, now=1_000_000 + 301)
    assert not signing.verify("k", b"{}", "v1=abc")
    assert not signing.verify("k", b"{}", "t=x,v1=abc")


@pytest.mark.parametrize("code", [500, 502, 503, 408, 429])
def test_408_429_and_5xx_are_retried_until_delivered(endpoint: Endpoint, code: int) -> None:
    endpoint.answer = statuses(code, code, 200)
    outcome, sleeps = run(sink(endpoint.url))
    assert (outcome.verdict, outcome.attempts) == ("delivered", 3)
    assert len(sleeps.waits) == 2
    assert {r.headers["idempotency-key"] for r in endpoint.requests} == {"a1"}


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 410, 413, 422])
def test_other_4xx_are_refused_at_once(endpoint: Endpoint, code: int) -> None:
    endpoint.answer = lambda r, n: (code, {}, b'{"error": "unknown  event\\ndefinition"}')
    outcome, sleeps = run(sink(endpoint.url))
    assert (outcome.verdict, outcome.attempts, outcome.status) == ("refused", 1, code)
    assert f"HTTP {code}" in outcome.detail and "unknown event" in outcome.detail
    assert len(endpoint.requests) == 1 and sleeps.waits == []


def test_a_redirect_is_not_followed_but_named(endpoint: Endpoint) -> None:
    endpoint.answer = lambda r, n: (301, {"Location": "https://new.example.com/h"}, b"")
    outcome, _ = run(sink(endpoint.url))
    assert outcome.verdict == "refused" and "https://new.example.com/h" in outcome.detail
    assert len(endpoint.requests) == 1


def test_500_forever_exhausts_every_attempt(endpoint: Endpoint) -> None:
    endpoint.answer = statuses(500)
    outcome, sleeps = run(sink(endpoint.url, sink_max_attempts=5))
    assert (outcome.verdict, outcome.attempts, outcome.status) == ("exhausted", 5, 500)
    assert len(endpoint.requests) == 5 and len(sleeps.waits) == 4
    assert "HTTP 500" in outcome.detail


def test_retry_after_is_honoured_up_to_the_longest_delay(endpoint: Endpoint) -> None:
    endpoint.answer = statuses(429, 429, 200, headers={"Retry-After": "7"})
    _, sleeps = run(sink(endpoint.url))
    assert all(w >= 7 for w in sleeps.waits)
    endpoint.requests.clear()
    endpoint.answer = statuses(503, 200, headers={"Retry-After": "3600"})
    _, sleeps = run(sink(endpoint.url, sink_max_delay_seconds=20))
    assert sleeps.waits == [20]


def test_no_listener_is_retried_and_reported() -> None:
    outcome, sleeps = run(sink(f"http://127.0.0.1:{free_port()}/x", sink_max_attempts=3))
    assert (outcome.verdict, outcome.attempts, outcome.status) == ("exhausted", 3, None)
    assert "Connect" in outcome.detail and len(sleeps.waits) == 2


def test_an_endpoint_that_does_not_answer_in_time_is_retried(endpoint: Endpoint) -> None:
    endpoint.hold_from = 1  # held until the test ends: far past the time-out
    outcome, _ = run(sink(endpoint.url, sink_max_attempts=2, sink_timeout_seconds=0.2))
    assert (outcome.verdict, outcome.attempts) == ("exhausted", 2)
    assert "no answer within 0.2 s" in outcome.detail


def test_a_stop_ends_the_tries_without_waiting_out_the_back_off(endpoint: Endpoint) -> None:
    endpoint.answer = statuses(500)
    outcome, sleeps = run(sink(endpoint.url), sleeps=Sleeps(stop_after=2))
    assert len(sleeps.waits) == 2
    assert (outcome.verdict, outcome.attempts) == ("stopped", 2)
    assert len(endpoint.requests) == 2
    stopped_now, _ = run(sink(endpoint.url), stopping=lambda: True)
    assert stopped_now.verdict == "stopped" and stopped_now.attempts == 1


def test_the_back_off_doubles_with_jitter_up_to_the_longest_delay() -> None:
    s = sink("http://x/", sink_backoff_seconds=1.0, sink_max_delay_seconds=10.0)
    rng = random.Random(3)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        waits = [delay(attempt, s, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > ceiling / 4, "jittered, not in step"


def test_the_readmes_verification_code_accepts_our_signature() -> None:
    """Receivers copy the README's function; it must agree with what we send."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Verifying the signature", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(code, scope)
    body = b'{"alert_id": "a1"}'
    header = signing.signature("s3cret", body)
    assert scope["verify"]("s3cret", body, header)
    assert not scope["verify"]("s3cret", body + b"\n", header)
    assert not scope["verify"]("s3cret", body, signing.signature("s3cret", body, at=0))
