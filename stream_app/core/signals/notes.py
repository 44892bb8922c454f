"""Signals that count concerns (faults, competitor mentions, hostility) in a window.

Shared by TECHNICAL_FAULTS, COMPETITOR_PROBING and HOSTILE_TONE: each is the
same question, "how many events in the window raised this concern?", asked
of a different concern kind, with the matched words as evidence.
"""

from __future__ import annotations

from ..state import DAY, CustomerState, Note
from .base import Fired, clamp_strength, plural


def recent(state: CustomerState, kind: str, now: float, window_days: float) -> list[Note]:
    if not state.notes:  # most customers, most of the time: skip building the scan
        return []
    start = now - window_days * DAY
    return [n for n in state.notes if n.kind == kind and start < n.ts <= now]


def evaluate_notes(state: CustomerState, now: float, *, code: str, kind: str,
                   window_days: int, min_count: int, what: str) -> Fired | None:
    notes = recent(state, kind, now, window_days)
    if len(notes) < min_count:  # fewer notes than needed means fewer events too
        return None
    events = list(dict.fromkeys(str(n.event_id) for n in notes))
    if len(events) < min_count:
        return None
    quoted = "; ".join(dict.fromkeys(f'"{n.words}"' for n in notes[-3:]))
    detail = f"{what} {plural(len(events), 'time')} in {window_days} days ({quoted})"
    return Fired(code, clamp_strength(0.5 * len(events) / min_count), float(len(events)),
                 None, float(min_count), f"last {window_days} days", tuple(events), detail)


def next_check_notes(state: CustomerState, now: float, kind: str,
                     window_days: int) -> float | None:
    """When the oldest concern in the window ages out."""
    notes = recent(state, kind, now, window_days)
    return notes[0].ts + window_days * DAY + 1.0 if notes else None
