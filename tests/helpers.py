"""Builders for customer histories used across the unit tests."""

from __future__ import annotations

from stream_app.core.policy import Policy
from stream_app.core.records import Complaint, Contact, Purchase
from stream_app.core.state import CustomerState, apply_event, new_state

from .conftest import at, epoch

_seq = iter(range(10**9))


def purchase(state: CustomerState, day: float, amount: float = 50.0,
             policy: Policy | None = None) -> None:
    n = next(_seq)
    rec = Purchase(event_id=f"p{n}", customer_id=state.customer_id, ts=at(day), amount=amount)
    apply_event(state, rec, epoch(day), topic="purchases", partition=0, offset=n,
                policy=policy or Policy())


def complaint(state: CustomerState, day: float, severity: int = 3,
              category: str = "billing", policy: Policy | None = None,
              compensation: float | None = None, text: str | None = None) -> None:
    n = next(_seq)
    rec = Complaint(event_id=f"k{n}", customer_id=state.customer_id, ts=at(day),
                    category=category, severity=severity,
                    compensation_requested=compensation, text=text)
    apply_event(state, rec, epoch(day), topic="complaints", partition=0, offset=n,
                policy=policy or Policy())


def contact(state: CustomerState, day: float, channel: str = "phone",
            outcome: str | None = "answered", direction: str = "outbound",
            text: str | None = None, tags: list[str] | None = None,
            policy: Policy | None = None) -> None:
    n = next(_seq)
    rec = Contact(event_id=f"c{n}", customer_id=state.customer_id, ts=at(day),
                  direction=direction, channel=channel, outcome=outcome, text=text, tags=tags)
    apply_event(state, rec, epoch(day), topic="contacts", partition=0, offset=n,
                policy=policy or Policy())


def buyer(every_days: float, until_day: float, amount: float = 50.0,
          start_day: float = 0.0, cid: str = "c1") -> CustomerState:
    """A customer who bought every ``every_days`` from ``start_day`` to ``until_day``."""
    s = new_state(cid)
    day = start_day
    while day <= until_day:
        purchase(s, day, amount)
        day += every_days
    return s
