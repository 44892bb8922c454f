"""The ``Churnwatch-Signature`` header: HMAC-SHA256 over the time and the body.

``Churnwatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``

The time is inside the signed text so that a receiver can refuse an old
request captured and sent again (a replay), by checking that ``t`` is
recent; the body is signed byte for byte as sent, so the receiver must
compute the HMAC over the raw request body, before any JSON parsing.  Each
attempt is signed afresh.  :func:`verify` is what a receiver runs; the README
shows the same in a few lines for receivers written without churnwatch.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Churnwatch-Signature"
#: How old a signature a receiver accepts by default, in seconds.
TOLERANCE_SECONDS = 300


def signature(secret: str, body: bytes, at: float | None = None) -> str:
    t = int(time.time() if at is None else at)
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, now: float | None = None,
           tolerance: float = TOLERANCE_SECONDS) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))
