"""The worker's Prometheus sensor: Faust's, lean enough for a busy worker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor, setup_prometheus_sensors
from faust.types import AppT
from prometheus_client import REGISTRY, CollectorRegistry

from ..engine.metrics import child
from .faust_internals import prometheus_metrics


class LeanPrometheusMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor without its per-stream-event bookkeeping.

    For every event Faust's monitor builds a timing record and updates five
    metrics on the way in and out of each stream, a noticeable share of a
    busy worker's time (seen with py-spy).  Messages in and out per topic,
    commits, table operations, rebalances and the rest are kept; the
    per-stream event counts and the event runtime histogram are not
    (``churnwatch_events_total`` and ``churnwatch_ingest_to_alert_seconds``
    cover them).  The per-message, per-send and per-table-operation metrics
    use kept labelled children (:func:`stream_app.engine.metrics.child`)
    instead of looking them up on every call.
    """

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        self.faust_metrics = prometheus_metrics(self)

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self.on_messages_in(tp, (message,))

    def on_messages_in(self, tp: Any, messages: Sequence[Any]) -> None:
        """Faust's ``on_message_in`` for one fetch of one partition, one update per metric.

        The same totals and the same last read offset; every message gets the
        same arrival time (they arrived in the same fetch).
        """
        n = len(messages)
        self.messages_received_total += n
        self.messages_active += n
        self.messages_received_by_topic[tp.topic] += n
        last = messages[-1].offset
        self.tp_read_offsets[tp] = last
        now = self.time()
        for message in messages:
            message.time_in = now
        m = self.faust_metrics
        m.messages_received.inc(n)
        m.active_messages.inc(n)
        child(m.messages_received_per_topics, tp.topic).inc(n)
        child(m.messages_received_per_topics_partition, tp.topic, tp.partition).set(last)

    def on_messages_out(self, tp: Any, n: int) -> None:
        """Faust's ``on_message_out`` for ``n`` messages acknowledged as a run of
        offsets (their ``Message`` objects are gone by then, so no per-message
        times are kept)."""
        self.messages_active -= n
        self.faust_metrics.active_messages.dec(n)

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        # Faust's consumer calls this for every message it fetches.
        Monitor.track_tp_end_offset(self, tp, offset)
        child(self.faust_metrics.topic_partition_end_offset, tp.topic, tp.partition).set(offset)

    def on_send_initiated(self, producer: Any, topic: str, message: Any,
                          keysize: int, valsize: int) -> Any:
        child(self.faust_metrics.topic_messages_sent, f"topic.{topic}").inc()
        return Monitor.on_send_initiated(self, producer, topic, message, keysize, valsize)

    def on_table_get(self, table: Any, key: Any) -> None:
        Monitor.on_table_get(self, table, key)
        child(self.faust_metrics.table_operations, f"table.{table.name}",
              self.KEYS_RETRIEVED).inc()

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        Monitor.on_table_set(self, table, key, value)
        child(self.faust_metrics.table_operations, f"table.{table.name}",
              self.KEYS_UPDATED).inc()

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: Any = None) -> None:
        return None


def install_monitor(app: AppT, registry: CollectorRegistry = REGISTRY) -> LeanPrometheusMonitor:
    """Faust's Prometheus set-up (its metrics in ``registry``, its ``/metrics``
    page), with the lean monitor in place of Faust's."""
    setup_prometheus_sensors(app, registry=registry, name_prefix="churnwatch_faust")
    faust_monitor = app.monitor
    assert isinstance(faust_monitor, PrometheusMonitor)
    monitor = LeanPrometheusMonitor(metrics=prometheus_metrics(faust_monitor))
    app.monitor = monitor
    return monitor
