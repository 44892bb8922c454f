"""Structured logs: one JSON line (orjson) per event of note.

Events of note are alerts, dead letters, processing failures and worker
life-cycle messages, never one line per input event.  Fields go in
``extra={"fields": {...}}`` so log pipelines can index them.  Faust's own
log lines keep Faust's format.

The libraries under the worker (aiokafka, Faust, mode) log every retry: a
lost broker meant about a hundred ERROR and WARNING lines a second.  Their
lines go through :class:`RepeatFilter`: one line per condition per
:data:`REPEAT_SECONDS`, the next one carrying the count of those held back.
"""

from __future__ import annotations

import logging
import re
import sys
import time
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


#: A condition is logged at most once per this many seconds.
REPEAT_SECONDS = 30.0

#: Numbers vary between repeats of one condition (node ids, ports, offsets,
#: counts), and some libraries format them into the message themselves.
_NUMBER = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Passes one record per condition per ``interval``; counts the rest.

    A condition is the logger, the level and the message template (the
    message before ``%`` formatting, numbers masked): "Unable connect to
    node with id 1" and "... id 2" are one condition.  Levels below
    ``level`` always pass.  The first record after a quiet interval says how
    many like it were held back and over how long.
    """

    def __init__(self, interval: float = REPEAT_SECONDS, level: int = logging.WARNING,
                 clock: Any = time.monotonic) -> None:
        super().__init__()
        self.interval, self.level, self.clock = interval, level, clock
        #: condition -> (when its last line passed, records held back since)
        self.seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        # One verdict per record, however many handlers share this filter.
        verdict: bool | None = getattr(record, "_repeat_verdict", None)
        if verdict is None:
            verdict = record._repeat_verdict = self._verdict(record)
        return verdict

    def _verdict(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, record.levelno, _NUMBER.sub("#", template))
        now = self.clock()
        last = self.seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self.seen[key] = (last[0], last[1] + 1)
            return False
        if len(self.seen) > 10_000:  # messages that embed free text: stay bounded
            self.seen.clear()
        self.seen[key] = (now, 0)
        if last is not None and last[1] and isinstance(record.msg, str):
            record.msg += (f" [{last[1]} more like this in the last {now - last[0]:.0f} s "
                           "not shown]").replace("%", "%%")
        return True


def quiet_repeats(interval: float = REPEAT_SECONDS) -> RepeatFilter:
    """Put one :class:`RepeatFilter` on every handler of the root logger.

    On the handlers, not the loggers: a logger's filters do not see what its
    children propagate, and the libraries log from dozens of child loggers.
    The ``churnwatch`` logger has its own handler and is not limited: its
    lines are the events of note, each meant to be seen.
    """
    shared = RepeatFilter(interval)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RepeatFilter)]:
            handler.removeFilter(old)
        handler.addFilter(shared)
    return shared


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
