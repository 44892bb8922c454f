"""Topic objects.  Inputs are read as raw bytes so that our decoder, not Faust's,
decides what is malformed and sends it to dead-letters with a reason."""

from __future__ import annotations

from faust.types import TopicT

from .app import app, settings


def _raw_input(name: str) -> TopicT:
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw",
        value_serializer="raw", partitions=settings.partitions,
    )


purchases = _raw_input(settings.topic_purchases)
contacts = _raw_input(settings.topic_contacts)
complaints = _raw_input(settings.topic_complaints)
feedback = _raw_input(settings.topic_feedback)

#: Outputs are written as the records' JSON (orjson), so Faust only moves bytes.
churn_alerts = app.topic(
    settings.topic_alerts, key_type=str, value_type=bytes, key_serializer="raw",
    value_serializer="raw", partitions=settings.partitions,
)
dead_letters = app.topic(
    settings.topic_dead_letters, key_type=bytes, value_type=bytes,
    key_serializer="raw", value_serializer="raw", partitions=settings.partitions,
)

#: Internal, co-partitioned with the inputs: a tick per owned partition lets
#: the timer sweep run inside stream processing, so its table writes land on
#: the right changelog partition, and silence is noticed with no input at all.
CLOCK_TOPIC = settings.clock_topic
clock = app.topic(
    CLOCK_TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw",
    value_serializer="raw", partitions=settings.partitions, internal=False,
)

#: Topic name -> decoder kind.
KIND_BY_TOPIC = settings.kind_by_topic()
