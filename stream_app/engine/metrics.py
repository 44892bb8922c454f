"""Churnwatch's own Prometheus metrics, beside Faust's sensor metrics.

All in prometheus-client's default registry, which the worker's ``/metrics``
page (faust's Prometheus sensor) exposes.  Labels are bounded: topics,
signal codes, severities, routes, outcomes and dead-letter reason *codes*
(a closed set, :data:`stream_app.core.decoding.REASON_CODES`), never customer ids
nor anything else taken from the input: a label taken from what a sender
wrote would let random input add series without end.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("churnwatch_events_total", "Input events applied", ["topic"])
DEAD_LETTERS = Counter("churnwatch_dead_letters_total", "Events sent to dead-letters",
                       ["topic", "reason"])
DEAD_LETTER_SEND_FAILURES = Counter(
    "churnwatch_dead_letter_send_failures_total",
    "Attempts to send a dead letter that failed (each is retried)", ["topic"])
DEAD_LETTERS_UNSENT = Counter(
    "churnwatch_dead_letters_unsent_total",
    "Messages skipped because their dead letter could not be sent after every retry "
    "(the message itself is still on its topic, at the logged offset)", ["topic"])
DUPLICATES = Counter("churnwatch_duplicates_total",
                     "Redelivered events recognised and skipped", ["topic"])
DUPLICATE_EVENTS = Counter(
    "churnwatch_duplicate_events_total",
    "Events dropped because the customer's state had applied an event with the same "
    "event_id (sent again at another offset)", ["topic"])
ALERTS = Counter("churnwatch_alerts_total", "Alerts sent, per signal in them",
                 ["signal", "severity", "route"])
ALERT_OUTCOMES = Counter(
    "churnwatch_alert_outcomes_total",
    "Alerts whose prediction (no purchase within the horizon) has been settled: bought "
    "(wrong), no_purchase (right), or as the feedback topic reported (churned, retained); "
    "by the alert's risk decile, so the live precision and calibration can be charted",
    ["outcome", "risk_decile"])
FEEDBACK = Counter("churnwatch_feedback_total", "Feedback outcomes applied", ["outcome"])
CUSTOMERS = Gauge("churnwatch_customers_tracked", "Customers with state on this worker")
LAG = Gauge("churnwatch_consumer_lag_messages",
            "Messages on the broker not yet handed to the processor (fetch high-water "
            "mark minus the next offset), per input topic partition owned by this worker",
            ["topic", "partition"])
COMMIT_LAG = Gauge(
    "churnwatch_consumer_commit_lag_messages",
    "Messages on the broker after the worker group's committed offset (fetch high-water mark "
    "minus the committed offset): what a restart would read again; per input topic partition "
    "owned by this worker", ["topic", "partition"])
SUPPRESSED = Counter("churnwatch_alerts_suppressed_total",
                     "Alerts raised again after a restart or rebalance that were already "
                     "published (not sent twice)")
MODEL_FITS = Counter("churnwatch_model_fits_total",
                     "Fits of a partition's purchase-model population numbers")
DUE = Gauge("churnwatch_timer_index_entries", "Entries in the timer sweep's due index")
_DAY = 86400.0
EVENT_TO_ALERT = Histogram(
    "churnwatch_event_time_to_alert_seconds",
    "From the event time of the customer's latest event to the alert's event time",
    buckets=(0, 60, 3600, _DAY, 7 * _DAY, 30 * _DAY, 90 * _DAY, 365 * _DAY))
INGEST_TO_ALERT = Histogram(
    "churnwatch_ingest_to_alert_seconds",
    "From the broker timestamp of the triggering message to the alert's acknowledgement",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


@functools.cache
def child(metric: Any, *labels: Any) -> Any:
    """``metric.labels(*labels)``, kept: each ``labels()`` call costs a lock and a
    lookup, and the hot path would pay it per message."""
    return metric.labels(*labels)
