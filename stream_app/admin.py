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
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from .settings import Settings, kafka_client_options


def topic_names(s: Settings) -> list[str]:
    return [*s.all_topics, *s.internal_topics]


def topic_configs(s: Settings, name: str) -> dict[str, str]:
    """Per-topic configuration beyond the broker defaults."""
    if name == s.state_changelog_topic:
        return {"cleanup.policy": "compact"}
    return {}


def new_topic(s: Settings, name: str) -> NewTopic:
    return NewTopic(name, s.partitions, s.replication, topic_configs=topic_configs(s, name))


def admin_client(s: Settings, timeout: float = 30.0) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return KafkaAdminClient(**kafka_client_options(s), client_id=f"{s.app_id}-admin")
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"cannot reach the broker at {s.broker_url} ({exc}); "
                    "check CHURNWATCH_BROKER_URL and, for a secured cluster, "
                    "CHURNWATCH_SECURITY_PROTOCOL and CHURNWATCH_SASL_*/CHURNWATCH_SSL_*"
                ) from exc
            time.sleep(0.5)


def create_topics(s: Settings) -> list[str]:
    """Create missing topics; return the names created.  Checks existing counts."""
    admin = admin_client(s)
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
                    raise RuntimeError(
                        f"topic {meta['topic']} has {n} partitions but CHURNWATCH_PARTITIONS="
                        f"{s.partitions}; all topics must be co-partitioned"
                    )
        return missing
    finally:
        admin.close()
