"""The purchase model held to a reference: lifetimes' Pareto/NBD and scipy.

The per-customer functions are pure Python on the worker's hot path; these
tests check them against independent implementations (lifetimes' formulas,
scipy's hyp2f1 and numerical integration of the model's definition) over
inputs a real customer base produces: one-time buyers, brand new customers,
a thousand purchases, long silences, and both orderings of alpha and beta.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import lifetimes
import numpy as np
import pandas as pd
import pytest
from lifetimes import ParetoNBDFitter
from scipy import integrate, optimize, special

from stream_app.core import model
from stream_app.core.model import Cells, ParetoNBD

PARAMS = [
    ParetoNBD(0.60, 81.1, 0.52, 61.8),  # CDNOW in days: alpha > beta
    model.DEFAULT,  # alpha << beta
    ParetoNBD(0.8, 20.0, 0.3, 200.0),  # alpha << beta
    ParetoNBD(2.0, 300.0, 0.3, 10.0),  # alpha >> beta
    ParetoNBD(0.25, 50.0, 1.0001, 50.0),  # alpha == beta, s near 1
    ParetoNBD(1.0, 5.0, 2.5, 400.0),
]
#: (x, t_x, T): one-time buyers new and old, steady buyers, long silences, huge x.
CUSTOMERS = [
    (0, 0.0, 0.0), (0, 0.0, 1.0), (0, 0.0, 30.0), (0, 0.0, 700.0),
    (1, 3.0, 10.0), (1, 200.0, 201.0), (2, 10.0, 700.0), (5, 120.0, 130.0),
    (12, 300.0, 400.0), (40, 360.0, 365.0), (60, 100.0, 1500.0), (1000, 720.0, 730.0),
]
HORIZONS = [1.0, 90.0, 273.0]


def _reference(p: ParetoNBD) -> ParetoNBDFitter:
    fitter = ParetoNBDFitter()
    fitter.params_ = pd.Series({"r": p.r, "alpha": p.alpha, "s": p.s, "beta": p.beta})
    return fitter


def _no_purchase_by_integration(p: ParetoNBD, x: int, t_x: float, T: float, h: float) -> float:
    """The definition: dead by T, or alive and not buying before dying or before T+h.

    Given alive at T the rates are Gamma(r+x, alpha+T) x Gamma(s, beta+T); a
    living customer buys nothing in h if its clock does not tick before it
    dies or before h ends.  P(alive) comes from lifetimes.
    """
    alive = float(_reference(p).conditional_probability_alive(x, t_x, T))
    a, b, rx = p.alpha + T, p.beta + T, p.r + x
    survive = (a / (a + h)) ** rx * (b / (b + h)) ** p.s
    died_first, _ = integrate.quad(
        lambda u: (a / (a + u)) ** rx * p.s * b**p.s / (b + u) ** (p.s + 1.0),
        0.0, h, epsabs=0.0, epsrel=1e-11, limit=200)
    return (1.0 - alive) + alive * (survive + died_first)


@pytest.mark.parametrize("p", PARAMS, ids=str)
def test_p_alive_and_expected_purchases_match_lifetimes(p: ParetoNBD) -> None:
    ref = _reference(p)
    for x, t_x, T in CUSTOMERS:
        want = float(ref.conditional_probability_alive(x, t_x, T))
        assert model.p_alive(p, x, t_x, T) == pytest.approx(want, abs=1e-7, rel=1e-6), (x, t_x, T)
        for h in HORIZONS:
            want_e = float(ref.conditional_expected_number_of_purchases_up_to_time(h, x, t_x, T))
            got_e = model.expected_purchases(p, x, t_x, T, h)
            assert got_e == pytest.approx(want_e, abs=1e-8, rel=1e-6), (x, t_x, T, h)


def test_expected_purchases_is_continuous_at_s_equal_one() -> None:
    """The closed form divides by s - 1 (lifetimes returns nan there); its limit is used."""
    for x, t_x, T in CUSTOMERS:
        at_one = model.expected_purchases(ParetoNBD(0.25, 50.0, 1.0, 50.0), x, t_x, T, 90.0)
        near = model.expected_purchases(ParetoNBD(0.25, 50.0, 1.0 + 1e-7, 50.0), x, t_x, T, 90.0)
        assert at_one == pytest.approx(near, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("p", PARAMS, ids=str)
def test_p_no_purchase_matches_the_definition_and_lifetimes(p: ParetoNBD) -> None:
    ref = _reference(p)
    for x, t_x, T in CUSTOMERS:
        for h in HORIZONS:
            got = model.p_no_purchase(p, x, t_x, T, h)
            want = _no_purchase_by_integration(p, x, t_x, T, h)
            assert got == pytest.approx(want, abs=1e-7), (x, t_x, T, h)
            if x <= 60:  # lifetimes' own sum overflows its floats beyond that
                lt = float(ref.conditional_probability_of_n_purchases_up_to_time(0, h, x, t_x, T))
                assert got == pytest.approx(lt, abs=1e-6), (x, t_x, T, h)
    assert model.p_no_purchase(p, 3, 10.0, 50.0, 0.0) == 1.0


@pytest.mark.parametrize("p", PARAMS, ids=str)
def test_log_likelihood_matches_lifetimes(p: ParetoNBD) -> None:
    params = (p.r, p.alpha, p.s, p.beta)
    for x, t_x, T in CUSTOMERS:
        want = float(ParetoNBDFitter._conditional_log_likelihood(params, x, t_x, T))
        assert model.log_likelihood(p, x, t_x, T) == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_p_no_purchase_is_the_likelihood_of_the_extended_silence() -> None:
    """Buying nothing until T+h is the same history observed longer: a ratio of likelihoods."""
    p = PARAMS[0]
    for x, t_x, T in CUSTOMERS:
        ratio = math.exp(model.log_likelihood(p, x, t_x, T + 90.0)
                         - model.log_likelihood(p, x, t_x, T))
        assert model.p_no_purchase(p, x, t_x, T, 90.0) == pytest.approx(ratio, rel=1e-9)


def test_hypergeometric_against_scipy_near_one_and_both_methods() -> None:
    for b, c in [(0.55, 2.1), (1.5, 2.0), (30.0, 31.5), (1.5, 30.0), (400.5, 402.0)]:
        for z in [1e-6, 0.1, 0.44, 0.5, 0.84, 0.95, 0.99]:
            want = float(special.hyp2f1(1.0, b, c, z))
            assert model._hyp(b, c, z) == pytest.approx(want, rel=1e-8), (b, c, z)
            assert model._series(b, c, z) == pytest.approx(want, rel=1e-8), (b, c, z)
            assert model._fraction(b, c, z) == pytest.approx(want, rel=1e-8), (b, c, z)


def test_probabilities_move_the_way_a_person_expects() -> None:
    p = PARAMS[0]
    # The longer the silence, the likelier no purchase; more purchases, less likely.
    silences = [model.p_no_purchase(p, 5, 100.0, 100.0 + d, 90.0) for d in (0, 30, 120, 400)]
    assert silences == sorted(silences) and silences[0] < 0.5 < silences[-1]
    by_x = [model.p_no_purchase(p, x, 100.0, 110.0, 90.0) for x in (1, 5, 20)]
    assert by_x == sorted(by_x, reverse=True)
    # A customer who bought most days: yesterday's purchase means still here,
    # ten days of silence mean gone.
    assert model.p_no_purchase(p, 700, 729.0, 730.0, 90.0) < 0.2
    assert model.p_no_purchase(p, 700, 720.0, 730.0, 90.0) > 0.5
    assert model.p_alive(p, 0, 0.0, 0.0) == 1.0


def test_the_risks_probability_ranks_as_expected_purchases_and_stays_near_the_exact_one() -> None:
    p = PARAMS[0]
    histories = [(x, t_x, T) for x in (0, 1, 3, 12) for t_x in (0.0, 40.0, 200.0)
                 for T in (200.0, 260.0, 500.0) if t_x <= T and (x > 0 or t_x == 0.0)]
    risk = [model.no_purchase_probability(p, *h, 90.0) for h in histories]
    expected = [model.expected_purchases(p, *h, 90.0) for h in histories]
    # Monotone in the expected purchases: the same order, reversed, no ties added.
    by_risk = sorted(range(len(histories)), key=lambda i: (risk[i], -expected[i]))
    by_expected = sorted(range(len(histories)), key=lambda i: (-expected[i], risk[i]))
    assert by_risk == by_expected
    assert len(set(risk)) == len(set(expected))
    # A geometric count's zero: 1 / (1 + E), so between the exact zero
    # probability of a Poisson count with that mean and 1.
    for h, r, e in zip(histories, risk, expected, strict=True):
        assert r == pytest.approx(1.0 / (1.0 + e), rel=1e-12)
        assert math.exp(-e) <= r <= 1.0
        # Not far from the model's own zero probability where either is confident.
        exact = model.p_no_purchase(p, *h, 90.0)
        assert abs(r - exact) < 0.25, h
    assert model.no_purchase_probability(p, 3, 40.0, 260.0, 0.0) == 1.0


def test_silence_probability_is_the_chance_a_living_customer_stays_quiet_that_long() -> None:
    p = PARAMS[0]
    x, t_x, T = 6, 150.0, 210.0
    # lambda ~ Gamma(r+x, alpha+t_x); P(no tick in T-t_x) = E[exp(-lambda (T-t_x))].
    shape, rate, d = p.r + x, p.alpha + t_x, T - t_x
    want, _ = integrate.quad(lambda lam: math.exp(-lam * d) * rate**shape * lam ** (shape - 1)
                             * math.exp(-rate * lam) / math.gamma(shape), 0, np.inf)
    assert model.silence_probability(p, x, t_x, T) == pytest.approx(want, rel=1e-8)
    assert model.silence_probability(p, x, t_x, t_x) == 1.0


def test_bad_inputs_are_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match="alpha"):
        ParetoNBD(0.5, 0.0, 0.5, 10.0)
    with pytest.raises(ValueError, match="t_x"):
        model.p_no_purchase(PARAMS[0], 1, 20.0, 10.0, 90.0)
    with pytest.raises(ValueError, match="width"):
        Cells(0.0)


def test_cells_count_move_and_round_trip() -> None:
    cells = Cells()
    cells.add(0, 10_000.2, 10_000.7)
    cells.add(0, 10_000.0, 10_000.0)  # the same day: the same cell
    cells.add(2, 10_001.0, 10_050.0)
    assert len(cells) == 3 and cells.n_cells == 2
    # A purchase moves a customer from one cell to the next.
    cells.remove(2, 10_001.0, 10_050.0)
    cells.add(3, 10_001.0, 10_060.0)
    assert sorted(cells) == [(0, 10_000.0, 10_000.0, 2), (3, 10_001.0, 10_060.0, 1)]
    with pytest.raises(KeyError):
        cells.remove(2, 10_001.0, 10_050.0)
    again = Cells.from_bytes(cells.to_bytes())
    assert again == cells and len(again) == 3
    # Equal histograms, built in another order, give equal bytes.
    other = Cells()
    other.add(3, 10_001.0, 10_060.0)
    other.add(0, 10_000.0, 10_000.0)
    other.add(0, 10_000.0, 10_000.0)
    assert other.to_bytes() == cells.to_bytes()
    with pytest.raises(ValueError):
        Cells.from_bytes(b'{"w": 1.0, "c": [1, 2, 3]}')


def test_cells_keep_the_typical_basket_as_a_geometric_mean_of_whole_buckets() -> None:
    assert model.basket_bucket(0.0, 3) is None and model.basket_bucket(30.0, 0) is None
    assert model.basket_bucket(math.e * 4, 4) == round(1 / model.BASKET_STEP)
    cells = Cells()
    assert cells.typical_basket() is None
    cells.add(0, 10.0, 10.0)  # a basket not known counts in the cells only
    ten, forty = model.basket_bucket(10.0, 1), model.basket_bucket(80.0, 2)
    cells.add(0, 11.0, 11.0, ten)
    cells.add(1, 12.0, 20.0, forty)
    typical = cells.typical_basket()
    assert typical == pytest.approx(20.0, rel=model.BASKET_STEP)  # sqrt(10 * 40)
    # A purchase moves the customer's basket with its cell.
    cells.remove(1, 12.0, 20.0, forty)
    cells.add(2, 12.0, 25.0, model.basket_bucket(130.0, 3))
    assert cells.typical_basket() == pytest.approx(math.sqrt(10 * 130 / 3),
                                                   rel=model.BASKET_STEP)
    with pytest.raises(KeyError):
        cells.remove(0, 11.0, 11.0, forty)
    again = Cells.from_bytes(cells.to_bytes())
    assert again == cells and again.typical_basket() == cells.typical_basket()
    no_baskets = Cells()
    for x, first, last, n in cells:
        for _ in range(n):
            no_baskets.add(x, first, last)
    assert no_baskets != cells  # the baskets are part of the histogram
    with pytest.raises(ValueError):
        Cells.from_bytes(b'{"w": 1.0, "c": [], "b": [5]}')


def _cdnow_sample() -> tuple[Cells, float, np.ndarray, np.ndarray, np.ndarray]:
    path = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt"
    days: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        cid, _, date, *_ = line.split()
        day = dt.date(int(date[:4]), int(date[4:6]), int(date[6:])).toordinal()
        days.setdefault(cid, []).append(day)
    now = float(dt.date(1997, 9, 30).toordinal())
    cells = Cells()
    xs, txs, Ts = [], [], []
    for ds in days.values():
        cal = sorted({d for d in ds if d <= now})
        if cal:
            cells.add(len(cal) - 1, cal[0], cal[-1])
            xs.append(len(cal) - 1)
            txs.append(cal[-1] - cal[0])
            Ts.append(now - cal[0])
    return cells, now, np.array(xs, float), np.array(txs, float), np.array(Ts, float)


def test_fit_finds_lifetimes_maximum_and_restarts_to_the_same_numbers() -> None:
    cells, day, x, t_x, T = _cdnow_sample()
    now = day + 0.5  # ages in whole days: each purchase day is placed at its middle
    ours = model.fit(cells, now, prior_weight=0.0)
    ref = ParetoNBDFitter().fit(x, t_x, T)

    def ref_ll(params: Any) -> float:
        return float(ParetoNBDFitter._conditional_log_likelihood(params, x, t_x, T).mean())

    # Where lifetimes' optimiser stops moves with the scipy and pandas it runs
    # on; the maximum of its likelihood does not.  So its answer is polished
    # to that maximum (its own likelihood function, tight tolerances) first.
    polished = optimize.minimize(
        lambda logs: -ref_ll(np.exp(logs)),
        np.log([float(ref.params_[k]) for k in ("r", "alpha", "s", "beta")]),
        method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 20000})
    theirs = ParetoNBD(*(float(v) for v in np.exp(polished.x)))

    def mean_ll(p: ParetoNBD) -> float:
        return ref_ll((p.r, p.alpha, p.s, p.beta))

    # The same maximum: ours at least as likely, and the parameters agree.
    assert mean_ll(ours) >= mean_ll(theirs) - 1e-7
    for name in ("r", "alpha", "s", "beta"):
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name), rel=2e-3), name
    # A restart (the histogram from its bytes, the fit as the start) gives the same fit.
    restarted = model.fit(Cells.from_bytes(cells.to_bytes()), now, start=ours, prior_weight=0.0)
    for name in ("r", "alpha", "s", "beta"):
        assert getattr(restarted, name) == pytest.approx(getattr(ours, name), rel=1e-4), name
    assert model.fit(cells, now, prior_weight=0.0) == ours  # deterministic
    # The default weak prior moves a fit on 2,357 customers by little.
    regularised = model.fit(cells, now, start=ours)
    for name in ("r", "alpha", "s", "beta"):
        assert getattr(regularised, name) == pytest.approx(getattr(ours, name), rel=0.05), name
    with pytest.raises(ValueError, match="no customers"):
        model.fit(Cells(), now)


def test_fit_stays_finite_and_near_the_defaults_on_degenerate_partitions() -> None:
    """Only one-time buyers: the plain likelihood keeps rising towards r -> 0."""
    lonely = Cells()
    for day in range(100):
        lonely.add(0, 10_000.0 + day, 10_000.0 + day)
        lonely.add(0, 10_000.0 + day, 10_000.0 + day)
    one = Cells()
    one.add(3, 10_000.0, 10_050.0)
    for cells in (lonely, one):
        p = model.fit(cells, 10_200.0)
        for name in ("r", "alpha", "s", "beta"):
            ratio = getattr(p, name) / getattr(model.DEFAULT, name)
            assert 1e-3 < ratio < 1e3, (name, p)
        assert 0.0 < model.p_no_purchase(p, 0, 0.0, 30.0, 90.0) < 1.0


def test_fit_is_the_maximum_of_the_per_customer_likelihood_where_beta_is_far_above_alpha(
        ) -> None:
    # Customers much alike who hardly ever leave (beta >> alpha, as a
    # population of steady buyers fits): the fit's hypergeometric arguments
    # are near 1, where it sums a continued fraction instead of the series.
    # Its maximum must be the maximum of the per-event log_likelihood, which
    # test_the_tail_integral_matches_quadrature holds to the integral.
    rng = np.random.default_rng(5)
    truth = ParetoNBD(2.0, 28.0, 10.0, 3000.0)
    cells = Cells()
    data = []
    for _ in range(400):
        lam = rng.gamma(truth.r, 1 / truth.alpha)
        death = rng.exponential(1 / rng.gamma(truth.s, 1 / truth.beta))
        T = float(rng.integers(200, 400))
        t, days = 0.0, []
        while True:
            t += rng.exponential(1 / lam)
            if t > min(T, death):
                break
            days.append(math.floor(t))
        days = sorted(set(d for d in days if d > 0))
        x, t_x = len(days), float(days[-1] if days else 0)
        first = 1000.0 - T
        cells.add(x, first, first + t_x)
        data.append((x, t_x, T))
    got = model.fit(cells, 1000.5, prior_weight=0.0)
    assert got.beta > 20 * got.alpha

    def total(p: ParetoNBD) -> float:
        return sum(model.log_likelihood(p, x, t_x, T) for x, t_x, T in data)

    top = total(got)
    for name in ("r", "alpha", "s", "beta"):
        for factor in (0.97, 1.03):
            moved = ParetoNBD(**{**got.to_dict(), name: getattr(got, name) * factor})
            assert total(moved) < top, (name, factor)


def test_fit_from_a_far_warm_start_reaches_the_same_maximum() -> None:
    """A warm start far from the top (the population moved a lot since the
    last fit, the Hessian there not positive definite) still climbs to it."""
    cells, day, *_ = _cdnow_sample()
    now = day + 0.5
    cold = model.fit(cells, now, prior_weight=0.0)
    for far in (ParetoNBD(13.0, 200.0, 0.1, 700.0), ParetoNBD(2.0, 30.0, 2.0, 5000.0),
                ParetoNBD(0.05, 2.0, 5.0, 10.0)):
        warm = model.fit(cells, now, start=far, prior_weight=0.0)
        for name in ("r", "alpha", "s", "beta"):
            assert getattr(warm, name) == pytest.approx(getattr(cold, name), rel=2e-3), (far, name)
