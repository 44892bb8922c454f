"""Should this customer be alerted now?  The alert life cycle, as pure functions.

An *episode* opens when the risk reaches ``open_at`` and closes when it falls
below ``close_below`` (hysteresis, so a score wobbling around one threshold
does not page anyone twice).  Inside an episode a new alert is sent only when
a new signal joins or the risk rises by ``escalate_step``.

The alert id is a hash of the customer, the episode, the alert's revision in
that episode and its signal set: all of them come from the replicated state,
so a replay or a restart that re-sends an alert re-sends the *same* id and
downstream systems drop the copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import UTC, datetime

from .outcomes import expect, next_maturity
from .playbook import recommend, summary, summary_he
from .policy import Policy
from .records import ChurnAlert, SignalEvidence
from .scoring import risk_score, route, severity, value_at_risk
from .signals import CODES, EVALUATORS, NEXT_CHECKS, SILENT_WITHOUT, Fired
from .signals.base import Evaluate, NextCheck
from .state import DAY, CustomerState


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alert_id(customer_id: str, episode: int, revision: int, codes: list[str]) -> str:
    material = f"{customer_id}\x1f{episode}\x1f{revision}\x1f{'+'.join(codes)}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def silenced(state: CustomerState, now: float) -> bool:
    """Feedback says: do not contact, reported lost, or quiet for a while."""
    a = state.alerting
    return a.do_not_contact or a.lost or (a.quiet_until is not None and now < a.quiet_until)


#: The fields a signal can be silent without, as :func:`_signals` reads them.
_SILENCERS = ("complaints", "notes")
assert set(SILENT_WITHOUT) <= {None, *_SILENCERS}, SILENT_WITHOUT

_Signals = tuple[tuple[Evaluate, ...], tuple[tuple[str, NextCheck], ...]]


def _selection(has_complaints: bool, has_notes: bool) -> _Signals:
    has = {"complaints": has_complaints, "notes": has_notes}
    keep = [i for i, field in enumerate(SILENT_WITHOUT) if field is None or has[field]]
    return (tuple(EVALUATORS[i] for i in keep),
            tuple((CODES[i], NEXT_CHECKS[i]) for i in keep))


#: (complaints kept, concerns noted) -> the signals that can say anything, in
#: evaluation order: their evaluators, and their (code, next_check).
_SELECTED: dict[tuple[bool, bool], _Signals] = {
    (c, n): _selection(c, n) for c in (False, True) for n in (False, True)}


def _signals(state: CustomerState) -> _Signals:
    """The signals worth asking about ``state``: the others are silent (see
    :data:`~stream_app.core.signals.SILENT_WITHOUT`); most customers have no
    complaint and no concern, and skip five of the nine."""
    return _SELECTED[bool(state.complaints), bool(state.notes)]


def evaluate_signals(state: CustomerState, now: float, policy: Policy,
                     evaluators: tuple[Evaluate, ...] | None = None) -> list[Fired]:
    # Plain loops: this runs for every event and every timer, and a generator
    # per call costs as much as a cheap signal.
    fired = []
    for ev in _signals(state)[0] if evaluators is None else evaluators:
        f = ev(state, now, policy)
        if f is not None:
            fired.append(f)
    return fired


def next_due(state: CustomerState, now: float, policy: Policy,
             firing: Collection[str],
             checks: tuple[tuple[str, NextCheck], ...] | None = None) -> float | None:
    """When the sweep must look at the customer again: the first signal to say so.

    ``firing``: the codes of the signals that fire at ``now``.
    """
    due = next_maturity(state)  # an alert's horizon ends: settle whether it was right
    if due is not None and due <= now:
        due = None
    for code, nc in _signals(state)[1] if checks is None else checks:
        t = nc(state, now, policy, code in firing)
        if t is not None and t > now and (due is None or t < due):
            due = t
    return due


def assess(state: CustomerState, now: float, policy: Policy,
           emitted_at: float) -> ChurnAlert | None:
    """Re-score the customer at event time ``now``; update the state in place.

    Returns the alert to send, if one is due.  The caller must send it before
    it writes the state, so that a crash in between re-sends (same id) rather
    than loses it.
    """
    evaluators, checks = _signals(state)
    fired = evaluate_signals(state, now, policy, evaluators)
    codes = [f.code for f in fired]
    state.active = codes
    state.due_ts = next_due(state, now, policy, codes, checks)
    a = state.alerting
    if not a.open and (not fired or silenced(state, now)):
        # Nothing to open or close: the risk (the model's arithmetic) is not
        # needed, and most assessments end here.
        return None
    risk = risk_score(state, fired, now, policy)
    state.risk = risk
    if (a.open and risk < policy.alerting.close_below
            and not any(c in policy.alerting.opens_alone for c in codes)):
        # Closed once the risk is low and nothing that calls for an action of
        # its own is still active: an episode a complaint opened for a
        # customer who still buys lasts as long as the complaints do.
        a.open, a.codes, a.risk, a.severity = False, [], 0.0, ""
        return None
    if not fired or silenced(state, now):
        return None
    cooldown = policy.alerting.cooldown_days * DAY
    fresh = {c for c in codes if now - a.alerted_at.get(c, float("-inf")) > cooldown}
    if not a.open:
        if not fresh or (risk < policy.alerting.open_at
                         and fresh.isdisjoint(policy.alerting.opens_alone)):
            return None
        a.episode += 1
        a.open = True
        revision = 0
    else:
        new_signal = bool(fresh - set(a.codes))
        if not new_signal and risk < a.risk + policy.alerting.escalate_step:
            return None
        revision = a.sent_in_episode
    sev = severity(risk, policy)
    a.codes = sorted(set(a.codes) | set(codes))
    a.risk, a.severity, a.last_alert_ts = risk, sev, now
    a.sent += 1
    a.sent_in_episode = revision + 1
    for c in codes:
        a.alerted_at[c] = now
    actions = recommend(fired, state, now, policy)
    expect(state, now, risk, policy.model.horizon_days)
    state.due_ts = next_due(state, now, policy, codes)
    return ChurnAlert(
        alert_id=alert_id(state.customer_id, a.episode, revision, sorted(codes)),
        customer_id=state.customer_id,
        ts=iso(now),
        emitted_at=iso(emitted_at),
        risk_score=risk,
        severity=sev,
        signals=[
            SignalEvidence(code=f.code, value=f.value, baseline=f.baseline,
                           threshold=f.threshold, window=f.window,
                           evidence=list(f.evidence), detail=f.detail)
            for f in fired
        ],
        actions=actions,
        route=route(risk, state, now, policy),
        horizon_days=policy.model.horizon_days,
        value_at_risk=value_at_risk(risk, state, now, policy),
        summary=summary(state.customer_id, risk, sev, fired, actions,
                           policy.model.horizon_days),
        summary_he=summary_he(state.customer_id, risk, sev, fired, actions,
                                 policy.model.horizon_days),
        episode=a.episode,
    )
