"""The retention playbook: what to do about the signals that fired.

Every alert carries actions a call-centre agent or a marketing journey can
start on, each with the reason it was chosen, and one summary line to read
aloud, in English and in Hebrew.
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
    "PROACTIVE_NOTICE": "tell them about known faults before they ask",
    "REACH_OUT": "reach out",
    "WIN_BACK": "make a win-back offer",
}
_VERBS_HE = {
    "LISTEN": "לשאול מה לא בסדר ולהקשיב",
    "ACT_ON_COMPLAINT": "לטפל בתלונה הפתוחה",
    "APPRECIATE": "להביע הערכה (תודה או הטבת נאמנות)",
    "PROACTIVE_NOTICE": "לעדכן מראש על תקלות ידועות",
    "REACH_OUT": "ליצור קשר",
    "WIN_BACK": "להציע הצעה לחזרה",
}
_CHANNELS_HE = {"phone": "בטלפון", "email": "בדוא\"ל", "sms": "ב-SMS", "social": "ברשתות החברתיות",
                "chat": "בצ'אט", "in_person": "בפגישה אישית"}
_SEVERITY_HE = {"low": "נמוך", "medium": "בינוני", "high": "גבוה", "critical": "קריטי"}


def _clause_he(f: Fired) -> str:
    """The signal in Hebrew, from its figures (the English detail is richer)."""
    v, b = f.value, f.baseline
    match f.code:
        case "OVERDUE":
            return f"לא קנה {v:.0f} ימים" + (f" (לקוח כזה קונה בממוצע כל {b:.0f} ימים)"
                                              if b else "")
        case "FREQUENCY_DROP":
            return f"קונה פחות מהרגיל ({v:g} לעומת {b or 0:g} בדרך כלל)"
        case "COMPLAINTS":
            return f"ריבוי תלונות (משקל {v:g})"
        case "TECHNICAL_FAULTS":
            return f"דיווח על תקלות {v:g} פעמים"
        case "COMPENSATION_ESCALATION":
            return f"דרש פיצוי {v:g} פעמים"
        case "COMPETITOR_PROBING":
            return f"הזכיר מתחרים {v:g} פעמים"
        case "HOSTILE_TONE":
            return "התבטא בעוינות כלפי הצוות"
        case "UNRESPONSIVE":
            return "לא עונה לפניות שלנו"
        case "NEGLECTED":
            return f"לקוח בעל ערך שלא שמע מאיתנו {v:.0f} ימים"
    return f.code


def reach_channel(state: CustomerState, avoid: set[str]) -> str:
    """The channel the customer answers most, avoiding the ones they now ignore."""
    best = state.preferred_channel(exclude=avoid)
    if best:
        return best
    return next(ch for ch in ("phone", "sms", "email", "in_person") if ch not in avoid)


def recommend(fired: Sequence[Fired], state: CustomerState, now: float,
              policy: Policy) -> list[Action]:
    codes = {f.code for f in fired}
    ignored = ({ch for ch, responded in zip(state.outreach_channel[-3:],
                                            state.outreach_responded[-3:], strict=True)
                if not responded}
               if "UNRESPONSIVE" in codes else set())
    channel = reach_channel(state, ignored)
    actions: list[Action] = []

    def add(code: str, reason: str, ch: str | None = None) -> None:
        if all(a.code != code for a in actions):
            actions.append(Action(code=code, reason=reason, channel=ch))

    if codes & {"COMPLAINTS", "COMPENSATION_ESCALATION"}:
        add("ACT_ON_COMPLAINT", "open complaints or compensation demands: never leave one "
                                "unresolved")
    if "TECHNICAL_FAULTS" in codes:
        add("PROACTIVE_NOTICE", "repeated faults: tell them what is being fixed and when, "
                                "before the next one")
    if codes & {"COMPLAINTS", "HOSTILE_TONE", "TECHNICAL_FAULTS", "COMPENSATION_ESCALATION"}:
        add("LISTEN", "frustrated: a senior agent should ask for feedback and listen")
    lapsed = (state.last_purchase_ts is not None
              and now - state.last_purchase_ts >= policy.overdue.lapsed_days * DAY)
    if lapsed:
        add("WIN_BACK", f"no purchase for {policy.overdue.lapsed_days:.0f}+ days: "
                        "a lapsed customer needs the right offer", channel)
    if codes & {"OVERDUE", "FREQUENCY_DROP", "UNRESPONSIVE", "NEGLECTED",
                "COMPETITOR_PROBING"} and not lapsed:
        why = ("ignores our usual channel: try another" if ignored
               else "a personal call or message on the channel they answer most")
        add("REACH_OUT", why, channel)
    if codes & {"FREQUENCY_DROP", "NEGLECTED", "COMPETITOR_PROBING"} or high_value(
            state, now, policy):
        add("APPRECIATE", "valued and drifting or comparing offers: show it with a "
                          "personal thank-you or a loyalty offer")
    return actions


def summary(customer_id: str, risk: float, severity: str, fired: Sequence[Fired],
            actions: Sequence[Action], horizon_days: float = 90.0) -> str:
    """One line a call-centre agent can read aloud: the risk as the chance it is."""
    why = "; ".join(f.detail for f in fired)
    todo = ", ".join(
        _VERBS[a.code] + (f" by {a.channel.replace('_', ' ')}" if a.channel else "")
        for a in actions
    )
    return (f"Customer {customer_id} ({severity} risk: {risk:.0f}% chance of no purchase in "
            f"{horizon_days:g} days): {why}. To do: {todo}.")


def summary_he(customer_id: str, risk: float, severity: str, fired: Sequence[Fired],
               actions: Sequence[Action], horizon_days: float = 90.0) -> str:
    why = "; ".join(_clause_he(f) for f in fired)
    todo = ", ".join(
        _VERBS_HE[a.code] + (f" {_CHANNELS_HE.get(a.channel, a.channel)}" if a.channel else "")
        for a in actions
    )
    return (f"לקוח {customer_id} (סיכון {_SEVERITY_HE.get(severity, severity)}: "
            f"{risk:.0f}% שלא יקנה ב-{horizon_days:g} הימים הקרובים): {why}. "
            f"לביצוע: {todo}.")
