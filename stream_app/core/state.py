"""Compact per-customer state, and the pure functions that fold events into it.

One customer's whole state is one small value in one table, written at most
once per flush however many of the customer's events the flush holds: every
table write is a changelog message, and those writes (not our own code) are
what bounds a Faust worker's throughput.  Windows are therefore kept *inside*
the state as event-time buckets and bounded lists, instead of in Faust
windowed tables (three of those cost three changelog messages per event,
lose state on rebalance and cannot be read from a timer).

Time basis: every timestamp here is the event's own time (epoch seconds, UTC),
never the wall clock, so a replay of last year's events builds the same state
as living through them.

Layout: the lists that grow with a customer's history (purchase buckets,
gaps, recent purchases, outreach days) are kept as *columns*, typed arrays
side by side, not as lists of small lists.  A worker's time on a large
customer base is bound by memory, not by arithmetic: every small object a
state holds is a cache miss when the state is next touched, so a state of
columns, with far fewer heap objects, serialises much faster cold.  Columns
also let the signals take window sums with ``bisect`` and ``sum`` over a
slice instead of a Python loop.

Complaints and concerns are few per customer and read field by field, so
they are rows (:class:`KeptComplaint`, :class:`Note`): named tuples, written
as the same JSON arrays the lists of earlier releases were.

Idempotence: the state remembers the last offset it applied from each source
topic.  A customer's events always come from the same partition of each topic,
so after a crash the events re-delivered from the last committed offset are
recognised and skipped instead of being counted twice.  It also remembers
the ids of its latest events (``[history].event_ids_kept``), so the same
event sent twice, at two offsets, is counted once.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

import orjson

from .concerns import concerns
from .policy import Policy
from .records import Complaint, Contact, Feedback, Purchase

DAY = 86400.0
STATE_VERSION = 3
#: How many recent purchases are kept as evidence.
RECENT_PURCHASES_KEPT = 8
#: Outbound-contact outcomes that count as the customer responding.
RESPONSES = frozenset({"answered", "replied", "opened"})
OUTREACH_KEPT = 24
NOTES_KEPT = 40


class KeptComplaint(NamedTuple):
    """A complaint as the state keeps it: what the complaint signals read."""

    ts: float
    event_id: str
    category: str
    severity: int


class Note(NamedTuple):
    """A concern found in a contact or complaint (see :mod:`stream_app.core.concerns`)."""

    ts: float
    event_id: str
    #: The concern's kind: fault, competitor, compensation or hostile.
    kind: str
    #: The words that showed it, as the evidence quotes them.
    words: str
    #: The compensation asked for, for a compensation concern.
    amount: float | None


@dataclass(slots=True)
class Alerting:
    """Where the customer is in the alert life cycle (episodes, hysteresis)."""

    episode: int = 0
    open: bool = False
    #: Signal codes and risk of the last alert sent in the open episode.
    codes: list[str] = field(default_factory=list)
    risk: float = 0.0
    severity: str = ""
    last_alert_ts: float | None = None
    #: Alerts sent over the customer's lifetime, and in the open episode.
    sent: int = 0
    sent_in_episode: int = 0
    #: Signal code -> event time it was last alerted on (per-signal cooldown).
    alerted_at: dict[str, float] = field(default_factory=dict)
    #: Feedback: no alerts before this event time; none at all if opted out;
    #: none while the customer is reported lost (until they buy again).
    quiet_until: float | None = None
    do_not_contact: bool = False
    lost: bool = False
    #: Feedback outcome -> count.
    feedback: dict[str, int] = field(default_factory=dict)
    #: The alerts whose prediction has not matured yet: [event time, risk in
    #: percent, horizon in days], oldest first (see :mod:`stream_app.core.outcomes`).
    pending: list[list[float]] = field(default_factory=list)


@dataclass(slots=True)
class CustomerState:
    customer_id: str
    #: Partition the customer's events arrive on (all topics are co-partitioned).
    partition: int = -1
    #: Source topic -> last applied offset (makes redelivery harmless).
    offsets: dict[str, int] = field(default_factory=dict)
    #: The ids of the latest events applied, oldest first, each prefixed with
    #: its kind's letter (ids are unique per topic, not across topics): the
    #: same event sent again at another offset is recognised and dropped.
    event_ids: list[str] = field(default_factory=list)
    first_ts: float = 0.0
    last_ts: float = 0.0
    # Purchases
    purchases: int = 0
    spend: float = 0.0
    first_purchase_ts: float | None = None
    last_purchase_ts: float | None = None
    #: Purchase days after the first (the purchase model's ``x``): a day with
    #: several purchases counts once.
    repeat_days: int = 0
    #: The most recent event-time buckets, oldest first, as three columns:
    #: bucket index (event time // bucket width), purchases, spend.
    bucket_idx: array[int] = field(default_factory=lambda: array("q"))
    bucket_count: array[int] = field(default_factory=lambda: array("q"))
    bucket_spend: array[float] = field(default_factory=lambda: array("d"))
    #: Recent inter-purchase gaps in days (same-day repeats are not gaps).
    gaps: array[float] = field(default_factory=lambda: array("d"))
    #: Time and event id of the latest purchases, oldest first (evidence).
    recent_purchase_ts: array[float] = field(default_factory=lambda: array("d"))
    recent_purchase_ids: list[str] = field(default_factory=list)
    #: Complaints within ``[history].complaint_days``, oldest first.
    complaints: list[KeptComplaint] = field(default_factory=list)
    # Contacts: channel -> [outbound attempts, responses, inbound contacts].
    channels: dict[str, list[int]] = field(default_factory=dict)
    last_outbound_ts: float | None = None
    last_inbound_ts: float | None = None
    #: One entry per day with outbound contact, oldest first, as columns: day
    #: index (event time // DAY), whether the customer responded that day
    #: (0/1), the channel and the last event id.  A burst on one day is one day.
    outreach_day: array[int] = field(default_factory=lambda: array("q"))
    outreach_responded: array[int] = field(default_factory=lambda: array("B"))
    outreach_channel: list[str] = field(default_factory=list)
    outreach_event: list[str] = field(default_factory=list)
    unsubscribed_ts: float | None = None
    #: Concerns found in texts, tags and complaint fields, oldest first.
    notes: list[Note] = field(default_factory=list)
    # Alerting
    alerting: Alerting = field(default_factory=Alerting)
    #: The risk at the last assessment that needed it (one with a signal or an
    #: open episode), and the signal codes active at the last assessment.
    risk: float = 0.0
    active: list[str] = field(default_factory=list)
    #: Event time at which the timer sweep must look at this customer again.
    due_ts: float | None = None
    #: Values derived from the fields above, kept while the state is in memory
    #: so that signals need not recompute them at every assessment; each entry
    #: carries the key it is valid for.  Never serialised, not part of equality.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # -- serialisation ---------------------------------------------------

    def to_bytes(self) -> bytes:
        d = dict(zip(_FIELDS, _field_values(self), strict=True))
        d["alerting"] = list(_alerting_values(self.alerting))
        d["v"] = STATE_VERSION
        return orjson.dumps(d, default=_plain)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CustomerState:
        """A state from its changelog value, of this version or an earlier one."""
        d = orjson.loads(raw)
        version = d.pop("v", 1)
        if version > STATE_VERSION:
            raise ValueError(
                f"the state of customer {d.get('customer_id')!r} is version {version}, written "
                f"by a newer release; this one reads up to version {STATE_VERSION}: run the "
                f"newer release")
        if version == 1:
            _columns_from_rows(d)
        if "repeat_days" not in d:
            # Before version 3 purchase days were not counted: every purchase
            # after the first stands for one (same-day repeats were rare).
            d["repeat_days"] = max(0, d["purchases"] - 1)
        for name, typecode in _ARRAYS.items():
            d[name] = array(typecode, d[name])
        d["outreach_channel"] = [sys.intern(ch) for ch in d["outreach_channel"]]
        d["complaints"] = [KeptComplaint(*x) for x in d["complaints"]]
        d["notes"] = [Note(*n) for n in d["notes"]]
        alerting = Alerting(*d.pop("alerting"))
        return cls(alerting=alerting, **d)

    # -- derived ---------------------------------------------------------

    def purchase_days(self, now: float) -> tuple[int, float, float] | None:
        """The purchase model's ``(x, t_x, T)`` at ``now``, in days from the first
        purchase; None before it.  ``T`` is never below ``t_x`` (a late event
        may be older than the clock's last step)."""
        first, last = self.first_purchase_ts, self.last_purchase_ts
        if first is None or last is None:
            return None
        t_x = (last - first) / DAY
        return self.repeat_days, t_x, max(t_x, (now - first) / DAY)

    def spend_last_year(self, now: float, bucket_days: int) -> float:
        """Spend in the buckets of the last 365 days: what the customer is worth now."""
        width = bucket_days * DAY
        idx = self.bucket_idx
        first = bisect_left(idx, int((now - 365 * DAY) // width) + 1)
        return float(sum(self.bucket_spend[first:bisect_right(idx, int(now // width))]))

    def preferred_channel(self, exclude: set[str] | frozenset[str] = frozenset()
                          ) -> str | None:
        """The channel the customer answers most, by response rate then volume."""
        best: tuple[float, int, str] | None = None
        for ch, (attempts, responses, inbound) in self.channels.items():
            if ch in exclude:
                continue
            rate = (responses + 1) / (attempts + 2)  # Laplace: one lucky call isn't a rule
            key = (rate, responses + inbound, ch)
            if responses + inbound > 0 and (best is None or key > best):
                best = key
        return best[2] if best else None


_FIELDS = tuple(n for n in CustomerState.__dataclass_fields__
                if n not in ("alerting", "memo"))
_ALERTING_FIELDS = tuple(Alerting.__dataclass_fields__)
_field_values = attrgetter(*_FIELDS)
_alerting_values = attrgetter(*_ALERTING_FIELDS)
#: The columns kept as typed arrays: field name -> array type code.
_ARRAYS = {name: value.typecode for name in _FIELDS
           if isinstance(value := getattr(CustomerState(""), name), array)}


def _plain(value: Any) -> Any:
    """orjson's fallback for what it does not know: the columns, and the rows
    (named tuples, which orjson does not write itself), as JSON lists."""
    if isinstance(value, array):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _columns_from_rows(d: dict[str, Any]) -> None:
    """Version 1 kept the columns as lists of rows: read them as columns."""
    buckets = d.pop("buckets")
    d["bucket_idx"] = [int(b[0]) for b in buckets]
    d["bucket_count"] = [int(b[1]) for b in buckets]
    d["bucket_spend"] = [b[2] for b in buckets]
    recent = d.pop("recent_purchases")
    d["recent_purchase_ts"] = [r[0] for r in recent]
    d["recent_purchase_ids"] = [r[1] for r in recent]
    outreach = d.pop("outreach")
    d["outreach_day"] = [o[0] for o in outreach]
    d["outreach_responded"] = [o[1] for o in outreach]
    d["outreach_channel"] = [o[2] for o in outreach]
    d["outreach_event"] = [o[3] for o in outreach]


def new_state(customer_id: str) -> CustomerState:
    return CustomerState(customer_id=customer_id)


_Row = TypeVar("_Row", KeptComplaint, Note)
_TS = attrgetter("ts")


def _insert(items: list[_Row], item: _Row) -> None:
    """Add ``item`` to ``items``, kept in order of their first element (a time).

    Events mostly arrive in time order, so the item usually belongs last and
    no sort is needed; equal times keep arrival order, as the stable sort does.
    """
    items.append(item)
    if len(items) > 1 and item.ts < items[-2].ts:
        items.sort(key=_TS)


def _keep_last(n: int, *columns: array[Any] | list[Any]) -> None:
    for column in columns:
        del column[:-n]


def already_applied(state: CustomerState, topic: str, offset: int) -> bool:
    last = state.offsets.get(topic)
    return last is not None and offset <= last


#: Record class -> the letter its event ids are prefixed with in ``event_ids``.
_ID_PREFIX: dict[type, str] = {Purchase: "p", Contact: "c", Complaint: "k", Feedback: "f"}


def _event_key(record: Purchase | Contact | Complaint | Feedback) -> str:
    return _ID_PREFIX[type(record)] + record.event_id


def seen_event(state: CustomerState, record: Purchase | Contact | Complaint | Feedback) -> bool:
    """Whether the state applied an event with this id among its latest ones.

    Offsets cannot tell: a producer that retries, or a connector that sends
    again after a crash, puts the same event at a new offset.
    """
    return _event_key(record) in state.event_ids


def _touch(state: CustomerState, topic: str, partition: int, offset: int, ts: float) -> None:
    if offset >= 0:
        state.offsets[topic] = offset
    state.partition = partition
    if not state.first_ts or ts < state.first_ts:
        state.first_ts = ts
    state.last_ts = max(state.last_ts, ts)


def _new_purchase_day(state: CustomerState, ts: float) -> bool:
    """Whether ``ts`` falls on a day with no purchase yet (among the recent ones
    kept, and the first and last: a late event older than those is a new day)."""
    day = ts // DAY
    first, last = state.first_purchase_ts, state.last_purchase_ts
    if (first is not None and first // DAY == day) or (last is not None and last // DAY == day):
        return False
    return all(t // DAY != day for t in state.recent_purchase_ts)


def apply_purchase(state: CustomerState, p: Purchase, ts: float, policy: Policy) -> None:
    h = policy.history
    state.purchases += 1
    state.spend += float(p.amount)
    if state.first_purchase_ts is not None and _new_purchase_day(state, ts):
        state.repeat_days += 1
    if state.first_purchase_ts is None or ts < state.first_purchase_ts:
        state.first_purchase_ts = ts
    last = state.last_purchase_ts
    if last is None or ts >= last:
        if last is not None and ts - last >= DAY:
            state.gaps.append(round((ts - last) / DAY, 3))
            del state.gaps[: -h.gaps_kept]
        state.last_purchase_ts = ts
    times, ids = state.recent_purchase_ts, state.recent_purchase_ids
    i = bisect_right(times, ts)  # after equal times: arrival order
    times.insert(i, ts)
    ids.insert(i, p.event_id)
    _keep_last(RECENT_PURCHASES_KEPT, times, ids)
    idx = int(ts // (h.bucket_days * DAY))
    amount = float(p.amount)
    buckets, counts, spends = state.bucket_idx, state.bucket_count, state.bucket_spend
    i = bisect_left(buckets, idx)
    if i < len(buckets) and buckets[i] == idx:
        counts[i] += 1
        spends[i] = round(spends[i] + amount, 2)
    else:
        buckets.insert(i, idx)
        counts.insert(i, 1)
        spends.insert(i, round(amount, 2))
    oldest_kept = buckets[-1] - h.buckets_kept + 1
    if buckets[0] < oldest_kept:
        cut = bisect_left(buckets, oldest_kept)
        for column in (buckets, counts, spends):
            del column[:cut]


def _add_notes(state: CustomerState, record: Complaint | Contact, ts: float,
               policy: Policy) -> None:
    found = concerns(record, policy.text)
    if not found:
        return
    for kind, words, amount in found:
        _insert(state.notes, Note(ts, record.event_id, kind, words, amount))
    horizon = max(ts, state.last_ts) - policy.history.complaint_days * DAY
    state.notes = [n for n in state.notes if n.ts >= horizon][-NOTES_KEPT:]


def apply_complaint(state: CustomerState, c: Complaint, ts: float, policy: Policy) -> None:
    h = policy.history
    _insert(state.complaints, KeptComplaint(ts, c.event_id, c.category, int(c.severity)))
    horizon = max(ts, state.last_ts) - h.complaint_days * DAY
    state.complaints = [x for x in state.complaints if x.ts >= horizon][-h.complaints_kept:]
    _add_notes(state, c, ts, policy)


def apply_contact(state: CustomerState, c: Contact, ts: float, policy: Policy) -> None:
    stats = state.channels.setdefault(c.channel, [0, 0, 0])
    if c.direction == "outbound":
        stats[0] += 1
        responded = c.outcome in RESPONSES
        if responded:
            stats[1] += 1
        state.last_outbound_ts = max(state.last_outbound_ts or ts, ts)
        if c.outcome == "unsubscribed":
            state.unsubscribed_ts = ts
        if c.outcome is not None:  # an outreach without a known outcome says nothing
            day = int(ts // DAY)
            days = state.outreach_day
            i, seen = _day_index(days, day)
            if seen:
                state.outreach_responded[i] |= responded
                state.outreach_event[i] = c.event_id
            else:
                days.insert(i, day)
                state.outreach_responded.insert(i, responded)
                # Interned: a handful of channel names, not one string per day.
                state.outreach_channel.insert(i, sys.intern(c.channel))
                state.outreach_event.insert(i, c.event_id)
                _keep_last(OUTREACH_KEPT, days, state.outreach_responded,
                           state.outreach_channel, state.outreach_event)
    else:
        stats[2] += 1
        state.last_inbound_ts = max(state.last_inbound_ts or ts, ts)
        # The customer reaching out is a response to any outreach that day.
        i, seen = _day_index(state.outreach_day, int(ts // DAY))
        if seen:
            state.outreach_responded[i] = 1
    _add_notes(state, c, ts, policy)


def _day_index(days: array[int], day: int) -> tuple[int, bool]:
    """Where ``day`` is or goes among the outreach days, and whether it is there."""
    i = bisect_left(days, day)
    return i, i < len(days) and days[i] == day


def apply_feedback(state: CustomerState, outcome: str, ts: float, policy: Policy) -> None:
    """What the call centre or marketing system reports back about an alert.

    contacted: quiet for a while, the episode stays open; retained or
    false_alarm: the episode ends, quiet for longer; churned: the episode
    ends and the customer is not alerted on until they buy again;
    do_not_contact: no alerts at all.
    """
    a, fb = state.alerting, policy.feedback
    a.feedback[outcome] = a.feedback.get(outcome, 0) + 1
    if outcome == "contacted":
        a.quiet_until = max(a.quiet_until or ts, ts + fb.contacted_quiet_days * DAY)
        return
    a.open, a.codes, a.risk, a.severity = False, [], 0.0, ""
    if outcome in ("retained", "false_alarm"):
        a.quiet_until = max(a.quiet_until or ts, ts + fb.resolved_quiet_days * DAY)
    elif outcome == "churned":
        a.lost = True
    elif outcome == "do_not_contact":
        a.do_not_contact = True


def apply_event(
    state: CustomerState,
    record: Purchase | Contact | Complaint | Feedback,
    ts: float,
    *,
    topic: str,
    partition: int,
    offset: int,
    policy: Policy,
) -> None:
    """Fold one validated event into the state (in place)."""
    _touch(state, topic, partition, offset, ts)
    ids = state.event_ids
    ids.append(_event_key(record))
    if len(ids) > policy.history.event_ids_kept:
        del ids[: -policy.history.event_ids_kept]
    if isinstance(record, Purchase):
        apply_purchase(state, record, ts, policy)
        state.alerting.lost = False  # a customer reported lost is back
    elif isinstance(record, Complaint):
        apply_complaint(state, record, ts, policy)
    elif isinstance(record, Contact):
        apply_contact(state, record, ts, policy)
    else:
        apply_feedback(state, record.outcome, ts, policy)
