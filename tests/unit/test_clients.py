"""The one client factory: what each client is built with (no broker).

That the clients really connect over TLS is shown against a broker in
tests/integration/test_tls.py; SASL cannot be shown there (the embedded
broker cannot hold a user), so here each factory is checked to hand the
SASL credentials to the client library, and not to let a caller replace them.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import stream_app
from stream_app.core.settings import from_env
from stream_app.kafka import clients

SASL = {"CHURNWATCH_STORE": "memory://", "CHURNWATCH_BROKER_URL": "kafka://k1:9093;k2:9093",
        "CHURNWATCH_SECURITY_PROTOCOL": "SASL_SSL", "CHURNWATCH_SASL_MECHANISM": "SCRAM-SHA-256",
        "CHURNWATCH_SASL_USERNAME": "churnwatch", "CHURNWATCH_SASL_PASSWORD": "pw"}
FACTORIES = {"producer": "KafkaProducer", "consumer": "KafkaConsumer",
             "admin": "KafkaAdminClient", "aio_producer": "AIOKafkaProducer",
             "aio_consumer": "AIOKafkaConsumer"}
CLIENT_CLASSES = set(FACTORIES.values())


class Recorder:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


@pytest.mark.parametrize("factory", sorted(FACTORIES))
def test_each_factory_carries_the_security_settings(factory: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, FACTORIES[factory], Recorder)
    s = from_env(SASL)
    topics = ("purchases",) if "consumer" in factory else ()
    built = getattr(clients, factory)(s, *topics, client_id="x")
    assert built.args == topics
    assert built.kwargs["bootstrap_servers"] == "k1:9093,k2:9093"
    assert built.kwargs["security_protocol"] == "SASL_SSL"
    assert built.kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (built.kwargs["sasl_plain_username"], built.kwargs["sasl_plain_password"]) == (
        "churnwatch", "pw")
    assert built.kwargs["ssl_context"] is not None
    assert built.kwargs["client_id"] == "x"


def test_a_caller_cannot_replace_the_connection_settings() -> None:
    s = from_env(SASL)
    with pytest.raises(TypeError, match="bootstrap_servers, security_protocol"):
        clients.producer(s, security_protocol="PLAINTEXT", bootstrap_servers="other:9092")


def test_no_module_builds_a_kafka_client_of_its_own() -> None:
    """Every client of the package is built by the factory."""
    builders: set[str] = set()
    for path in Path(stream_app.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in CLIENT_CLASSES:
                    builders.add(path.name)
    assert builders == {"clients.py"}
