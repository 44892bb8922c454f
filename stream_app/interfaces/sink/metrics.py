"""The sink's Prometheus counters (``--metrics-port``), in the default registry.

Labels are closed sets (the outcome, the answer's class), never an alert or
customer id.
"""

from __future__ import annotations

from prometheus_client import Counter

ALERTS = Counter("churnwatch_sink_alerts_total",
                 "Alerts the sink has finished with, by outcome: delivered, refused "
                 "(a 4xx, dead-lettered), exhausted (every attempt failed, dead-lettered) "
                 "or unusable (not an alert, dead-lettered)", ["format", "outcome"])
ATTEMPTS = Counter("churnwatch_sink_attempts_total",
                   "HTTP attempts, by result: 2xx, 3xx, 4xx, 5xx, timeout or error "
                   "(no answer)", ["format", "result"])
COMMITS = Counter("churnwatch_sink_commits_total", "Consumer offsets committed", ["format"])
