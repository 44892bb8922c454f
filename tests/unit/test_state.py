"""The state's columns: kept in time order whatever order events come in, and
states written by the previous version still read."""

from __future__ import annotations

import random
from collections import defaultdict

import orjson
import pytest

from stream_app.core.policy import Policy
from stream_app.core.records import Complaint, Contact, Purchase
from stream_app.core.signals import overdue, unresponsive
from stream_app.core.state import (
    DAY,
    OUTREACH_KEPT,
    RECENT_PURCHASES_KEPT,
    STATE_VERSION,
    CustomerState,
    KeptComplaint,
    Note,
    apply_event,
    new_state,
)

from ..conftest import at, epoch
from ..helpers import contact, purchase

POLICY = Policy()


def test_purchase_columns_match_a_brute_force_model_whatever_the_order() -> None:
    h = POLICY.history
    width = h.bucket_days * DAY
    rng = random.Random(11)
    for _ in range(60):
        days = rng.sample(range(900), rng.randrange(1, 40))
        amounts = {day: float(rng.randrange(1, 400)) for day in days}
        s = new_state("c1")
        for day in days:  # arrival order is not time order
            purchase(s, day, amounts[day])
        times = sorted(s.recent_purchase_ts)
        assert list(s.recent_purchase_ts) == times
        # The newest purchases by time, each beside its own event id.
        assert len(times) == min(len(days), RECENT_PURCHASES_KEPT)
        assert times == sorted(epoch(d) for d in days)[-RECENT_PURCHASES_KEPT:]
        assert len(s.recent_purchase_ids) == len(times)
        # The buckets: the last ``buckets_kept`` bucket indices up to the newest.
        totals: dict[int, list[float]] = defaultdict(lambda: [0, 0.0])
        for day in days:
            idx = int(epoch(day) // width)
            totals[idx][0] += 1
            totals[idx][1] += amounts[day]
        newest = max(totals)
        kept = sorted(i for i in totals if i > newest - h.buckets_kept)
        assert list(s.bucket_idx) == kept
        assert list(s.bucket_count) == [totals[i][0] for i in kept]
        assert [round(x, 2) for x in s.bucket_spend] == [round(totals[i][1], 2) for i in kept]


def test_outreach_columns_hold_one_entry_per_day_in_order() -> None:
    rng = random.Random(12)
    for _ in range(60):
        answered: dict[int, bool] = {}
        s = new_state("c1")
        for _ in range(rng.randrange(1, 60)):
            day = rng.randrange(200)
            outcome = rng.choice(["answered", "no_answer", "no_answer", "opened"])
            contact(s, day, outcome=outcome)
            answered[day] = answered.get(day, False) or outcome != "no_answer"
        kept = sorted(answered)[-OUTREACH_KEPT:]
        assert list(s.outreach_day) == [int(epoch(d) // DAY) for d in kept]
        assert list(s.outreach_responded) == [int(answered[d]) for d in kept]
        assert len(s.outreach_channel) == len(s.outreach_event) == len(kept)


# A state as the previous version (1) wrote it: the columns as lists of rows.
VERSION_1 = orjson.dumps({
    "customer_id": "C000224", "partition": 2,
    "offsets": {"complaints": 1, "contacts": 7317, "purchases": 17585},
    "first_ts": 1736097554.0, "last_ts": 1780151686.0, "purchases": 3, "spend": 522.51,
    "first_purchase_ts": 1739955500.0, "last_purchase_ts": 1780007345.0,
    "buckets": [[678, 1, 217.3], [686, 1, 160.77]], "gaps": [204.754, 258.809],
    "recent_purchases": [[1739955500.0, "p-11873"], [1757646270.0, "p-11874"],
                         [1780007345.0, "p-11875"]],
    "complaints": [[1736097554.0, "k-11876", "delivery", 3]],
    "channels": {"chat": [14, 11, 1]},
    "last_outbound_ts": 1780151686.0, "last_inbound_ts": 1762433757.0,
    "outreach": [[20596, 1, "chat", "c-11880"], [20601, 0, "chat", "c-11881"],
                 [20603, 0, "sms", "c-11882"], [20604, 0, "chat", "c-11883"]],
    "unsubscribed_ts": None, "notes": [], "risk": 0.0, "active": [],
    "due_ts": 1790375346.0,
    "alerting": [1, False, [], 0.0, "", 1753952301.0, 1, 1, {"OVERDUE": 1753952301.0},
                 None, False, False, {}],
    "v": 1,
})


def test_a_state_of_the_previous_version_reads_into_columns() -> None:
    s = CustomerState.from_bytes(VERSION_1)
    assert list(s.bucket_idx) == [678, 686]
    assert list(s.bucket_count) == [1, 1]
    assert list(s.bucket_spend) == [217.3, 160.77]
    assert list(s.gaps) == [204.754, 258.809]
    assert list(s.recent_purchase_ts) == [1739955500.0, 1757646270.0, 1780007345.0]
    assert s.recent_purchase_ids == ["p-11873", "p-11874", "p-11875"]
    assert list(s.outreach_day) == [20596, 20601, 20603, 20604]
    assert list(s.outreach_responded) == [1, 0, 0, 0]
    assert s.outreach_channel == ["chat", "chat", "sms", "chat"]
    assert s.outreach_event == ["c-11880", "c-11881", "c-11882", "c-11883"]
    assert s.alerting.alerted_at == {"OVERDUE": 1753952301.0}
    # The signals read it: three unanswered days in a row, the last purchase.
    now = 20604.5 * DAY
    fired = unresponsive.evaluate(s, now, POLICY)
    assert fired is not None and fired.evidence == ("c-11881", "c-11882", "c-11883")
    late = overdue.evaluate(s, now + 900 * DAY, POLICY)
    assert late is not None and late.evidence == ("p-11875",)
    # Written again, it is the current version, and reads back the same.
    raw = s.to_bytes()
    assert orjson.loads(raw)["v"] == STATE_VERSION != 1
    assert CustomerState.from_bytes(raw) == s


def _from_a_newer_release(customer_id: str) -> bytes:
    """A state as a release one layout version ahead would write it."""
    newer = orjson.loads(new_state(customer_id).to_bytes())
    newer["v"] = STATE_VERSION + 1
    return orjson.dumps(newer)


def test_a_state_from_a_newer_release_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"'c9' is version \d+, written by a newer release"):
        CustomerState.from_bytes(_from_a_newer_release("c9"))


def test_explain_names_a_state_it_cannot_read(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from stream_app.interfaces import explain
    from stream_app.interfaces.cli import main

    newer = _from_a_newer_release("c9")
    # As if the changelog held this state: the look-up decodes it as usual.
    monkeypatch.setattr(explain, "latest_state",
                        lambda settings, cid: CustomerState.from_bytes(newer))
    monkeypatch.setenv("CHURNWATCH_STORE", "memory://")
    assert main(["explain", "c9"]) == 1
    err = capsys.readouterr().err
    assert "written by a newer release" in err and "run the newer release" in err


#: A state with complaints and concerns, as the release that kept them as
#: plain lists wrote it (the bytes are the changelog's, so they must not move).
LIST_ROWS = (
    b'{"customer_id":"c-rows","partition":0,"offsets":{"purchases":4,"complaints":3,'
    b'"contacts":2},"event_ids":["pp0","kk1","cc2","kk3","pp4"],"first_ts":1736553600.0,'
    b'"last_ts":1736899200.0,"purchases":2,"spend":100.5,"first_purchase_ts":1736553600.0,'
    b'"last_purchase_ts":1736899200.0,"repeat_days":1,"bucket_idx":[669,670],'
    b'"bucket_count":[1,1],"bucket_spend":[80.0,20.5],"gaps":[4.0],'
    b'"recent_purchase_ts":[1736553600.0,1736899200.0],"recent_purchase_ids":["p0","p4"],'
    b'"complaints":[[1736640000.0,"k3","technical_fault",2],[1736726400.0,"k1","delivery",4]],'
    b'"channels":{"chat":[0,0,1]},"last_outbound_ts":null,"last_inbound_ts":1736812800.0,'
    b'"outreach_day":[],"outreach_responded":[],"outreach_channel":[],"outreach_event":[],'
    b'"unsubscribed_ts":null,"notes":[[1736640000.0,"k3","fault","technical fault complaint",'
    b'null],[1736726400.0,"k1","compensation","asked for 120; refund",120.0],'
    b'[1736812800.0,"c2","competitor","#price-match; competitor; better deal",null]],'
    b'"risk":0.0,"active":[],"due_ts":null,"alerting":[0,false,[],0.0,"",null,0,0,{},null,'
    b'false,false,{},[]],"v":3}'
)


def _rows_state() -> CustomerState:
    """The history LIST_ROWS was written from, a complaint late as events may come."""
    s = new_state("c-rows")
    events = [
        (Purchase(event_id="p0", customer_id="c-rows", ts=at(10), amount=80.0), 10),
        (Complaint(event_id="k1", customer_id="c-rows", ts=at(12), category="delivery",
                   severity=4, compensation_requested=120.0,
                   text="I want a refund, the parcel never came"), 12),
        (Contact(event_id="c2", customer_id="c-rows", ts=at(13), direction="inbound",
                 channel="chat", text="Your competitor offered me a better deal",
                 tags=["price-match"]), 13),
        (Complaint(event_id="k3", customer_id="c-rows", ts=at(11),
                   category="technical_fault", severity=2), 11),
        (Purchase(event_id="p4", customer_id="c-rows", ts=at(14), amount=20.5), 14),
    ]
    for offset, (rec, day) in enumerate(events):
        topic = {Purchase: "purchases", Complaint: "complaints", Contact: "contacts"}[type(rec)]
        apply_event(s, rec, epoch(day), topic=topic, partition=0, offset=offset, policy=POLICY)
    return s


def test_complaints_and_notes_are_rows_written_as_the_lists_were() -> None:
    s = _rows_state()
    assert s.complaints == [KeptComplaint(epoch(11), "k3", "technical_fault", 2),
                            KeptComplaint(epoch(12), "k1", "delivery", 4)]
    assert [(n.kind, n.event_id, n.amount) for n in s.notes] == [
        ("fault", "k3", None), ("compensation", "k1", 120.0), ("competitor", "c2", None)]
    assert s.to_bytes() == LIST_ROWS


def test_a_state_with_list_rows_reads_into_named_rows() -> None:
    s = CustomerState.from_bytes(LIST_ROWS)
    assert all(type(x) is KeptComplaint for x in s.complaints)
    assert all(type(n) is Note for n in s.notes)
    assert s.complaints[1].category == "delivery" and s.complaints[1].severity == 4
    assert s.notes[1].words == "asked for 120; refund"
    assert s == _rows_state()
    assert s.to_bytes() == LIST_ROWS
