"""Structured log lines: one JSON object, with the event's fields."""

from __future__ import annotations

import logging

import orjson

from stream_app.logs import JsonFormatter


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
