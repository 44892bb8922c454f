"""Outcomes are written only as the worker would accept them."""

from __future__ import annotations

import orjson
import pytest

from stream_app.core.decoding import Decoded, decode
from stream_app.interfaces.console.outcomes import OutcomeError, from_button, from_request


def test_a_button_makes_a_feedback_event_the_worker_accepts() -> None:
    out = from_button("C1", "retained", 1_740_000_000.0, "a-1", "  called, kept  ")
    assert out.key == b"C1"
    decoded = decode("feedback", out.key, out.value)
    assert isinstance(decoded, Decoded)
    assert decoded.record.outcome == "retained" and decoded.record.alert_id == "a-1"
    assert out.event["note"] == "called, kept" and out.event["ts"] == "2025-02-19T21:20:00Z"


def test_unknown_outcomes_and_bad_events_are_refused_with_the_reason() -> None:
    with pytest.raises(OutcomeError, match="unknown outcome 'won_back': the outcomes are "
                                           "contacted, retained"):
        from_request({"customer_id": "C1", "outcome": "won_back"})
    with pytest.raises(OutcomeError, match="missing required field 'customer_id'"):
        from_request({"outcome": "retained"})
    with pytest.raises(OutcomeError, match="field 'ts' has no UTC offset"):
        from_request({"customer_id": "C1", "outcome": "churned", "ts": "2025-01-01T00:00:00"})
    with pytest.raises(OutcomeError, match="expected a JSON object"):
        from_request([1, 2])


def test_a_crm_may_leave_out_the_event_id_and_time() -> None:
    out = from_request({"customer_id": "C9", "outcome": "contacted"}, now=1_740_000_000.0)
    event = orjson.loads(out.value)
    assert event["event_id"].startswith("console-") and event["ts"] == "2025-02-19T21:20:00Z"
