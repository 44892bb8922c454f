"""The peer a user would pick instead of Churnwatch: a quix-streams job, for the peer benchmark.

Per customer, in quix-streams' RocksDB state (changelogged): event counts per
kind, the last 12 purchase amounts and the complaint times of the last 30
days; an alert onto a topic when a complaint makes three in 30 days.  It
reads the three input topics as one stream (``StreamingDataFrame.concat``),
keyed by customer, as a quix user would write it.

Run by ``benchmarks/peer.py`` as a child process, possibly with another
Python (``--peer-python``), so this module imports nothing of Churnwatch:
only the standard library and quixstreams.  It stops itself once it has
processed ``--expected`` messages and writes its timings as one JSON object
to ``--result``.

The embedded broker answers DescribeConfigs with no entries, and
quix-streams reads every topic's configuration before it starts (it copies
``retention.ms``/``retention.bytes`` onto the changelog topics it creates);
:class:`DefaultsTopicAdmin` fills what the broker left out with Kafka's
broker defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

#: Kafka's own defaults for the topic configurations quix-streams reads.
KAFKA_TOPIC_DEFAULTS: dict[str, str] = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "min.insync.replicas": "1",
    "max.message.bytes": "1048588",
    "segment.bytes": "1073741824",
    "message.timestamp.type": "CreateTime",
}

DAY = 86400.0
AMOUNTS_KEPT = 12
COMPLAINT_WINDOW_DAYS = 30
COMPLAINTS_TO_ALERT = 3


def with_defaults(described: Mapping[str, str] | None,
                  defaults: Mapping[str, str] = KAFKA_TOPIC_DEFAULTS) -> dict[str, str]:
    """A topic's configuration as described, with Kafka's default for every key left out."""
    return {**defaults, **(described or {})}


def fold(customer: dict[str, Any] | None, kind: str, value: Mapping[str, Any]
         ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One event into a customer's state; the new state and an alert, if this one raises one.

    Pure (the job stores what it returns), so the benchmark's logic is tested
    without a broker.
    """
    c: dict[str, Any] = customer or {"counts": {}, "amounts": [], "complaints": []}
    counts = c["counts"]
    counts[kind] = counts.get(kind, 0) + 1
    alert = None
    if kind == "purchases":
        amounts = c["amounts"]
        amounts.append(float(value.get("amount") or 0.0))
        del amounts[:-AMOUNTS_KEPT]
    elif kind == "complaints":
        ts = datetime.fromisoformat(str(value["ts"])).timestamp()
        since = ts - COMPLAINT_WINDOW_DAYS * DAY
        recent = [t for t in c["complaints"] if t > since]
        recent.append(ts)
        c["complaints"] = recent
        if len(recent) >= COMPLAINTS_TO_ALERT:
            alert = {"customer_id": value.get("customer_id"), "ts": value["ts"],
                     "complaints": len(recent), "window_days": COMPLAINT_WINDOW_DAYS}
    return c, alert


def run(args: argparse.Namespace) -> dict[str, Any]:
    from quixstreams import Application, State
    from quixstreams.models.topics import TopicAdmin, TopicConfig, TopicManager

    class DefaultsTopicAdmin(TopicAdmin):
        """quix's topic admin, tolerant of a broker that describes no topic configs."""

        def inspect_topics(self, topic_names: list[str], timeout: float = 30
                           ) -> dict[str, TopicConfig | None]:
            cluster = self.list_topics(timeout=timeout)
            described: dict[str, dict[str, str]] = {}
            existing = [t for t in topic_names if t in cluster]
            if existing:
                from confluent_kafka.admin import ConfigResource, KafkaException
                futures = self.admin_client.describe_configs(
                    [ConfigResource(2, t) for t in existing], request_timeout=timeout)
                for resource, future in futures.items():
                    try:
                        described[resource.name] = {
                            e.name: e.value for e in future.result().values()}
                    except KafkaException:
                        described[resource.name] = {}
            return {
                t: TopicConfig(num_partitions=len(cluster[t].partitions),
                               replication_factor=len(cluster[t].partitions[0].replicas) or 1,
                               extra_config=with_defaults(described.get(t)))
                if t in cluster else None
                for t in topic_names}

    group = args.group
    topic_manager = TopicManager(
        topic_admin=DefaultsTopicAdmin(broker_address=args.broker),
        consumer_group=group)
    app = Application(broker_address=args.broker, consumer_group=group,
                      state_dir=args.state_dir, auto_offset_reset="earliest",
                      topic_manager=topic_manager, loglevel=args.loglevel)

    seen = {"n": 0, "alerts": 0}
    times: dict[str, float] = {}
    expected = args.expected

    def counted() -> None:
        seen["n"] += 1
        if seen["n"] == 1:
            times["first"] = time.monotonic()
        if seen["n"] >= expected and "last" not in times:
            times["last"] = time.monotonic()
            app.stop()

    def stream_of(kind: str) -> Any:
        sdf = app.dataframe(app.topic(getattr(args, kind), value_deserializer="json"))
        return sdf.apply(lambda value: (kind, value))

    def apply(tagged: tuple[str, dict[str, Any]], state: State) -> dict[str, Any] | None:
        kind, value = tagged
        customer, alert = fold(state.get("customer"), kind, value)
        state.set("customer", customer)
        counted()
        if alert is not None:
            seen["alerts"] += 1
        return alert

    alerts = app.topic(args.alerts, value_serializer="json")
    sdf = stream_of("purchases").concat(stream_of("contacts")).concat(stream_of("complaints"))
    sdf = sdf.apply(apply, stateful=True).filter(lambda alert: alert is not None)
    sdf.to_topic(alerts)

    started = time.monotonic()
    app.run()
    stopped = time.monotonic()
    first, last = times.get("first"), times.get("last")
    span = (last - first) if first is not None and last is not None else 0.0
    return {"processed": seen["n"], "alerts": seen["alerts"],
            "seconds_first_to_last": span,
            "rate": (seen["n"] - 1) / span if span > 0 else 0.0,
            "seconds_start_to_first": (first - started) if first is not None else None,
            "seconds_last_to_stopped": (stopped - last) if last is not None else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", required=True, help="host:port")
    p.add_argument("--group", default="peer-quix")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--purchases", default="purchases")
    p.add_argument("--contacts", default="contacts")
    p.add_argument("--complaints", default="complaints")
    p.add_argument("--alerts", default="peer-alerts")
    p.add_argument("--expected", type=int, required=True,
                   help="stop after processing this many messages")
    p.add_argument("--result", type=Path, required=True, help="write the timings here (JSON)")
    p.add_argument("--loglevel", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.loglevel)
    result = run(args)
    import quixstreams
    result["quixstreams"] = quixstreams.__version__
    args.result.write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
