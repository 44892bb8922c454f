"""What a contact or complaint says about the customer's mood and intentions.

Concerns come from three places: the free text (Hebrew and English lexicons,
:mod:`stream_app.core.text`), the tags a CRM put on a contact, and the structured
fields of a complaint (its category, a compensation amount).  Each concern
keeps the words that matched, which become the evidence an agent reads.
"""

from __future__ import annotations

from functools import lru_cache

from .policy import Text
from .records import Complaint, Contact
from .text import DEFAULT_LEXICON, Lexicon

#: Concern kinds the signals use.
KINDS = ("fault", "competitor", "compensation", "hostile")

#: CRM tags (lower-case, '-' read as '_') -> concern kind.
TAG_KINDS = {
    "competitor": "competitor", "competition": "competitor", "price_match": "competitor",
    "competitor_offer": "competitor", "switching": "competitor",
    "refund": "compensation", "compensation": "compensation", "credit_request": "compensation",
    "fault": "fault", "technical_fault": "fault", "outage": "fault", "service_failure": "fault",
    "abusive": "hostile", "hostile": "hostile", "angry": "hostile", "escalation": "hostile",
}

Concern = tuple[str, str, float | None]


@lru_cache(maxsize=8)
def lexicon(text: Text) -> Lexicon:
    """The default lexicons extended by the policy's terms and competitor names."""
    return DEFAULT_LEXICON.extended({
        "competitor": [*text.competitors, *text.competitor_terms],
        "compensation": list(text.compensation_terms),
        "hostile": list(text.hostile_terms),
        "fault": list(text.fault_terms),
    })


def concerns(record: Complaint | Contact, text: Text) -> list[Concern]:
    """(kind, words that show it, amount) for each kind of concern in the record."""
    words: dict[str, list[str]] = {}
    amount: float | None = None
    if isinstance(record, Complaint):
        if record.category == "technical_fault":
            words.setdefault("fault", []).append("technical fault complaint")
        if record.compensation_requested:
            amount = float(record.compensation_requested)
            words.setdefault("compensation", []).append(f"asked for {amount:g}")
    else:
        for tag in record.tags or ():
            kind = TAG_KINDS.get(tag.lower().replace("-", "_"))
            if kind:
                words.setdefault(kind, []).append(f"#{tag}")
    if record.text:
        for m in lexicon(text).find(record.text):
            if m.category in KINDS and m.words not in words.get(m.category, ()):
                words.setdefault(m.category, []).append(m.words)
    return [(kind, "; ".join(ws[:4]), amount if kind == "compensation" else None)
            for kind, ws in words.items()]
