"""Every Kafka client the tools build, built here, with the broker security settings.

The worker's own clients come from Faust (:mod:`stream_app.kafka.faust_config`);
everything else (replay, evaluate, the demo, ``explain``, topic admin)
builds kafka-python or aiokafka clients of its own.  Each of those used to
pass ``bootstrap_servers`` alone, so a tool that worked on the laptop could
not reach a ``SASL_SSL`` cluster.  Building them all here, from
:func:`~stream_app.core.settings.kafka_client_options`, means a tool connects
exactly as the worker does, and a new tool cannot forget the TLS or SASL
settings.

Callers pass only what the job needs (batching, offsets, group, timeouts).
The connection and security arguments come from the settings alone: an
override of them is refused, because it would quietly connect differently
from what ``CHURNWATCH_*`` says.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from ..core.settings import Settings, kafka_client_options

#: Arguments that only the settings may set.
CONNECTION_OPTIONS = frozenset({
    "bootstrap_servers", "security_protocol", "ssl_context", "sasl_mechanism",
    "sasl_plain_username", "sasl_plain_password",
})


def options(s: Settings, opts: dict[str, Any]) -> dict[str, Any]:
    """The settings' connection arguments plus the caller's own."""
    clash = sorted(CONNECTION_OPTIONS & opts.keys())
    if clash:
        raise TypeError(f"{', '.join(clash)}: set by the CHURNWATCH_* settings, "
                        "not by the caller (use Settings.with_overrides)")
    return {**kafka_client_options(s), **opts}


def producer(s: Settings, **opts: Any) -> KafkaProducer:
    return KafkaProducer(**options(s, opts))


def consumer(s: Settings, *topics: str, **opts: Any) -> KafkaConsumer:
    return KafkaConsumer(*topics, **options(s, opts))


def admin(s: Settings, **opts: Any) -> KafkaAdminClient:
    return KafkaAdminClient(**options(s, opts))


def aio_producer(s: Settings, **opts: Any) -> AIOKafkaProducer:
    """An aiokafka producer; build it inside the event loop that will use it."""
    return AIOKafkaProducer(**options(s, opts))


def aio_consumer(s: Settings, *topics: str, **opts: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer; build it inside the event loop that will use it."""
    return AIOKafkaConsumer(*topics, **options(s, opts))
