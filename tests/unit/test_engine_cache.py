"""The state cache: one store read per customer, and trimming that keeps unwritten states."""

from __future__ import annotations

from typing import Any

from stream_app.core.state import new_state
from stream_app.engine import cache as cache_module
from stream_app.engine.cache import StateCache


class CountingTable(dict[bytes, bytes]):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.reads = 0

    def __getitem__(self, key: bytes) -> bytes:
        self.reads += 1
        return super().__getitem__(key)


def test_a_state_is_read_from_the_store_once_then_served_from_memory() -> None:
    table = CountingTable({b"c1": new_state("c1").to_bytes()})
    cache = StateCache(table)
    first = cache.load("c1")
    assert first is not None and first.customer_id == "c1"
    assert cache.load("c1") is first and table.reads == 1
    assert cache.load("nobody") is None and "nobody" not in cache.states


def test_trimming_drops_the_oldest_states_but_never_one_not_written_yet(
        monkeypatch: Any) -> None:
    monkeypatch.setattr(cache_module, "CACHE_STATES", 10)
    cache = StateCache({})
    for n in range(15):
        cache.states[f"c{n}"] = new_state(f"c{n}")
    cache.trim([{"c0"}, {"c3"}])
    # Five over the bound, and a fifth of the bound more: the oldest seven go.
    assert sorted(cache.states, key=lambda c: int(c[1:])) == ["c0", "c3", *(
        f"c{n}" for n in range(7, 15))]
    cache.trim([set()])
    assert len(cache.states) == 10  # within the bound: nothing goes
