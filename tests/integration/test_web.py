"""The worker's HTTP views on the real worker: health, readiness, metrics, look-up."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest

from .conftest import Cluster

pytestmark = pytest.mark.integration


def get(cluster: Cluster, path: str) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{cluster.settings.web_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    text = body.decode()
    return status, json.loads(text) if text.startswith("{") else text


def test_health_ready_lookup_alerts_and_metrics(cluster: Cluster) -> None:
    s = cluster.settings
    cluster.send(s.topic_complaints, b"web-1", {
        "event_id": "web-k1", "customer_id": "web-1", "ts": "2031-01-01T10:00:00+02:00",
        "category": "delivery", "severity": 5, "text": "The parcel never came"})
    cluster.send(s.topic_complaints, b"web-2", b"{not json")
    cluster.flush()
    cluster.read_until(s.topic_alerts, lambda rs: any(r["customer_id"] == "web-1" for r in rs))
    cluster.read_until(s.topic_dead_letters, lambda rs: any(r["key"] == "web-2" for r in rs))

    assert get(cluster, "/health") == (200, {"status": "ok"})
    status, body = get(cluster, "/ready")
    assert status == 200 and body["status"] == "ready"

    status, body = get(cluster, "/customers/web-1")
    assert status == 200
    assert body["customer_id"] == "web-1" and body["risk_score"] >= 30
    assert [x["code"] for x in body["signals"]] == ["COMPLAINTS"]
    assert body["signals"][0]["evidence"] == ["web-k1"]
    assert body["episode"]["open"] is True and body["episode"]["alerts_sent"] == 1
    assert {x["code"] for x in body["actions"]} >= {"ACT_ON_COMPLAINT"}
    assert get(cluster, "/customers/nobody-here")[0] == 404
    # Faust's own table and router pages are not served, token or not.
    for path in ("/table/customer_to_state/web-1/", "/table/", "/router/"):
        assert get(cluster, path)[0] == 404, path
    status, body = get(cluster, "/customers/" + "x" * 200)
    assert status == 400 and "128" in body["error"]

    status, body = get(cluster, "/alerts?since=2031-01-01T00:00:00Z")
    assert status == 200
    assert [a["customer_id"] for a in body["alerts"]] == ["web-1"]
    assert get(cluster, "/alerts?since=yesterday")[0] == 400

    # The worker logs each alert as one JSON line with its fields.
    lines = [orjson.loads(x) for x in cluster.log.read_text().splitlines()
             if x.startswith("{")]
    sent = [x for x in lines if x["msg"] == "alert sent" and x["customer_id"] == "web-1"]
    assert sent and sent[0]["signals"] == ["COMPLAINTS"] and sent[0]["severity"]

    status, text = get(cluster, "/metrics")
    assert status == 200
    for name in ("churnwatch_events_total{topic=", "churnwatch_alerts_total{",
                 "churnwatch_dead_letters_total{", "churnwatch_customers_tracked",
                 "churnwatch_ingest_to_alert_seconds_bucket",
                 "churnwatch_event_time_to_alert_seconds_bucket",
                 # lag appears with the first tick after the partition's first event
                 "churnwatch_consumer_lag_messages{partition=",
                 "churnwatch_consumer_commit_lag_messages{partition=",
                 "churnwatch_faust_messages_received_per_topic_total{",
                 "churnwatch_faust_table_operations_total{"):
        assert name in text, name
