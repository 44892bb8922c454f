"""The retention playbook: what to do about the signals that fired.

Every alert carries actions a call-centre agent or a marketing journey can
start on, each with the reason it was chosen, and one summary line to read
aloud.
"""

from __future__ import annotations

from collections.abc import Sequence

from .policy import Policy
from .records import Action
from .scoring import high_value
from .signals import Fired
from .state import DAY, CustomerState

_VERBS = {
    "LISTEN": "ask what is going wrong",
    "ACT_ON_COMPLAINT": "resolve the open complaint",
    "APPRECIATE": "show appreciation (a thank-you or a loyalty offer)",
    "PROACTIVE_NOTICE": "tell them about known issues before they ask",
    "REACH_OUT": "reach out",
    "WIN_BACK": "make a win-back offer",
}


def recommend(fired: Sequence[Fired], state: CustomerState, now: float,
              policy: Policy) -> list[Action]:
    codes = {f.code for f in fired}
    channel = state.preferred_channel()
    actions: list[Action] = []

    def add(code: str, reason: str, ch: str | None = None) -> None:
        if all(a.code != code for a in actions):
            actions.append(Action(code=code, reason=reason, channel=ch))

    if "COMPLAINTS" in codes:
        add("ACT_ON_COMPLAINT", "recent complaints: never leave one unresolved")
        add("LISTEN", "complaining more than before: ask for feedback and listen")
    lapsed = (state.last_purchase_ts is not None
              and now - state.last_purchase_ts >= policy.overdue.lapsed_days * DAY)
    if lapsed:
        add("WIN_BACK", f"no purchase for {policy.overdue.lapsed_days:.0f}+ days: "
                        "a lapsed customer needs the right offer", channel)
    elif "OVERDUE" in codes or "FREQUENCY_DROP" in codes:
        add("REACH_OUT", "buying less than usual: a personal call or message"
                         + (f" on {channel}, where they answer most" if channel else ""),
            channel or "phone")
    if "FREQUENCY_DROP" in codes or high_value(state, now, policy):
        add("APPRECIATE", "a regular customer drifting away: show they are valued")
    return actions


def summary(customer_id: str, risk: float, severity: str, fired: Sequence[Fired],
            actions: Sequence[Action]) -> str:
    """One line a call-centre agent can read aloud."""
    why = "; ".join(f.detail for f in fired)
    todo = ", ".join(
        _VERBS[a.code] + (f" by {a.channel.replace('_', ' ')}" if a.channel else "")
        for a in actions
    )
    return f"Customer {customer_id} ({severity} risk {risk:.0f}/100): {why}. To do: {todo}."
