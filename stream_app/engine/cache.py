"""Customer states in memory: those changed since the last flush, and recent ones.

A state changed since the last flush exists only here until the flush
writes it, so it is never evicted before; the others are kept up to
:data:`CACHE_STATES`, so that an active customer's state is not read back
from the store for every event.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping

from ..core.state import CustomerState

#: Customer states kept in memory between flushes (beyond those changed).
CACHE_STATES = 20000


class StateCache:
    __slots__ = ("customers", "states", "table")

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self.table = table
        #: Customer id -> state, oldest first.
        self.states: dict[str, CustomerState] = {}
        #: Customers in the table and since (for the gauge).
        self.customers = 0

    def load(self, customer_id: str) -> CustomerState | None:
        """The customer's latest state: in memory if changed since the last flush."""
        state = self.states.get(customer_id)
        if state is not None:
            return state
        # One store lookup: Mapping.get() would ask the store twice (contains, get).
        try:
            raw = self.table[customer_id.encode()]
        except KeyError:
            return None
        if raw is None:
            return None
        state = self.states[customer_id] = CustomerState.from_bytes(raw)
        return state

    def trim(self, dirty: Iterable[set[str]]) -> None:
        """Forget the oldest states beyond the bound, except those not written yet."""
        excess = len(self.states) - CACHE_STATES
        if excess <= 0:
            return
        keep = set().union(*dirty)
        for cid in list(self.states)[: excess + CACHE_STATES // 5]:
            if cid not in keep:
                del self.states[cid]

    def clear(self) -> None:
        self.states.clear()
