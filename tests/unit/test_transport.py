"""The fetch high-water check the merge asks for every released event."""

from __future__ import annotations

import random
from types import SimpleNamespace

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.subscription_state import SubscriptionState
from faust.types import TP

from stream_app.transport import fresh_highwater

TOPICS = ("purchases", "contacts", "complaints", "feedback")


def _through_aiokafka(consumer: object, tp: TP, siblings: list[TP]) -> int | None:
    """The same answer through aiokafka's public methods, as it was first written."""
    try:
        polled = AIOKafkaConsumer.last_poll_timestamp(consumer, tp)
        highwater: int | None = AIOKafkaConsumer.highwater(consumer, tp)
        newest = max((AIOKafkaConsumer.last_poll_timestamp(consumer, s) or 0
                      for s in siblings), default=0)
    except AssertionError:  # not assigned
        return None
    if polled is None or polled < newest:
        return None
    return highwater


async def test_reads_what_aiokafkas_methods_read() -> None:
    rng = random.Random(3)
    answers = set()
    for _ in range(300):
        subscription = SubscriptionState()
        everything = [TP(t, p) for t in TOPICS for p in range(2)]
        # Now and then a partition is not assigned (a rebalance under way).
        subscription.assign_from_user({tp for tp in everything if rng.random() > 0.05})
        assignment = subscription.subscription.assignment
        for tp in assignment.tps:
            state = assignment.state_value(tp)
            state.timestamp = rng.choice([None, 1000, 1000, 1001, 1002])
            state.highwater = None if state.timestamp is None else rng.randrange(50)
        consumer = SimpleNamespace(_subscription=subscription)
        for tp in everything:
            siblings = [TP(t, tp.partition) for t in TOPICS if t != tp.topic]
            expected = _through_aiokafka(consumer, tp, siblings)
            assert fresh_highwater(consumer, tp, siblings) == expected
            answers.add(expected is None)
    assert answers == {True, False}  # both answers were exercised
    # Nothing assigned at all (before the first assignment).
    nothing = SimpleNamespace(_subscription=SubscriptionState())
    assert fresh_highwater(nothing, TP("purchases", 0), [TP("contacts", 0)]) is None
