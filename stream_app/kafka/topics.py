"""Topic objects.  Inputs are read as raw bytes so that our decoder, not Faust's,
decides what is malformed and sends it to dead-letters with a reason."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from ..core.settings import Settings


@dataclass(frozen=True)
class Topics:
    purchases: TopicT
    contacts: TopicT
    complaints: TopicT
    feedback: TopicT
    #: Outputs are written as the records' JSON (orjson), so Faust only moves bytes.
    churn_alerts: TopicT
    dead_letters: TopicT
    #: Internal, co-partitioned with the inputs: a tick per owned partition
    #: lets the timer sweep run inside stream processing, so its table writes
    #: land on the right changelog partition, and silence is noticed with no
    #: input at all.
    clock: TopicT
    clock_topic: str
    #: Topic name -> decoder kind.
    kind_by_topic: dict[str, str]

    @property
    def inputs(self) -> list[TopicT]:
        return [self.purchases, self.contacts, self.complaints, self.feedback]


def make_topics(app: faust.App, settings: Settings) -> Topics:
    def raw(name: str, key_type: type = bytes) -> TopicT:
        return app.topic(name, key_type=key_type, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=settings.partitions)

    return Topics(
        purchases=raw(settings.topic_purchases),
        contacts=raw(settings.topic_contacts),
        complaints=raw(settings.topic_complaints),
        feedback=raw(settings.topic_feedback),
        churn_alerts=raw(settings.topic_alerts, key_type=str),
        dead_letters=raw(settings.topic_dead_letters),
        clock=raw(settings.clock_topic),
        clock_topic=settings.clock_topic,
        kind_by_topic=settings.kind_by_topic(),
    )
