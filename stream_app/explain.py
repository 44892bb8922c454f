"""``churnwatch explain CUSTOMER_ID``: a customer's state, signals and score.

Reads the customer's latest state from the state table's changelog topic, so
it needs only the broker, not a running worker, and re-scores it with the
current policy at the customer's own latest event time (or ``--at``).
"""

from __future__ import annotations

from datetime import datetime

import orjson
from kafka import KafkaConsumer, TopicPartition

from .alerting import evaluate_signals, iso
from .playbook import recommend, summary, summary_he
from .policy import Policy
from .scoring import risk_score, route, severity
from .settings import Settings
from .state import DAY, CustomerState


def latest_state(s: Settings, customer_id: str, timeout_ms: int = 3000
                 ) -> CustomerState | None:
    """The last changelog value for the customer (None if never seen)."""
    wanted = {customer_id.encode(), orjson.dumps(customer_id)}
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False,
                             consumer_timeout_ms=timeout_ms)
    try:
        parts = [TopicPartition(s.state_changelog_topic, p) for p in range(s.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        found: bytes | None = None
        for m in consumer:
            if m.key in wanted:
                found = m.value
        return CustomerState.from_bytes(found) if found else None
    finally:
        consumer.close()


def describe(state: CustomerState, policy: Policy, at: float | None = None) -> str:
    now = at if at is not None else state.last_ts
    fired = evaluate_signals(state, now, policy)
    risk = risk_score(fired, policy)
    sev = severity(risk, policy)
    actions = recommend(fired, state, now, policy)
    a = state.alerting
    lines = [f"Customer {state.customer_id}: judged at {iso(now)} (partition {state.partition})"]
    last = iso(state.last_purchase_ts) if state.last_purchase_ts else "never"
    lines.append(f"  purchases {state.purchases} (spend {state.spend:,.0f}; "
                 f"last year {state.spend_last_year(now, policy.history.bucket_days):,.0f}; "
                 f"last purchase {last})")
    lines.append(f"  complaints kept {len(state.complaints)}, concerns {len(state.notes)}, "
                 f"outreach days {len(state.outreach)}")
    lines.append(f"  risk {risk:.1f}/100 ({sev}), route {route(risk, state, now, policy)}")
    episode = f"episode {a.episode} {'open' if a.open else 'closed'}" if a.episode else "none"
    lines.append(f"  alerts sent {a.sent}; {episode}")
    if a.feedback:
        lines.append("  feedback " + ", ".join(f"{k} {v}" for k, v in a.feedback.items()))
    if a.do_not_contact or a.lost or (a.quiet_until and a.quiet_until > now):
        why = ("do not contact" if a.do_not_contact else "reported lost" if a.lost
               else f"quiet until {iso(a.quiet_until or 0)}")
        lines.append(f"  alerts suppressed: {why}")
    lines.append("  signals:" if fired else "  signals: none")
    for f in fired:
        base = f"{f.baseline:g}" if f.baseline is not None else "-"
        lines.append(f"    {f.code:<24} {f.detail}")
        lines.append(f"    {'':<24} value {f.value:g}, baseline {base}, threshold "
                     f"{f.threshold:g}, {f.window}; evidence {', '.join(f.evidence) or '-'}")
    if fired:
        lines.append("  actions: " + "; ".join(
            a.code + (f" ({a.channel})" if a.channel else "") for a in actions))
        lines.append("  " + summary(state.customer_id, risk, sev, fired, actions))
        lines.append("  " + summary_he(state.customer_id, risk, sev, fired, actions))
    if state.due_ts:
        days = (state.due_ts - now) / DAY
        lines.append(f"  next look by the timer sweep: {iso(state.due_ts)} ({days:+.0f} days)")
    return "\n".join(lines)


def parse_at(text: str) -> float:
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"--at {text!r}: give a UTC offset, e.g. 2025-06-01T00:00:00Z")
    return dt.timestamp()
