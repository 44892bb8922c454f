"""The customers' own words: the text of their recent complaints and contacts.

The worker's state keeps what a text meant (the concerns it showed), not the
text; an agent about to call wants to read what the customer wrote.  The
console's follower reads the complaints and contacts topics for it and keeps,
per customer, the latest :data:`PER_CUSTOMER` events that carry text (each cut
to :data:`TEXT_CHARS`), for at most :data:`CUSTOMERS` customers (those heard
from most recently), so its memory has a ceiling however long the topics are.
Events without text are not kept: the worker's report already counts them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

PER_CUSTOMER = 20
TEXT_CHARS = 2000
CUSTOMERS = 200_000

#: The fields a timeline entry keeps, per topic kind.
_KEPT = {"complaints": ("category", "severity", "compensation_requested", "resolved"),
         "contacts": ("direction", "channel", "outcome", "purpose", "tags")}


class Words:
    def __init__(self, per_customer: int = PER_CUSTOMER, customers: int = CUSTOMERS) -> None:
        self.per_customer, self.limit = per_customer, customers
        self.by_customer: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self.seen: set[tuple[str, str]] = set()

    def add(self, kind: str, event: dict[str, Any]) -> bool:
        """Keep a decoded complaint or contact if it has text; False if not kept."""
        text, cid, eid = event.get("text"), event.get("customer_id"), event.get("event_id")
        if not (isinstance(text, str) and text.strip() and isinstance(cid, str)
                and isinstance(eid, str)) or (kind, eid) in self.seen:
            return False
        entry = {"kind": kind, "event_id": eid, "ts": event.get("ts"),
                 "text": text[:TEXT_CHARS],
                 **{k: event[k] for k in _KEPT.get(kind, ()) if event.get(k) is not None}}
        mine = self.by_customer.get(cid)
        if mine is None:
            mine = self.by_customer[cid] = deque(maxlen=self.per_customer)
        else:
            self.by_customer.move_to_end(cid)
        if len(mine) == mine.maxlen:
            self.seen.discard((mine[0]["kind"], mine[0]["event_id"]))
        mine.append(entry)
        self.seen.add((kind, eid))
        while len(self.by_customer) > self.limit:
            _, dropped = self.by_customer.popitem(last=False)
            for e in dropped:
                self.seen.discard((e["kind"], e["event_id"]))
        return True

    def of(self, customer_id: str) -> list[dict[str, Any]]:
        return list(self.by_customer.get(customer_id, ()))
