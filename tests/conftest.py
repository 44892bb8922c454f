"""Shared test set-up.

Settings read from the environment (``from_env``) get a memory store and the
local broker profile here, unless a test or the caller sets them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

os.environ.setdefault("CHURNWATCH_STORE", "memory://")
os.environ.setdefault("CHURNWATCH_BROKER_PROFILE", "local")

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(days: float) -> str:
    """ISO timestamp ``days`` after 2025-01-01 (with an offset, as the contract wants)."""
    return (T0 + timedelta(days=days)).isoformat()


def epoch(days: float) -> float:
    return (T0 + timedelta(days=days)).timestamp()
