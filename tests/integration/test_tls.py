"""The tools reach a broker that speaks only TLS, with a client certificate.

The embedded broker (Tansu 0.6.0) cannot listen with TLS: its ``--cert`` and
``--key`` options refuse to be given together, and either one alone leaves
the listener in plain text.  So the test puts a TLS-terminating proxy in
front of it, as a managed Kafka service's load balancer would be, and makes
the broker advertise the proxy's address: every connection a client opens,
to bootstrap or to the partition leader, goes through TLS.  The proxy
requires a client certificate signed by the test CA, so the tools must carry
``CHURNWATCH_SSL_CAFILE``, ``_CERTFILE`` and ``_KEYFILE`` all the way to the
socket.  SASL is not exercised here: the embedded broker's authentication
has no way to create a user on its in-memory store before it demands one.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from aiokafka import TopicPartition as AioTopicPartition
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from stream_app.core.settings import Settings, env_name
from stream_app.core.state import new_state
from stream_app.interfaces.cli import main
from stream_app.interfaces.explain import latest_state
from stream_app.kafka import clients
from stream_app.kafka.admin import create_topics
from stream_app.kafka.broker import LocalBroker, free_port
from stream_app.offline.evaluate import read_states
from stream_app.offline.harness import Collected, committed_total, consume_outputs
from stream_app.offline.progress import Progress

pytestmark = pytest.mark.integration

CLIENT_NAME = "churnwatch-tools.example"


class TlsProxy:
    """TLS on 127.0.0.1:``port`` in front of a plain-text broker port."""

    def __init__(self, context: ssl.SSLContext, port: int, upstream: int) -> None:
        self.context, self.port, self.upstream = context, port, upstream
        #: The name in each client certificate presented, one per connection.
        self.clients: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> TlsProxy:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.context), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cert = writer.get_extra_info("peercert") or {}
        self.clients.append(",".join(name for _, name in cert.get("subjectAltName", ())))
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
                writer.close()


class BrokerBehindProxy(LocalBroker):
    """The embedded broker, announcing the proxy's address instead of its own."""

    def __init__(self, advertised_port: int, log_path: Path) -> None:
        super().__init__(log_path=log_path)
        self.advertised_port = advertised_port

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--advertised-listener-url") + 1] = f"tcp://127.0.0.1:{self.advertised_port}"
        return cmd


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, TlsProxy]]:
    d = tmp_path_factory.mktemp("tls-broker")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert(CLIENT_NAME)
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    client.private_key_pem.write_to_path(str(d / "client.key"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate, no entry
    proxy_port = free_port()
    with BrokerBehindProxy(proxy_port, d / "broker.log") as broker, \
            TlsProxy(context, proxy_port, broker.port) as proxy:
        s = Settings().with_overrides(
            broker_url=f"kafka://127.0.0.1:{proxy_port}", broker_profile="local",
            store="memory://", app_id="churnwatch-tls", partitions=2,
            security_protocol="SSL", ssl_cafile=str(d / "ca.pem"),
            ssl_certfile=str(d / "client.pem"), ssl_keyfile=str(d / "client.key"))
        create_topics(s)
        yield s, proxy


def read_all(s: Settings, topic: str) -> list[Any]:
    consumer = clients.consumer(s, enable_auto_commit=False, consumer_timeout_ms=1500)
    try:
        parts = [TopicPartition(topic, p) for p in range(s.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        return list(consumer)
    finally:
        consumer.close()


def tls_env(monkeypatch: pytest.MonkeyPatch, s: Settings, **changes: str) -> None:
    """The CHURNWATCH_* variables of ``s`` (and ``changes``), as a deployment sets them."""
    for name in ("broker_url", "broker_profile", "store", "app_id", "partitions",
                 "security_protocol", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        monkeypatch.setenv(env_name(name), str(getattr(s, name)))
    for name, value in changes.items():
        monkeypatch.setenv(env_name(name), value)


def test_a_client_without_tls_cannot_reach_it(tls_broker: tuple[Settings, TlsProxy]) -> None:
    """What replay did before it used the factory: bootstrap servers alone."""
    s, _ = tls_broker
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=s.bootstrap_servers, bootstrap_timeout_ms=3000)


def test_replay_over_tls(tls_broker: tuple[Settings, TlsProxy], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                         ) -> None:
    s, proxy = tls_broker
    rows = [f"T{i % 7:03d},2024-01-{1 + i % 28:02d}T10:00:00Z,{10 + i}" for i in range(40)]
    sales = tmp_path / "sales.csv"
    sales.write_text("customer_id,ts,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    tls_env(monkeypatch, s)
    seen_before = len(proxy.clients)

    assert main(["replay", "--purchases", str(sales)]) == 0
    assert "sent 40 events" in capsys.readouterr().out

    got = read_all(s, s.topic_purchases)
    assert sorted(m.key for m in got) == sorted(r.split(",")[0].encode() for r in rows)
    assert sorted(orjson.loads(m.value)["amount"] for m in got) == [10 + i for i in range(40)]
    # Every connection of the replay presented the client certificate.
    assert len(proxy.clients) > seen_before
    assert set(proxy.clients[seen_before:]) == {CLIENT_NAME}


def test_replay_to_a_broker_url_over_tls(tls_broker: tuple[Settings, TlsProxy], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``--broker-url`` replaces the address only: the TLS settings still apply."""
    s, proxy = tls_broker
    nowhere = f"kafka://127.0.0.1:{free_port()}"
    tls_env(monkeypatch, s, broker_url=nowhere, topic_purchases="purchases-by-url")
    sales = tmp_path / "sales.jsonl"
    sales.write_text("".join(
        orjson.dumps({"customer_id": f"U{i % 3}", "ts": f"2024-02-{1 + i:02d}T09:00:00Z",
                      "amount": 5 + i}).decode() + "\n" for i in range(12)), encoding="utf-8")
    seen_before = len(proxy.clients)

    assert main(["replay", "--purchases", str(sales), "--broker-url", s.broker_url]) == 0
    assert f"sent 12 events (2024-02-01 to 2024-02-12) to {s.broker_url}" in (
        capsys.readouterr().out)

    got = read_all(s.with_overrides(topic_purchases="purchases-by-url"), "purchases-by-url")
    assert sorted(orjson.loads(m.value)["amount"] for m in got) == [5 + i for i in range(12)]
    assert sorted(m.key for m in got) == sorted(f"U{i % 3}".encode() for i in range(12))
    assert len(proxy.clients) > seen_before
    assert set(proxy.clients[seen_before:]) == {CLIENT_NAME}


def test_evaluate_on_a_broker_url_over_tls(tls_broker: tuple[Settings, TlsProxy],
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The tools' clients and the worker evaluate starts all reach the broker over TLS."""
    s, proxy = tls_broker
    tls_env(monkeypatch, s, broker_url=f"kafka://127.0.0.1:{free_port()}")
    out = tmp_path / "report.json"
    seen_before = len(proxy.clients)

    assert main(["evaluate", "--dataset", "synthetic", "--customers", "40",
                 "--broker-url", s.broker_url, "--format", "json", "--json", str(out)]) == 0

    report = orjson.loads(out.read_bytes())
    assert report["run"]["broker"] == s.broker_url
    assert report["run"]["events_replayed"] > 0 and report["run"]["dead_letters"] == 0
    assert report["customers"]["evaluated"] > 0
    assert report["customers"]["without_state"] == 0  # the changelog was read back
    assert orjson.loads(capsys.readouterr().out) == report
    # The worker's connections went through the proxy too, with the certificate.
    assert len(proxy.clients) > seen_before
    assert set(proxy.clients[seen_before:]) == {CLIENT_NAME}


def test_every_tool_client_connects_over_tls(tls_broker: tuple[Settings, TlsProxy]) -> None:
    """The demo's, evaluate's and explain's readers, through the same factory."""
    s, proxy = tls_broker
    state = new_state("T-explain")
    state.partition, state.last_ts = 0, 1_700_000_000.0
    alert = {"alert_id": "a-tls", "customer_id": "T-explain"}
    producer = clients.producer(s, acks=1)
    try:
        producer.send(s.state_changelog_topic, key=b"T-explain", value=state.to_bytes(),
                      partition=0).get(30)
        md = producer.send(s.topic_alerts, key=b"T-explain", value=orjson.dumps(alert),
                           partition=0).get(30)
    finally:
        producer.close()

    found = latest_state(s, "T-explain")
    assert found is not None and found.last_ts == state.last_ts
    states = read_states(s, {"T-explain": state.last_ts}, 30, Progress(io.StringIO()))
    assert states["T-explain"].last_ts == state.last_ts
    # No worker has committed anything for this group: 0, answered by the
    # group coordinator over TLS (an unreachable broker raises instead).
    assert committed_total(s, {(s.topic_alerts, md.partition): md.offset + 1}) == 0

    got, stop = Collected(), threading.Event()
    reader = threading.Thread(target=consume_outputs, args=(s, got, stop, lambda _a: None),
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not got.alerts and time.monotonic() < deadline and reader.is_alive():
        time.sleep(0.1)
    stop.set()
    reader.join(10)
    assert got.alerts == [alert]
    assert set(proxy.clients) == {CLIENT_NAME}


async def test_aiokafka_clients_connect_over_tls(tls_broker: tuple[Settings, TlsProxy]
                                                 ) -> None:
    s, _ = tls_broker
    topic = s.topic_feedback
    producer = clients.aio_producer(s, acks=1)
    await producer.start()
    try:
        md = await producer.send_and_wait(topic, b'{"aio": true}', key=b"T-aio", partition=1)
    finally:
        await producer.stop()
    consumer = clients.aio_consumer(s, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tp = AioTopicPartition(topic, 1)
        consumer.assign([tp])
        consumer.seek(tp, md.offset)
        batch = await consumer.getmany(tp, timeout_ms=30000)
    finally:
        await consumer.stop()
    assert [(r.key, r.value) for r in batch[tp]][:1] == [(b"T-aio", b'{"aio": true}')]
