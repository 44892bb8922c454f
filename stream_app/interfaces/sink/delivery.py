"""One alert's delivery: attempts, back-off with jitter, and the verdict.

An answer is one of three kinds:

* 2xx: delivered;
* 408, 429, 5xx, a time-out or no answer: tried again after a back-off, up
  to ``max_attempts`` tries in all; a ``Retry-After`` (seconds) of a 429 or
  503 is honoured up to the longest delay;
* any other (4xx, and 3xx, which is not followed: a webhook that moved
  should be configured at its new address): refused at once, since sending
  the same request again would get the same answer.

The back-off doubles from ``backoff_seconds`` up to ``max_delay_seconds``;
each delay is drawn between its half and its whole ("equal jitter"), so
sinks restarted together after an outage do not retry in step, and the
delays still grow.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from ... import __version__
from . import metrics, signing
from .config import SinkSettings

RETRIED_STATUSES = frozenset({408, 429})
#: How much of an error answer's body a dead letter quotes.
QUOTED_BYTES = 300


@dataclass(frozen=True, slots=True)
class Outcome:
    #: ``delivered``, ``refused`` (not retried), ``exhausted`` (every try
    #: failed) or ``stopped`` (the sink is stopping; not delivered, not dead-lettered).
    verdict: str
    attempts: int
    #: The last answer's status (None: no answer), and what it said.
    status: int | None
    detail: str

    @property
    def delivered(self) -> bool:
        return self.verdict == "delivered"


def delay(attempt: int, s: SinkSettings, rng: random.Random,
          retry_after: float | None = None) -> float:
    """Seconds to wait after failed try number ``attempt`` (1-based)."""
    ceiling = min(s.sink_max_delay_seconds, s.sink_backoff_seconds * 2.0 ** (attempt - 1))
    wait = ceiling / 2 + rng.random() * ceiling / 2
    if retry_after is not None:
        wait = max(wait, min(retry_after, s.sink_max_delay_seconds))
    return wait


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: rare from APIs; the back-off applies
        return None


def request_headers(s: SinkSettings, alert_id: str, body: bytes) -> dict[str, str]:
    headers = {**s.headers, "Content-Type": "application/json",
               "Idempotency-Key": alert_id, "User-Agent": f"churnwatch-sink/{__version__}"}
    if s.sink_authorization:
        headers["Authorization"] = s.sink_authorization
    if s.sink_secret:
        headers[signing.HEADER] = signing.signature(s.sink_secret, body)
    return headers


def _result(status: int) -> str:
    return f"{status // 100}xx" if 200 <= status < 600 else "error"


async def deliver(session: aiohttp.ClientSession, s: SinkSettings, alert_id: str,
                  body: bytes, stopping: Callable[[], bool],
                  sleep: Callable[[float], Awaitable[bool]],
                  rng: random.Random | None = None) -> Outcome:
    """Try to POST ``body`` until delivered, refused or out of tries.

    ``sleep(seconds)`` waits between tries and returns early with True when
    the sink is asked to stop; a stop ends the tries after the one under way
    (whose answer still counts), so a stop never waits out a back-off.
    """
    rng = rng or random.Random()
    timeout = aiohttp.ClientTimeout(total=s.sink_timeout_seconds)
    status: int | None = None
    detail = ""
    for attempt in range(1, s.sink_max_attempts + 1):
        retry_after = None
        try:
            async with session.post(s.sink_url, data=body, timeout=timeout,
                                    allow_redirects=False,
                                    headers=request_headers(s, alert_id, body)) as r:
                status = r.status
                text = (await r.content.read(QUOTED_BYTES)).decode("utf-8", "replace")
                metrics.ATTEMPTS.labels(s.sink_format, _result(status)).inc()
                if 200 <= status < 300:
                    return Outcome("delivered", attempt, status, "")
                detail = f"HTTP {status} {r.reason or ''}".rstrip() + (
                    f": {' '.join(text.split())}" if text.strip() else "")
                if 300 <= status < 400:
                    detail += (f" (redirects to {r.headers.get('Location')}; configure "
                               "that URL)" if r.headers.get("Location") else "")
                if status < 500 and status not in RETRIED_STATUSES:
                    return Outcome("refused", attempt, status, detail)
                if status in (429, 503):
                    retry_after = _retry_after(r.headers.get("Retry-After"))
        except TimeoutError:
            status, detail = None, f"no answer within {s.sink_timeout_seconds:g} s"
            metrics.ATTEMPTS.labels(s.sink_format, "timeout").inc()
        except aiohttp.ClientError as exc:
            status, detail = None, f"{type(exc).__name__}: {exc}"
            metrics.ATTEMPTS.labels(s.sink_format, "error").inc()
        if attempt == s.sink_max_attempts:
            break
        if stopping() or await sleep(delay(attempt, s, rng, retry_after)):
            return Outcome("stopped", attempt, status, detail)
    return Outcome("exhausted", s.sink_max_attempts, status, detail)
