"""Publishing: each alert sent once, even when a crash had already sent it."""

from __future__ import annotations

import asyncio

import pytest

from stream_app.core.records import ChurnAlert
from stream_app.core.state import new_state
from stream_app.engine.ordering import MergeQueue
from stream_app.engine.publisher import Publisher
from stream_app.engine.work import PartitionWork, Stats

from .fakes import Outputs


def _alert(alert_id: str) -> ChurnAlert:
    fields = {name: None for name in ChurnAlert.__dataclass_fields__}
    fields.update(alert_id=alert_id, customer_id="c1", signals=[])
    return ChurnAlert(**fields)  # type: ignore[arg-type]


@pytest.fixture
def sent() -> tuple[Outputs, Publisher, PartitionWork]:
    out = Outputs()
    return out, Publisher(out.send_alert, Stats(), lambda: 100.0, recent=2), PartitionWork(
        MergeQueue({}), published={"a2"})


def test_alerts_published_before_a_crash_are_not_sent_again(
        sent: tuple[Outputs, Publisher, PartitionWork]) -> None:
    out, publisher, work = sent
    state = new_state("c1")

    async def go() -> None:
        for alert_id in ("a1", "a2", "a3", "a2"):
            await publisher.publish(0, work, state, _alert(alert_id), 50.0, None)

    asyncio.run(go())
    # a2 is suppressed once (the topic has it); raised again later, it is new.
    assert [a.alert_id for a in out.alerts] == ["a1", "a3", "a2"]
    assert publisher.stats.suppressed == 1 and work.published == set()
    assert len(work.alert_offsets) == 3
    assert [a.alert_id for a in publisher.recent] == ["a3", "a2"]  # the latest, bounded
