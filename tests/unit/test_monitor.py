"""The worker's lean Prometheus sensor: a fetch counted at once counts the same."""

from __future__ import annotations

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, Message
from prometheus_client import CollectorRegistry

from stream_app.kafka.monitor import LeanPrometheusMonitor


def _monitor() -> tuple[LeanPrometheusMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return LeanPrometheusMonitor(metrics=FaustMetrics.create(registry, "t")), registry


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect() for s in metric.samples
            if not s.name.endswith("_created")}


def test_a_fetch_counted_at_once_counts_as_message_by_message() -> None:
    """Against Faust's own sensor, message by message, and our own one-message path."""
    tp = TP("purchases", 2)
    messages = [Message(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None)
                for offset in range(40, 47)]
    registry_one = CollectorRegistry()
    one_by_one = PrometheusMonitor(metrics=FaustMetrics.create(registry_one, "t"))
    lean_one_by_one, registry_lean = _monitor()
    at_once, registry_all = _monitor()
    for m in messages:
        one_by_one.on_message_in(tp, m.offset, m)
        lean_one_by_one.on_message_in(tp, m.offset, m)
    at_once.on_messages_in(tp, messages)

    assert _samples(registry_lean) == _samples(registry_one)
    assert lean_one_by_one.tp_read_offsets == {tp: 46}

    assert _samples(registry_all) == _samples(registry_one)
    assert _samples(registry_all)[("t_messages_received_total", ())] == 7
    for field in ("messages_received_total", "messages_active"):
        assert getattr(at_once, field) == getattr(one_by_one, field) == 7
    assert at_once.messages_received_by_topic == one_by_one.messages_received_by_topic
    assert at_once.tp_read_offsets == one_by_one.tp_read_offsets == {tp: 46}
    assert all(m.time_in is not None for m in messages)


def test_sends_and_table_operations_count_as_in_fausts_own_sensor() -> None:
    registry_lean, registry_faust = CollectorRegistry(), CollectorRegistry()
    lean = LeanPrometheusMonitor(metrics=FaustMetrics.create(registry_lean, "t"))
    faust_own = PrometheusMonitor(metrics=FaustMetrics.create(registry_faust, "t"))

    class Table:
        name = "customer_to_state"

    for monitor in (lean, faust_own):
        for offset in (10, 11, 12):
            monitor.track_tp_end_offset(TP("purchases", 1), offset)
        monitor.track_tp_end_offset(TP("contacts", 3), 7)
        for topic in ("churn-alerts", "churn-alerts", "state-changelog"):
            monitor.on_send_initiated(None, topic, None, 3, 10)  # type: ignore[arg-type]
        monitor.on_table_get(Table(), b"k")  # type: ignore[arg-type]
        monitor.on_table_set(Table(), b"k", b"v")  # type: ignore[arg-type]
    assert _samples(registry_lean) == _samples(registry_faust)
    assert lean.messages_sent_by_topic == faust_own.messages_sent_by_topic
    assert lean.tp_end_offsets == faust_own.tp_end_offsets == {
        TP("purchases", 1): 12, TP("contacts", 3): 7}
