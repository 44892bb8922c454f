"""The worker harness's pure parts: the child's environment and the HTTP GET."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stream_app.core.settings import Settings, from_env
from stream_app.kafka.broker import free_port
from stream_app.offline.harness import http_get, worker_env


def test_the_worker_gets_exactly_the_settings_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_BROKER_URL", "kafka://shell-broker:9092")
    monkeypatch.setenv("CHURNWATCH_NOT_A_SETTING", "x")
    s = Settings(store="memory://").with_overrides(broker_url="kafka://k1:9093",
                                                   topic_contacts="crm-contacts")
    env = worker_env(s)
    assert "CHURNWATCH_NOT_A_SETTING" not in env
    assert env["PATH"] == os.environ["PATH"]
    assert from_env(env) == s


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/ready" else 404
        body = b"ok" if status == 200 else b"no such page"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_get_answers_status_and_body(server: int) -> None:
    assert http_get(server, "/ready") == (200, b"ok")
    assert http_get(server, "/missing") == (404, b"no such page")


def test_http_get_of_nothing_listening_is_status_0() -> None:
    status, body = http_get(free_port(), "/ready", timeout=2.0)
    assert status == 0 and body  # the error, for whoever prints it
