"""Every input ends either applied or dead-lettered: never both, never neither.

Random bytes and random near-valid records go through the processor's full
message path (decode, apply, assess, store) with a dict for the table.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.core.policy import Policy
from stream_app.engine.processing import Processor

from .fakes import Outputs, handle

KINDS = {k: k for k in ("purchases", "contacts", "complaints", "feedback")}

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
_ts = st.one_of(st.sampled_from(["2025-03-01T10:00:00+02:00", "2025-03-01T10:00:00Z",
                                 "2025-03-01", "yesterday", "2025-13-01T00:00:00Z",
                                 "1850-01-01T00:00:00Z", "2025-03-01T10:00:00"]), _value)
_field_values: dict[str, Any] = {
    "event_id": st.one_of(st.text(min_size=1, max_size=10), _value),
    "customer_id": st.sampled_from(["c1", "c2", "", "c1 "]),
    "ts": _ts,
    "amount": st.one_of(st.floats(-5, 1e10), _value),
    "currency": st.sampled_from(["ILS", "ils", "EURO", None]),
    "direction": st.sampled_from(["inbound", "outbound", "up", 3]),
    "channel": st.sampled_from(["phone", "email", "pigeon", "store", None]),
    "outcome": st.sampled_from(["answered", "no_answer", "unsubscribed", "maybe", None,
                                "retained", "churned"]),
    "text": st.one_of(st.text(max_size=80), st.sampled_from(
        ["והתקלה חזרה", "אצל המתחרים זול יותר", "I want a refund", "ridiculous"])),
    "tags": st.one_of(st.lists(st.sampled_from(["price-match", "refund", "x"]), max_size=3),
                      _value),
    "category": st.sampled_from(["technical_fault", "billing", "weather", 5]),
    "severity": st.one_of(st.integers(0, 6), _value),
    "compensation_requested": st.one_of(st.floats(0, 2000), _value),
}
_VALID = {
    "purchases": {"event_id": "e1", "customer_id": "c1", "ts": "2025-03-01T10:00:00Z",
                  "amount": 12.5},
    "contacts": {"event_id": "e2", "customer_id": "c1", "ts": "2025-03-02T10:00:00Z",
                 "direction": "inbound", "channel": "phone", "text": "אצל המתחרים זול יותר"},
    "complaints": {"event_id": "e3", "customer_id": "c1", "ts": "2025-03-03T10:00:00Z",
                   "category": "technical_fault", "severity": 5},
    "feedback": {"event_id": "e4", "customer_id": "c1", "ts": "2025-03-04T10:00:00Z",
                 "outcome": "contacted"},
}


@st.composite
def _near_valid(draw: st.DrawFn) -> bytes:
    """A valid record of some kind with up to three fields replaced or removed."""
    record = dict(_VALID[draw(st.sampled_from(sorted(_VALID)))])
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(_field_values)))
        if draw(st.booleans()) and name in record:
            del record[name]
        else:
            record[name] = draw(_field_values[name])
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)


_message = st.tuples(
    st.sampled_from(sorted(KINDS)),
    st.sampled_from([b"c1", b"c2", None, b'"c1"']),
    st.one_of(st.binary(max_size=200), _near_valid(), _near_valid(), st.none()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_message, min_size=1, max_size=25))
def test_every_message_is_applied_or_dead_lettered_exactly_once(
        messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
    out = Outputs()
    dead = out.dead
    proc = Processor({}, Policy(), out.send_alert, out.send_dead, KINDS, wall=lambda: 1.8e9)

    async def go() -> None:
        for offset, (topic, key, value) in enumerate(messages):
            before = counts()
            await handle(proc, topic, 0, offset, key, value)
            changes = [b - a for a, b in zip(before, counts(), strict=True)]
            assert sorted(changes) == [0, 0, 0, 1], (topic, key, value, changes)

    def counts() -> tuple[int, int, int, int]:
        """Applied, dead-lettered, redelivered, and sent again (a known event id)."""
        return (sum(proc.stats.events.values()), len(dead), proc.stats.duplicates,
                proc.stats.duplicate_events)

    asyncio.run(go())
    assert sum(proc.stats.events.values()) + len(dead) + proc.stats.duplicate_events == \
        len(messages)
    assert all(d.reason and not d.reason.startswith("processing failed") for d in dead), [
        d.reason for d in dead if d.reason.startswith("processing failed")]


def test_the_generator_also_makes_valid_events() -> None:
    """Guards the property above against only ever testing garbage."""
    from hypothesis import find

    from stream_app.core.decoding import Decoded, decode

    for kind in ("purchases", "complaints", "contacts"):
        found = find(_near_valid(), lambda raw, k=kind: isinstance(decode(k, b"c1", raw), Decoded),
                     settings=settings(max_examples=5000, database=None))
        assert isinstance(decode(kind, b"c1", found), Decoded)


def test_events_older_than_the_allowed_lateness_are_dead_lettered() -> None:
    out = Outputs()
    dead = out.dead
    proc = Processor({}, Policy(), out.send_alert, out.send_dead, KINDS, wall=lambda: 1.8e9)

    def purchase(cid: str, day: int) -> bytes:
        return orjson.dumps({"event_id": f"{cid}-{day}", "customer_id": cid,
                             "ts": f"2025-03-{day:02d}T10:00:00Z", "amount": 5})

    async def go() -> None:
        await handle(proc, "purchases", 0, 0, b"c1", purchase("c1", 20))
        await handle(proc, "purchases", 0, 1, b"c2", purchase("c2", 15))  # 5 days late: fine
        await handle(proc, "purchases", 0, 2, b"c3", purchase("c3", 2))  # 18 days: too late

    asyncio.run(go())
    assert proc.stats.events["purchases"] == 2
    assert [d.offset for d in dead] == [2] and "too late" in dead[0].reason
