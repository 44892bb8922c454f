"""Structured logs: one JSON line (orjson) per event of note.

Events of note are alerts, dead letters, processing failures and worker
life-cycle messages, never one line per input event.  Fields go in
``extra={"fields": {...}}`` so log pipelines can index them.  Faust's own
log lines keep Faust's format.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def setup(level: str, fmt: str) -> None:
    """Send the ``churnwatch`` logger to stderr, as JSON lines or plain text."""
    logger = logging.getLogger("churnwatch")
    # The real stderr: the Faust worker redirects sys.stderr into its own
    # logging, which would wrap every JSON line in a second format.
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "[%(asctime)s] [%(levelname)s] %(name)s: %(message)s %(fields)s",
        defaults={"fields": ""}))
    logger.handlers[:] = [handler]
    logger.propagate = False
    # Alerts are logged at INFO: they are the events of note, whatever the
    # level chosen for Faust's own chatter.
    logger.setLevel(min(logging.INFO, logging.getLevelName(level.upper())))
