"""Structured log lines: one JSON object, with the event's fields."""

from __future__ import annotations

import logging

import orjson

from stream_app.engine.logs import JsonFormatter


def test_json_line_carries_fields_and_errors() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("churnwatch", logging.WARNING, __file__, 1, "dead-lettered",
                                   None, sys.exc_info())
    record.fields = {"topic": "purchases", "offset": 7, "reason": "לא JSON"}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = orjson.loads(line)
    assert data["msg"] == "dead-lettered" and data["level"] == "warning"
    assert data["topic"] == "purchases" and data["offset"] == 7 and data["reason"] == "לא JSON"
    assert "ValueError: boom" in data["error"]


def test_repeats_pass_once_per_interval_with_the_count_held_back() -> None:
    from stream_app.engine.logs import RepeatFilter

    now = [0.0]
    limit = RepeatFilter(interval=30.0, clock=lambda: now[0])
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"{record.name} {record.levelname} {record.getMessage()}")

    # Two handlers share the filter, as the root logger's do: one verdict per record.
    logger, other = logging.getLogger("aiokafka.conn.test"), logging.getLogger("faust.test")
    handlers = [Keep(), Keep()]
    for lg in (logger, other):
        lg.propagate = False
        lg.setLevel(logging.DEBUG)
        for h in handlers:
            h.addFilter(limit)
            lg.addHandler(h)
    try:
        for second in range(60):
            now[0] = float(second)
            for node in (1, 2, 3):  # one condition: only the number differs
                logger.error("Unable connect to node with id %s: %s", node, "refused")
            logger.error(f"Unable to update metadata from [{second}]")  # pre-formatted
            logger.warning("Unable connect to node with id %s: %s", 1, "refused")
            logger.info("Joined group %s", second)  # below WARNING: never held back
            other.error("Unable connect to node with id %s: %s", 1, "refused")
    finally:
        for lg in (logger, other):
            lg.setLevel(logging.NOTSET)
            for h in handlers:
                lg.removeHandler(h)
    lines = seen[::2]
    assert seen[1::2] == lines  # both handlers saw the same lines
    connect = [x for x in lines if x.startswith("aiokafka.conn.test ERROR Unable connect")]
    assert connect == ["aiokafka.conn.test ERROR Unable connect to node with id 1: refused",
                       "aiokafka.conn.test ERROR Unable connect to node with id 1: refused "
                       "[89 more like this in the last 30 s not shown]"]
    assert len([x for x in lines if "update metadata" in x]) == 2
    assert len([x for x in lines if "WARNING" in x]) == 2
    assert len([x for x in lines if "Joined group" in x]) == 60
    assert len([x for x in lines if x.startswith("faust.test ERROR")]) == 2  # its own condition
    assert len(lines) == 2 + 2 + 2 + 60 + 2
