"""Topic administration with kafka-python: create every topic up front.

Faust's tables need their changelog topics to have the same partition count as
the source topics, and the local broker's auto-creation is not what Faust
expects, so all topics, changelog and clock included, are created here.

The state changelog is created compacted, as Faust would create it: under the
broker's default ``delete`` policy, a customer whose state has not changed for
the retention period (seven days by default) would lose it at the next
recovery, and the customers who went quiet are exactly the ones to watch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ..core.settings import Settings
from . import clients


def topic_names(s: Settings) -> list[str]:
    return [*s.all_topics, *s.internal_topics]


def topic_configs(s: Settings, name: str) -> dict[str, str]:
    """Per-topic configuration beyond the broker defaults."""
    if name == s.state_changelog_topic:
        return {"cleanup.policy": "compact"}
    return {}


def new_topic(s: Settings, name: str) -> NewTopic:
    return NewTopic(name, s.partitions, s.replication, topic_configs=topic_configs(s, name))


class AdminError(RuntimeError):
    """The cluster cannot be used as configured; the message says what to do."""


#: How long the command-line tools wait for the broker before saying so: a
#: person at a terminal wants the answer, not a 30 s retry loop.
TOOL_TIMEOUT = 5.0
#: How long a worker waits at start-up: in a cluster it may start before the
#: brokers are ready, and a retry is what the orchestrator would do anyway.
WORKER_TIMEOUT = 30.0


def unreachable(s: Settings, timeout: float) -> AdminError:
    return AdminError(
        f"cannot reach the broker at {s.broker_url} within {timeout:g} s: start it (for a "
        "local one: churnwatch broker) or point CHURNWATCH_BROKER_URL at it; for a secured "
        "cluster check CHURNWATCH_SECURITY_PROTOCOL and CHURNWATCH_SASL_*/CHURNWATCH_SSL_*"
    )


def admin_client(s: Settings, timeout: float = WORKER_TIMEOUT) -> KafkaAdminClient:
    """An admin client, or :class:`AdminError` once ``timeout`` has passed.

    kafka-python retries the bootstrap itself with backoff until
    ``bootstrap_timeout_ms``; past it, no broker has answered.
    """
    try:
        return clients.admin(s, client_id=f"{s.app_id}-admin",
                             bootstrap_timeout_ms=int(timeout * 1000))
    except KafkaError as exc:
        raise unreachable(s, timeout) from exc


def _name(meta: dict[str, Any]) -> str:
    # kafka-python 3 says "name"; older releases said "topic".
    return str(meta.get("name") or meta.get("topic"))


def create_topics(s: Settings, timeout: float = WORKER_TIMEOUT) -> list[str]:
    """Create missing topics; return the names created.  Checks existing counts."""
    admin = admin_client(s, timeout)
    try:
        existing = set(admin.list_topics())
        wanted = topic_names(s)
        missing = [t for t in wanted if t not in existing]
        for name in missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile
                admin.create_topics([new_topic(s, name)])
        present = [t for t in wanted if t in existing]
        if present:
            for meta in admin.describe_topics(present):
                n = len(meta.get("partitions", []))
                if n and n != s.partitions:
                    raise AdminError(
                        f"topic {_name(meta)} has {n} partitions but CHURNWATCH_PARTITIONS="
                        f"{s.partitions}; all topics must be co-partitioned: set "
                        f"CHURNWATCH_PARTITIONS={n} if the other topics have {n} too, or "
                        "delete and recreate the topics (their events are lost)"
                    )
        return missing
    finally:
        admin.close()


def roles(s: Settings) -> dict[str, str]:
    """Topic name -> what churnwatch uses it for."""
    return {**{topic: "input" for topic in s.kind_by_topic()},
            s.topic_alerts: "output: alerts", s.topic_dead_letters: "output: dead letters",
            s.clock_topic: "internal: idle clock",
            s.state_changelog_topic: "internal: state changelog, created compacted"}


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """One topic as the broker reports it (``partitions`` is 0 when it is missing)."""

    name: str
    role: str
    partitions: int
    #: Per partition: index, leader, replicas, in-sync replicas, offline replicas.
    layout: tuple[dict[str, Any], ...] = ()
    #: Settings the broker reports as changed from its defaults.
    configs: dict[str, str] | None = None


def list_topics(s: Settings, timeout: float | None = None, describe: bool = False
                ) -> list[TopicInfo]:
    """Every topic on the broker and every one churnwatch needs (missing: 0 partitions).

    ``describe`` adds each partition's replicas and the non-default topic
    settings, for churnwatch's topics only (a shared cluster can hold many).
    """
    admin = admin_client(s, TOOL_TIMEOUT if timeout is None else timeout)
    try:
        ours = roles(s)
        names = sorted(set(admin.list_topics()))
        metas = {_name(m): m for m in admin.describe_topics(names)} if names else {}
        configs: dict[str, dict[str, str]] = {}
        if describe:
            present = [n for n in ours if n in metas]
            with contextlib.suppress(KafkaError):  # not every broker answers it
                got = admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, n) for n in present])
                for name, entries in (got.get("topic") or {}).items():
                    configs[name] = {k: str(v.get("value") if isinstance(v, dict) else v)
                                     for k, v in entries.items()}
        out: list[TopicInfo] = []
        for name in sorted(set(names) | set(ours)):
            parts = metas.get(name, {}).get("partitions", [])
            layout: tuple[dict[str, Any], ...] = ()
            if describe and name in ours:
                layout = tuple({"partition": p.get("partition_index", p.get("partition")),
                                "leader": p.get("leader_id", p.get("leader")),
                                "replicas": list(p.get("replica_nodes", p.get("replicas", []))),
                                "isr": list(p.get("isr_nodes", p.get("isr", []))),
                                "offline": list(p.get("offline_replicas", []))}
                               for p in sorted(parts, key=lambda p: p.get("partition_index", 0)))
            out.append(TopicInfo(name, ours.get(name, ""), len(parts), layout,
                                 configs.get(name) if describe and name in ours else None))
        return out
    finally:
        admin.close()
