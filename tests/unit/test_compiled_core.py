"""The compiled kernels give the pure-Python reference's answers, and are built.

FREQUENCY_DROP's yes/no of a drop and its scan for the next one run compiled
where the install could build them (``setup.py``); the Python functions stay
the reference.  These tests compare the two on generated customers and on a
whole synthetic stream, and fail where a C compiler is present but the
kernel is missing (a broken build would otherwise only show as slowness).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sysconfig
from array import array

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.policy import Policy, load_policy
from stream_app.core.settings import Settings
from stream_app.core.signals import frequency_drop
from stream_app.core.state import DAY, CustomerState
from stream_app.engine.processing import Processor
from stream_app.offline.synthetic import generate
from tests.unit.fakes import Outputs


def _compiler() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)


def test_the_kernel_is_built_where_a_compiler_is() -> None:
    if _compiler() is not None:
        assert frequency_drop.Kernel is not None, (
            "a C compiler is on this machine but stream_app/core/signals/_frequency_drop "
            "was not built: reinstall (pip install -e .) and read the build's output")
    else:
        # No compiler, no kernel: the reference runs alone.
        assert frequency_drop.kernel(load_policy(None)) is None


compiled = pytest.mark.skipif(frequency_drop.Kernel is None and _compiler() is None,
                              reason="no C compiler on this machine: nothing is compiled")

BASE = 680  # a bucket index of the 2020s at 30-day buckets

policies = st.builds(
    lambda recent, baseline, purchases, days, ratio, prob, spend, width: dataclasses.replace(
        load_policy(None),
        frequency_drop=dataclasses.replace(
            load_policy(None).frequency_drop, recent_buckets=recent, baseline_buckets=baseline,
            min_baseline_purchases=purchases, min_baseline_days=days, max_ratio=ratio,
            max_probability=prob, min_expected_for_spend=spend),
        history=dataclasses.replace(load_policy(None).history, bucket_days=width)),
    st.integers(1, 4), st.integers(1, 14), st.integers(1, 6), st.integers(0, 200),
    st.sampled_from([0.1, 0.3, 0.5, 0.8]), st.sampled_from([0.01, 0.05, 0.3]),
    st.sampled_from([0.0, 2.0, 5.0]), st.sampled_from([7, 30]))


@st.composite
def customers(draw: st.DrawFn) -> CustomerState:
    idxs = sorted(draw(st.sets(st.integers(BASE - 20, BASE + 4), max_size=16)))
    counts = [draw(st.integers(1, 6)) for _ in idxs]
    # Baskets of one size (a spend drop is judged where the count is usual),
    # and sizes whose float sum depends on the order it is added in.
    basket = draw(st.floats(1, 500))
    spends = [n * basket * draw(st.sampled_from([1.0, 1.0, 0.6, 0.45, 0.3]))
              + draw(st.sampled_from([0.0, 0.1, 1e-9, 333.33])) for n in counts]
    state = CustomerState("c1")
    state.bucket_idx = array("q", idxs)
    state.bucket_count = array("q", counts)
    state.bucket_spend = array("d", spends)
    state.purchases = draw(st.integers(0, sum(counts) + 3))
    if idxs or draw(st.booleans()):
        first = idxs[0] if idxs else BASE
        state.first_purchase_ts = first * 30 * DAY + draw(st.floats(-40 * DAY, 29 * DAY))
    return state


def moments(width: float) -> st.SearchStrategy[float]:
    """Event times: bucket boundaries, a hair either side of them, and in between."""
    at = st.integers(BASE - 25, BASE + 25)
    return st.one_of(
        at.map(lambda b: b * width),
        st.tuples(at, st.sampled_from([-1e-6, 1e-6, -0.5])).map(lambda x: x[0] * width + x[1]),
        st.tuples(at, st.floats(0, 1)).map(lambda x: (x[0] + x[1]) * width))


@compiled
@settings(max_examples=2000, deadline=None)
@given(policy=policies, state=customers(), data=st.data())
def test_a_drop_is_found_where_the_reference_finds_one(
        policy: Policy, state: CustomerState, data: st.DataObject) -> None:
    width = policy.history.bucket_days * DAY
    now = data.draw(moments(width))
    k = frequency_drop.kernel(policy)
    assert k.drops(state, now) == (frequency_drop._judge(state, now, policy) is not None)
    start = int(now // width) + data.draw(st.integers(-2, 3))
    assert k.first_drop(state, start) == frequency_drop._scan(state, start, policy)


@compiled
def test_the_columns_must_agree_in_length_compiled_as_well() -> None:
    state = CustomerState("c1", first_purchase_ts=BASE * 30 * DAY, purchases=5)
    state.bucket_idx, state.bucket_count = array("q", [BASE]), array("q", [5])
    policy = load_policy(None)
    with pytest.raises(ValueError, match="differ in length"):
        frequency_drop._scan(state, BASE + 1, policy)
    with pytest.raises(ValueError, match="differ in length"):
        frequency_drop.kernel(policy).first_drop(state, BASE + 1)


def _stream(customers: int) -> tuple[list[bytes], list[bytes]]:
    """A synthetic stream through one processor: its alerts and its states, as bytes."""
    kinds = Settings().kind_by_topic()
    topic_of = {k: t for t, k in kinds.items()}
    out, table = Outputs(), {}
    pop = generate(customers=customers, days=540, seed=11)

    async def run() -> None:
        proc = Processor(table, load_policy(None), out.send_alert, out.send_dead,
                         kinds=kinds, wall=lambda: 1.9e9)
        offsets: dict[str, int] = {}
        for e in pop.events:
            t = topic_of[e.topic]
            o = offsets[t] = offsets.get(t, -1) + 1
            await proc.handle_many(t, 0, [(o, e.customer_id.encode(), orjson.dumps(e.value),
                                           None, None)])
        await proc.flush(0)

    asyncio.run(run())
    assert not out.dead
    alerts = [orjson.dumps(dataclasses.asdict(a) if dataclasses.is_dataclass(a) else a.asdict())
              for a in out.alerts]
    return alerts, [k + b"=" + v for k, v in sorted(table.items())]


@compiled
def test_a_stream_gives_the_same_alerts_and_states_compiled_and_pure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    compiled_run = _stream(150)
    monkeypatch.setattr(frequency_drop, "Kernel", None)
    pure_run = _stream(150)
    assert any(b"FREQUENCY_DROP" in a for a in compiled_run[0])
    assert compiled_run == pure_run


