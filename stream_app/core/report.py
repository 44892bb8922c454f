"""A customer's standing, as data and as text: what the policy makes of a state now.

Pure: the state, the policy and a time in, the signals, score, route and
actions out.  ``churnwatch explain`` prints it (:func:`describe`) for a
state read from the changelog; the worker's ``GET /customers/{id}`` serves
:func:`report` for a state in its table, and the console draws its card
from that.  One function for all, so they never disagree about a customer.
"""

from __future__ import annotations

from typing import Any

from .alerting import evaluate_signals, iso
from .playbook import recommend, summary, summary_he
from .policy import Policy
from .scoring import purchase_risk, risk_score, route, severity, value_at_risk
from .state import DAY, CustomerState


def report(state: CustomerState, policy: Policy, at: float | None = None) -> dict[str, Any]:
    """The customer's standing at ``at`` (default: their latest event), as data."""
    now = at if at is not None else state.last_ts
    fired = evaluate_signals(state, now, policy)
    risk = risk_score(state, fired, now, policy)
    sev = severity(risk, policy)
    actions = recommend(fired, state, now, policy)
    a = state.alerting
    suppressed = ("do_not_contact" if a.do_not_contact else "lost" if a.lost
                  else "quiet" if a.quiet_until and a.quiet_until > now else None)
    return {
        "customer_id": state.customer_id,
        "at": iso(now),
        "partition": state.partition,
        "risk_score": risk,
        "risk": {"meaning": f"probability of no purchase in the next "
                            f"{policy.model.horizon_days:g} days, in percent",
                 "from_purchases_alone": round(100 * purchase_risk(state, now, policy), 1),
                 "value_at_risk": value_at_risk(risk, state, now, policy)},
        "severity": sev,
        "route": route(risk, state, now, policy),
        "signals": [{"code": f.code, "value": f.value, "baseline": f.baseline,
                     "threshold": f.threshold, "window": f.window,
                     "evidence": list(f.evidence), "detail": f.detail} for f in fired],
        "actions": [{"code": x.code, "reason": x.reason, "channel": x.channel}
                    for x in actions],
        "summary": summary(state.customer_id, risk, sev, fired, actions,
                           policy.model.horizon_days) if fired else None,
        "summary_he": summary_he(state.customer_id, risk, sev, fired, actions,
                                 policy.model.horizon_days)
        if fired else None,
        "episode": {"number": a.episode, "open": a.open, "alerts_sent": a.sent,
                    "last_alert": iso(a.last_alert_ts) if a.last_alert_ts else None,
                    "suppressed": suppressed,
                    "quiet_until": iso(a.quiet_until) if a.quiet_until else None,
                    "feedback": dict(a.feedback)},
        "activity": {"purchases": state.purchases, "spend": round(state.spend, 2),
                     "spend_last_year": state.spend_last_year(now,
                                                              policy.history.bucket_days),
                     "last_purchase": iso(state.last_purchase_ts)
                     if state.last_purchase_ts else None,
                     "complaints": len(state.complaints), "concerns": len(state.notes),
                     "outreach_days": len(state.outreach_day)},
        "next_check": iso(state.due_ts) if state.due_ts else None,
        "history": history(state),
    }


def history(state: CustomerState) -> dict[str, list[dict[str, Any]]]:
    """The events the state still holds, for a timeline (the console's card).

    What the signals look at: the latest purchases, the complaints and
    concerns in their windows, the days we reached out.  Texts are not kept
    in the state, only the concerns found in them.
    """
    return {
        "purchases": [{"ts": iso(t), "event_id": i}
                      for t, i in zip(state.recent_purchase_ts, state.recent_purchase_ids,
                                      strict=False)],
        "complaints": [{"ts": iso(c.ts), "event_id": c.event_id, "category": c.category,
                        "severity": c.severity} for c in state.complaints],
        "outreach": [{"ts": iso(day * DAY), "channel": channel, "responded": bool(answered),
                      "event_id": event}
                     for day, answered, channel, event in zip(
                         state.outreach_day, state.outreach_responded,
                         state.outreach_channel, state.outreach_event, strict=False)],
        "concerns": [{"ts": iso(n.ts), "event_id": n.event_id, "kind": n.kind,
                      "words": n.words} for n in state.notes],
    }


def describe(state: CustomerState, policy: Policy, at: float | None = None) -> str:
    r = report(state, policy, at)
    act, ep = r["activity"], r["episode"]
    lines = [f"Customer {r['customer_id']}: judged at {r['at']} (partition {r['partition']})",
             f"  purchases {act['purchases']} (spend {act['spend']:,.0f}; last year "
             f"{act['spend_last_year']:,.0f}; last purchase {act['last_purchase'] or 'never'})",
             f"  complaints kept {act['complaints']}, concerns {act['concerns']}, "
             f"outreach days {act['outreach_days']}",
             f"  risk {r['risk_score']:.0f}% ({r['severity']}): {r['risk']['meaning']}; "
             f"{r['risk']['from_purchases_alone']:.0f}% from the purchases alone; value at "
             f"risk {r['risk']['value_at_risk']:,.0f}; route {r['route']}",
             f"  alerts sent {ep['alerts_sent']}; " + (
                 f"episode {ep['number']} {'open' if ep['open'] else 'closed'}"
                 if ep["number"] else "no episode yet")]
    if ep["feedback"]:
        lines.append("  feedback " + ", ".join(f"{k} {v}" for k, v in ep["feedback"].items()))
    if ep["suppressed"]:
        lines.append(f"  alerts suppressed: {ep['suppressed']}"
                     + (f" until {ep['quiet_until']}" if ep["suppressed"] == "quiet" else ""))
    lines.append("  signals:" if r["signals"] else "  signals: none")
    for f in r["signals"]:
        base = f"{f['baseline']:g}" if f["baseline"] is not None else "-"
        lines.append(f"    {f['code']:<24} {f['detail']}")
        lines.append(f"    {'':<24} value {f['value']:g}, baseline {base}, threshold "
                     f"{f['threshold']:g}, {f['window']}; evidence "
                     f"{', '.join(f['evidence']) or '-'}")
    if r["signals"]:
        lines.append("  actions: " + "; ".join(
            x["code"] + (f" ({x['channel']})" if x["channel"] else "") for x in r["actions"]))
        lines.append(f"  {r['summary']}")
        lines.append(f"  {r['summary_he']}")
    if r["next_check"]:
        lines.append(f"  next look by the timer sweep: {r['next_check']}")
    return "\n".join(lines)
