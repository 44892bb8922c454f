"""Events in, explained alerts out, through the real broker and a real worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream_app.core.decoding import parse_ts
from stream_app.interfaces.explain import describe, latest_state

from .conftest import Cluster

pytestmark = pytest.mark.integration

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def ts(day: float, base: datetime = T0) -> str:
    return (base + timedelta(days=day)).isoformat()


def for_customers(prefix: str) -> Any:
    return lambda records: [r for r in records if r["customer_id"].startswith(prefix)]


def test_a_drifting_customer_is_alerted_with_evidence_and_a_steady_one_is_not(
        cluster: Cluster) -> None:
    s = cluster.settings
    sent_ids: set[str] = set()

    def send(topic: str, cid: str, value: dict[str, Any]) -> None:
        value = {"event_id": f"{cid}-{len(sent_ids)}", "customer_id": cid, **value}
        sent_ids.add(value["event_id"])
        cluster.send(topic, cid.encode(), value)

    steady = [f"drift-steady-{i}" for i in range(24)]  # every partition gets a clock
    for day in range(0, 400, 5):
        for cid in steady:
            send(s.topic_purchases, cid, {"ts": ts(day + 0.1), "amount": 40.0})
            if day % 60 == 0:  # we keep in touch, so they are not neglected
                send(s.topic_contacts, cid, {"ts": ts(day + 0.15), "direction": "outbound",
                                             "channel": "phone", "outcome": "answered"})
        if day < 300:
            send(s.topic_purchases, "drift-leaver", {"ts": ts(day + 0.2), "amount": 60.0})
        if day in (285, 290, 295):
            send(s.topic_complaints, "drift-leaver", {
                "ts": ts(day + 0.3), "category": "technical_fault", "severity": 4,
                "text": "The device failed again"})
        if day % 30 == 0:
            send(s.topic_contacts, "drift-leaver", {
                "ts": ts(day + 0.4), "direction": "outbound", "channel": "sms",
                "outcome": "opened" if day < 250 else "ignored"})
        # Each day's events on the broker before the next day's, as live
        # producers would have them: a batching producer could otherwise
        # deliver the contacts weeks ahead of the purchases, and the worker
        # would rightly see the steady customers as silent meanwhile.
        cluster.flush()

    def leaver_codes(records: list[dict[str, Any]]) -> set[str]:
        return {sig["code"] for r in records if r["customer_id"] == "drift-leaver"
                for sig in r["signals"]}

    alerts = cluster.read_until(
        s.topic_alerts, lambda rs: {"COMPLAINTS", "OVERDUE"} <= leaver_codes(rs))
    mine = [a for a in alerts if a["customer_id"].startswith("drift-")]
    assert {a["customer_id"] for a in mine} == {"drift-leaver"}, [
        a["summary"] for a in mine if a["customer_id"] != "drift-leaver"]
    assert len({a["alert_id"] for a in mine}) == len(mine), "an alert was paged twice"
    assert {a["episode"] for a in mine} == {1}
    for alert in mine:
        assert alert["actions"], alert
        assert alert["summary"].startswith("Customer drift-leaver")
        for sig in alert["signals"]:
            assert set(sig["evidence"]) <= sent_ids, sig  # cites real events
            assert sig["threshold"] is not None and sig["window"]
    complaints = next(sig for a in mine for sig in a["signals"] if sig["code"] == "COMPLAINTS")
    assert len(complaints["evidence"]) >= 2
    overdue = next(a for a in mine if "OVERDUE" in {sig["code"] for sig in a["signals"]})
    # Event time, not wall time: the leaver went quiet after day ~295 of 2024.
    assert timedelta(days=300) < datetime.fromtimestamp(
        float(parse_ts(overdue["ts"])), UTC) - T0 < timedelta(days=360)
    assert {a["code"] for a in overdue["actions"]} & {"REACH_OUT", "WIN_BACK"}
    # The call centre looks the customer up: state straight from the changelog.
    state = latest_state(s, "drift-leaver")
    assert state is not None and state.purchases == 60 and len(state.complaints) == 3
    text = describe(state, s.policy())
    assert "Customer drift-leaver" in text and "OVERDUE" in text and "episode 1" in text


def test_malformed_events_are_dead_lettered_and_the_worker_keeps_going(
        cluster: Cluster) -> None:
    s = cluster.settings
    base = datetime(2025, 6, 1, tzinfo=UTC)  # after the drift story's clocks
    cluster.send(s.topic_purchases, b"bad-1", b"\x00\x01 not json")
    cluster.send(s.topic_complaints, b"bad-2", {
        "event_id": "bad-e2", "customer_id": "bad-2", "ts": ts(1, base), "category": "billing",
        "severity": "high"})
    cluster.send(s.topic_contacts, b"bad-3", {
        "event_id": "bad-e3", "customer_id": "bad-3", "ts": "2024-13-45T00:00:00Z",
        "direction": "inbound", "channel": "phone"})
    cluster.send(s.topic_purchases, b"bad-5", {  # years behind every partition's clock
        "event_id": "bad-e5", "customer_id": "bad-5", "ts": "2020-01-01T00:00:00Z",
        "amount": 10})
    cluster.send(s.topic_complaints, b"bad-4", {  # a good event after the bad ones
        "event_id": "bad-e4", "customer_id": "bad-4", "ts": ts(2, base), "category": "billing",
        "severity": 5})
    cluster.flush()
    letters = cluster.read_until(
        s.topic_dead_letters,
        lambda rs: len([r for r in rs if (r["key"] or "").startswith("bad-")]) >= 4)
    mine = {r["key"]: r for r in letters if (r["key"] or "").startswith("bad-")}
    assert "not valid UTF-8 JSON" in mine["bad-1"]["reason"]
    assert mine["bad-1"]["value_encoding"] == "utf-8"
    assert "'severity' must be a whole number" in mine["bad-2"]["reason"]
    assert "not an ISO-8601 timestamp" in mine["bad-3"]["reason"]
    assert "too late" in mine["bad-5"]["reason"]
    assert {r["topic"] for r in mine.values()} == {
        s.topic_purchases, s.topic_complaints, s.topic_contacts}
    alerts = cluster.read_until(
        s.topic_alerts, lambda rs: any(r["customer_id"] == "bad-4" for r in rs))
    assert [a["signals"][0]["code"] for a in alerts if a["customer_id"] == "bad-4"] == [
        "COMPLAINTS"]


def test_silence_is_noticed_in_live_operation_with_no_further_events(
        cluster: Cluster) -> None:
    """A customer who stops buying is flagged by the idle clock, no event needed."""
    s = cluster.settings
    policy = s.policy()  # tests/integration/policy.toml: silence alone alerts
    now = datetime.now(UTC)
    # Daily purchases; the last one the minimum lateness minus a few seconds
    # ago, so the customer turns overdue a few seconds from now.
    last = now - timedelta(days=policy.overdue.min_days) + timedelta(seconds=8)
    for back in range(40, -1, -1):
        cluster.send(s.topic_purchases, b"live-1", {
            "event_id": f"live-p{back}", "customer_id": "live-1",
            "ts": (last - timedelta(days=back)).isoformat(), "amount": 30.0})
    # Present-day activity of the same customer moves the partition's clock to now.
    cluster.send(s.topic_contacts, b"live-1", {
        "event_id": "live-c1", "customer_id": "live-1", "ts": now.isoformat(),
        "direction": "inbound", "channel": "phone"})
    cluster.flush()
    sent_at = time.time()
    alerts = cluster.read_until(
        s.topic_alerts, lambda rs: any(r["customer_id"] == "live-1" for r in rs))
    alert = next(a for a in alerts if a["customer_id"] == "live-1")
    assert [sig["code"] for sig in alert["signals"]] == ["OVERDUE"]
    assert alert["signals"][0]["evidence"] == ["live-p0"]
    # It tripped when the customer became late, not when the test started.
    tripped = float(parse_ts(alert["ts"]))
    assert tripped >= sent_at - 1


def test_a_customer_drifting_through_signals_escalates_and_feedback_silences(
        cluster: Cluster) -> None:
    """journey-1 and its twin journey-2 sour the same way; only journey-1's
    call centre reports it "retained" (feedback topic), which must silence
    what follows until the quiet period is over."""
    s = cluster.settings
    # Partition clocks are shared with the other tests' customers: this story
    # happens later than theirs, so none of its events arrives "late".
    base = datetime(2030, 1, 1, tzinfo=UTC)
    steady = [f"journey-steady-{i}" for i in range(24)]
    twins = ("journey-1", "journey-2")

    pending: list[tuple[float, str, str, int, dict[str, Any]]] = []

    def send(topic: str, cid: str, day: float, n: int, **fields: Any) -> None:
        pending.append((day, topic, cid, n, fields))

    def publish() -> None:
        """Send what is pending in event-time order, as live producers would:
        a topic that is caught up does not hold the others back, so an event
        sent long after later ones on another topic would arrive too late.
        Each moment's events are on the broker before the next moment's: a
        batching producer would otherwise deliver one topic's batch (days of
        purchases) after another's, as two live systems could, and the
        worker would rightly take the first as caught up."""
        last = None
        for day, topic, cid, n, fields in sorted(pending, key=lambda p: p[0]):
            if last is not None and day != last:
                cluster.flush()
            last = day
            cluster.send(topic, cid.encode(), {"event_id": f"{cid}-{topic}-{n}",
                                               "customer_id": cid, "ts": ts(day, base),
                                               **fields})
        pending.clear()
        cluster.flush()

    def of(cid: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r["customer_id"] == cid]

    def day_of(alert: dict[str, Any]) -> float:
        return (float(parse_ts(alert["ts"])) - base.timestamp()) / 86400

    def days(lo: int, hi: int) -> None:
        for day in range(lo, hi, 5):
            for cid in (*steady, *twins):
                send(s.topic_purchases, cid, day + 0.1, day, amount=50.0)
                if day % 60 == 0:
                    send(s.topic_contacts, cid, day + 0.2, day, direction="outbound",
                         channel="phone", outcome="answered")

    days(0, 265)
    for cid in twins:
        send(s.topic_contacts, cid, 250, 900, direction="inbound", channel="phone",
             text="אצל המתחרים זה זול יותר, תתאימו מחיר?")
        send(s.topic_complaints, cid, 255, 901, category="technical_fault", severity=3)
        send(s.topic_complaints, cid, 258, 902, category="technical_fault", severity=3)
        send(s.topic_contacts, cid, 262, 903, direction="inbound", channel="phone",
             text="This is ridiculous, your staff are useless")
    publish()
    cluster.read_until(s.topic_alerts, lambda rs: all(  # both escalated on hostility
        any("HOSTILE_TONE" in {sig["code"] for sig in r["signals"]} for r in of(cid, rs))
        for cid in twins))
    # The call centre reports journey-1 retained; wait until the worker has it.
    cluster.wait_processed(s.topic_feedback, b"journey-1", {
        "event_id": "journey-1-fb", "customer_id": "journey-1", "ts": ts(265, base),
        "outcome": "retained"})
    days(265, 340)
    for cid in twins:
        send(s.topic_complaints, cid, 270, 905, category="billing", severity=2,
             compensation_requested=100)
        send(s.topic_complaints, cid, 272, 906, category="billing", severity=2,
             compensation_requested=300)
        send(s.topic_complaints, cid, 330, 907, category="delivery", severity=5)
    publish()

    alerts = cluster.read_until(s.topic_alerts, lambda rs: any(
        day_of(a) >= 330 for a in of("journey-1", rs)) and any(
        "COMPENSATION_ESCALATION" in {sig["code"] for sig in a["signals"]}
        for a in of("journey-2", rs)))
    for cid in twins:
        mine = of(cid, alerts)
        assert len({a["alert_id"] for a in mine}) == len(mine), "paged twice"
        codes = [{sig["code"] for sig in a["signals"]} for a in mine]
        before = [a for a in mine if day_of(a) < 265]
        assert day_of(before[0]) == 250 and codes[0] == {"COMPETITOR_PROBING"}
        # Each later alert of the episode escalates: a new signal, a higher risk.
        assert [a["episode"] for a in before] == [1] * len(before)
        assert {"TECHNICAL_FAULTS", "HOSTILE_TONE"} <= set().union(*codes[:len(before)])
        risks = [a["risk_score"] for a in before]
        assert risks == sorted(risks) and len(set(risks)) == len(risks)
        assert all(a["summary_he"].startswith(f"לקוח {cid}") for a in mine)
    quiet = [a for a in of("journey-1", alerts) if 265 <= day_of(a) < 265 + 45]
    assert quiet == [], [a["summary"] for a in quiet]
    control = [a for a in of("journey-2", alerts) if 265 <= day_of(a) < 310]
    assert any("COMPENSATION_ESCALATION" in {sig["code"] for sig in a["signals"]}
               for a in control), [a["summary"] for a in control]
    after = [a for a in of("journey-1", alerts) if day_of(a) >= 265]
    assert after[0]["episode"] == 2  # the retained episode ended; a new one began
