"""A seeded, deterministic synthetic customer population with known outcomes.

Used by the demo, the tests and the benchmarks.  Most customers are loyal
(regular or seasonal buyers, with the odd complaint); some drift away showing
the signs the business described (longer gaps, smaller baskets, complaints,
unanswered calls) and then stop; some leave abruptly after a burst of
complaints.  Each customer's :class:`Plan` records what the generator made
of them, so a run can be scored: who churned, when the drift began, and the
last purchase before they left.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

DAY = 86400.0
#: Events carry an Israeli local offset: timestamps with offsets are the contract.
LOCAL = timezone(timedelta(hours=2))

#: persona -> share of the population
PERSONAS: dict[str, float] = {
    "regular": 0.52,
    "seasonal": 0.10,
    "complains_but_stays": 0.05,
    "one_time": 0.05,
    "drifting": 0.17,
    "abrupt": 0.06,
    "neglected": 0.05,
}
LOYAL = frozenset({"regular", "seasonal", "complains_but_stays"})

_COMPETITOR_TEXT = [
    "Your competitor offers the same plan for 20% less, can you match the price?",
    "I got a better offer from another company",
    "אצל המתחרים זה זול יותר, תתאימו את המחיר?",
    "קיבלתי הצעה טובה יותר מחברה אחרת",
]
_HOSTILE_TEXT = [
    "This is ridiculous, your staff are useless",
    "I am fed up with this incompetent service",
    "זו חוצפה, אתם פשוט מזלזלים בלקוחות",
    "נמאס לי, שירות מגעיל",
]
_COMPENSATION_TEXT = [
    "I want a refund for the days without service",
    "אני דורש פיצוי על התקלה",
]
_NEUTRAL_TEXT = [
    "Thanks, the delivery arrived on time",
    "Can I change the delivery address?",
    "תודה רבה, הכל הגיע בזמן",
    "מה שעות הפתיחה של הסניף?",
]
_COMPLAINT_TEXT = {
    "technical_fault": ["The router keeps disconnecting again", "האפליקציה שוב לא עובדת"],
    "service_quality": ["Nobody answered my call for an hour", "השירות היה גרוע"],
    "delivery": ["My order arrived a week late", "המשלוח הגיע שבור"],
    "billing": ["I was charged twice this month", "חייבו אותי פעמיים"],
    "sales": ["The salesman promised a discount I never got", "הבטיחו לי הנחה ולא קיבלתי"],
}


@dataclass(slots=True)
class Plan:
    customer_id: str
    persona: str
    mean_gap_days: float
    churned: bool = False
    drift_start: float | None = None
    #: The customer's last purchase before leaving (churners only).
    last_purchase: float | None = None


@dataclass(slots=True)
class Event:
    ts: float
    topic: str
    customer_id: str
    value: dict[str, Any]


@dataclass
class Population:
    plans: dict[str, Plan]
    events: list[Event]
    start: float
    end: float
    counts: dict[str, int] = field(default_factory=dict)

    def churners(self) -> list[Plan]:
        return [p for p in self.plans.values() if p.churned]

    def loyal(self) -> list[Plan]:
        return [p for p in self.plans.values() if p.persona in LOYAL]


def iso_local(ts: float) -> str:
    return datetime.fromtimestamp(ts, LOCAL).isoformat(timespec="seconds")


class _Builder:
    def __init__(self, rng: random.Random, start: float, end: float) -> None:
        self.rng, self.start, self.end = rng, start, end
        self.events: list[Event] = []
        self.seq = 0

    def _id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq:08d}"

    def purchase(self, cid: str, ts: float, amount: float) -> None:
        channel = self.rng.choice(("store", "store", "online", "app"))
        self.events.append(Event(ts, "purchases", cid, {
            "event_id": self._id("p"), "customer_id": cid, "ts": iso_local(ts),
            "amount": round(max(1.0, amount), 2), "currency": "ILS", "channel": channel,
        }))

    def complaint(self, cid: str, ts: float, category: str, severity: int,
                  compensation: float | None = None, text: str | None = None) -> None:
        value: dict[str, Any] = {
            "event_id": self._id("k"), "customer_id": cid, "ts": iso_local(ts),
            "category": category, "severity": severity,
            "text": text or self.rng.choice(_COMPLAINT_TEXT.get(category, ["Not happy"])),
        }
        if compensation:
            value["compensation_requested"] = round(compensation, 2)
        self.events.append(Event(ts, "complaints", cid, value))

    def contact(self, cid: str, ts: float, direction: str, channel: str,
                outcome: str | None, purpose: str, text: str | None = None) -> None:
        value: dict[str, Any] = {
            "event_id": self._id("c"), "customer_id": cid, "ts": iso_local(ts),
            "direction": direction, "channel": channel, "purpose": purpose,
        }
        if outcome:
            value["outcome"] = outcome
        if text:
            value["text"] = text
        self.events.append(Event(ts, "contacts", cid, value))

    def says(self, cid: str, ts: float, channel: str, pool: list[str]) -> None:
        """The customer calls or writes in, in their own words."""
        self.contact(cid, ts, "inbound", channel, None, "service", self.rng.choice(pool))

    def souring(self, cid: str, start: float, end: float, channel: str) -> None:
        """What a customer on the way out says: competitors, hostility, demands."""
        rng = self.rng
        if rng.random() < 0.5:
            self.says(cid, rng.uniform(start, end), channel, _COMPETITOR_TEXT)
        if rng.random() < 0.35:
            self.says(cid, rng.uniform(start, end), channel, _HOSTILE_TEXT)
        if rng.random() < 0.4:
            first = rng.uniform(50, 200)
            for k, t in enumerate(sorted(rng.uniform(start, end) for _ in range(2))):
                self.complaint(cid, t, rng.choice(("service_quality", "billing")), 3,
                               compensation=first * (1 + k),
                               text=rng.choice(_COMPENSATION_TEXT))

    def gap(self, mean_days: float) -> float:
        # Gamma with shape 4: regular but not clockwork.
        return self.rng.gammavariate(4.0, mean_days / 4.0) * DAY

    def purchases(self, cid: str, t: float, until: float, mean_gap: float, basket: float,
                  stretch_from: float | None = None, stretch_days: float = 60.0) -> float | None:
        """Purchases until ``until``; after ``stretch_from``, longer gaps, smaller baskets."""
        last = None
        while t < until:
            factor = 1.0
            if stretch_from is not None and t > stretch_from:
                factor = 1.0 + 2.5 * min(1.0, (t - stretch_from) / (stretch_days * DAY))
            self.purchase(cid, t, self.rng.lognormvariate(0, 0.3) * basket / factor ** 0.5)
            last = t
            t += self.gap(mean_gap * factor)
        return last

    def background_contacts(self, cid: str, responsive_until: float, channel: str) -> None:
        """Outbound touches every month or so (answered until ``responsive_until``)."""
        t = self.start + self.rng.uniform(0, 30) * DAY
        while t < self.end:
            ok = self.rng.random() < (0.75 if t < responsive_until else 0.1)
            outcome = ("answered" if channel == "phone" else "opened") if ok else \
                self.rng.choice(("no_answer", "ignored"))
            self.contact(cid, t, "outbound", channel, outcome,
                         self.rng.choice(("sales", "service", "appreciation")))
            t += self.rng.uniform(20, 45) * DAY
        if self.rng.random() < 0.4:
            self.says(cid, self.rng.uniform(self.start, min(responsive_until, self.end)),
                      channel, _NEUTRAL_TEXT)


def generate(customers: int = 2000, days: int = 540, seed: int = 7,
             start: datetime | None = None) -> Population:
    """Build the population and its events, sorted by event time.

    Drift and departures happen in the last 40% of the span, so every
    customer has about a year of ordinary history first: the baseline the
    signals judge them against.
    """
    rng = random.Random(seed)
    t0 = (start or datetime(2025, 1, 1, tzinfo=UTC)).timestamp()
    t1 = t0 + days * DAY
    b = _Builder(rng, t0, t1)
    plans: dict[str, Plan] = {}
    names, weights = zip(*PERSONAS.items(), strict=True)
    for i in range(customers):
        cid = f"C{i:06d}"
        persona = rng.choices(names, weights)[0]
        mean_gap = rng.lognormvariate(2.6, 0.45)  # ~13 days, most 6-30
        if persona == "seasonal":
            mean_gap = rng.uniform(120, 180)
        plan = Plan(cid, persona, round(mean_gap, 1))
        plans[cid] = plan
        basket = rng.lognormvariate(4.5, 0.6)  # ~90 ILS
        channel = rng.choice(("phone", "phone", "email", "sms", "chat"))
        first = t0 + rng.uniform(0, min(mean_gap, 60)) * DAY
        if persona == "one_time":
            b.purchase(cid, t0 + rng.uniform(0, days) * DAY, basket)
            continue
        if persona in ("regular", "seasonal"):
            b.purchases(cid, first, t1, mean_gap, basket)
            if rng.random() < 0.3:
                cat = rng.choice(list(_COMPLAINT_TEXT))
                b.complaint(cid, rng.uniform(t0, t1), cat, rng.randint(1, 3))
            b.background_contacts(cid, t1, channel)
        elif persona == "complains_but_stays":
            b.purchases(cid, first, t1, mean_gap, basket)
            burst = rng.uniform(t0 + 0.5 * days * DAY, t1 - 20 * DAY)
            for k in range(rng.randint(2, 3)):
                b.complaint(cid, burst + k * rng.uniform(1, 6) * DAY, "delivery",
                            rng.randint(2, 4))
            b.background_contacts(cid, t1, channel)
        elif persona == "drifting":
            plan.churned = True
            drift = t0 + rng.uniform(0.6, 0.8) * days * DAY
            leave = drift + rng.uniform(45, 110) * DAY
            plan.drift_start = drift
            plan.last_purchase = b.purchases(cid, first, leave, mean_gap, basket,
                                             stretch_from=drift)
            for _ in range(rng.randint(1, 4)):
                b.complaint(cid, rng.uniform(drift, leave),
                            rng.choice(("technical_fault", "service_quality", "billing")),
                            rng.randint(2, 4))
            b.background_contacts(cid, drift, channel)
            b.souring(cid, drift, leave, channel)
        elif persona == "neglected":
            # A valuable regular we never call, who slowly gives up on us.
            plan.churned = True
            leave = t0 + rng.uniform(0.75, 0.95) * days * DAY
            # The first sign is our own silence: four months without a word.
            plan.drift_start = first + 120 * DAY
            plan.last_purchase = b.purchases(cid, first, leave, min(mean_gap, 10), basket * 3,
                                             stretch_from=leave - 60 * DAY)
        else:  # abrupt
            plan.churned = True
            burst = t0 + rng.uniform(0.6, 0.9) * days * DAY
            plan.drift_start = burst
            plan.last_purchase = b.purchases(cid, first, burst + 10 * DAY, mean_gap, basket)
            for k in range(rng.randint(2, 4)):
                b.complaint(cid, burst + k * rng.uniform(1, 5) * DAY,
                            rng.choice(("technical_fault", "service_quality", "delivery")),
                            rng.randint(3, 5))
            b.background_contacts(cid, burst, channel)
            b.souring(cid, burst, burst + 20 * DAY, channel)
        if plan.churned and plan.last_purchase is None:
            plan.churned = False  # left before buying anything: nothing to catch
    events = sorted((e for e in b.events if t0 <= e.ts < t1),
                    key=lambda e: (e.ts, e.value["event_id"]))
    counts: dict[str, int] = {}
    for e in events:
        counts[e.topic] = counts.get(e.topic, 0) + 1
    return Population(plans, events, t0, t1, counts)

