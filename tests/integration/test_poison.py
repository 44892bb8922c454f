"""Messages too large to copy whole go to dead-letters, and the worker goes on.

Through the real broker: a dead letter that copied a 1 MB value would be
refused by the broker, and a worker that cannot send a dead letter used to
stop, then read the same message again at every restart.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from .conftest import Cluster

pytestmark = pytest.mark.integration

KEY = b"poison-1"
LARGE = {
    "text": orjson.dumps({"event_id": "poison-big", "customer_id": "poison-1",
                          "ts": "2025-06-01T10:00:00Z", "direction": "inbound",
                          "channel": "phone", "text": "x" * 1_000_000}),
    "control": b"\x01" * 1_000_000,
    "utf8": bytes(random.Random(2).choice(range(0x80, 0x100)) for _ in range(800_000)),
}


def test_large_messages_are_dead_lettered_and_the_worker_goes_on(cluster: Cluster) -> None:
    s = cluster.settings
    big = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks=1,
                        max_request_size=4_000_000)
    try:
        for value in LARGE.values():
            big.send(s.topic_contacts, key=KEY, value=value).get(timeout=30)
    finally:
        big.close()
    # The worker commits past them: it took the next message too (refused
    # for a missing field, so no partition clock shared with other tests moves).
    cluster.wait_processed(s.topic_contacts, KEY, {"customer_id": "poison-1"})

    def mine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r["key"] == KEY.decode()]

    letters = mine(cluster.read_until(s.topic_dead_letters, lambda rs: len(mine(rs)) >= 4))
    assert sorted(r["reason_code"] for r in letters) == ["missing_field", *["too_large"] * 3]
    by_digest = {r["value_sha256"]: r for r in letters}
    for value in LARGE.values():
        letter = by_digest[hashlib.sha256(value).hexdigest()]
        assert letter["value_size"] == len(value) and letter["value_truncated"]
        assert letter["reason_code"] == "too_large" and "limit" in letter["reason"]
        assert len(orjson.dumps(letter)) < 500_000
