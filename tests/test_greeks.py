"""BSM greeks against finite differences of the price, parity, implied vol and year fractions."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.options.greeks import (
    MIN_T_YEARS,
    MINUTES_PER_YEAR,
    bsm_delta,
    bsm_gamma,
    bsm_price,
    bsm_vanna,
    expiry_datetime,
    implied_vol,
    year_fraction,
)
from core.types import NY

R = 0.04


def _grid() -> tuple[np.ndarray, ...]:
    rows = list(itertools.product([80.0, 95.0, 100.0, 108.0, 125.0],  # S
                                  [100.0],  # K
                                  [0.02, 0.25, 1.0, 2.5],  # T
                                  [0.08, 0.2, 0.45, 1.1],  # sigma
                                  [0.0, 0.03]))  # q
    S, K, T, sigma, q = (np.array(c) for c in zip(*rows, strict=True))
    return S, K, T, sigma, q


@pytest.mark.parametrize("is_call", [True, False])
def test_delta_and_gamma_match_central_differences_of_price(is_call: bool) -> None:
    S, K, T, sigma, q = _grid()
    def price(ds: np.ndarray) -> np.ndarray:
        return bsm_price(S + ds, K, T, R, q, sigma, is_call)

    # Steps balance truncation (short-dated options curve sharply) against rounding.
    h = S * 1e-5
    fd_delta = (price(h) - price(-h)) / (2 * h)
    np.testing.assert_allclose(bsm_delta(S, K, T, R, q, sigma, is_call), fd_delta, rtol=1e-6, atol=1e-9)
    h = S * 2e-4
    fd_gamma = (price(h) - 2 * price(0 * h) + price(-h)) / (h * h)
    np.testing.assert_allclose(bsm_gamma(S, K, T, R, q, sigma), fd_gamma, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("is_call", [True, False])
def test_vanna_matches_differences_of_delta_and_of_price(is_call: bool) -> None:
    S, K, T, sigma, q = _grid()
    e = 1e-5
    fd_from_delta = (bsm_delta(S, K, T, R, q, sigma + e, is_call)
                     - bsm_delta(S, K, T, R, q, sigma - e, is_call)) / (2 * e)
    vanna = bsm_vanna(S, K, T, R, q, sigma)
    np.testing.assert_allclose(vanna, fd_from_delta, rtol=1e-5, atol=1e-7)

    # Mixed second difference of the price itself, so the check does not lean on bsm_delta.
    h, e2 = S * 1e-4, 1e-4

    def p(ds: np.ndarray | float, dv: float) -> np.ndarray:
        return bsm_price(S + ds, K, T, R, q, sigma + dv, is_call)

    fd_mixed = (p(h, e2) - p(h, -e2) - p(-h, e2) + p(-h, -e2)) / (4 * h * e2)
    np.testing.assert_allclose(vanna, fd_mixed, rtol=1e-4, atol=1e-6)


def test_put_call_parity_of_prices_and_deltas() -> None:
    S, K, T, sigma, q = _grid()
    call = bsm_price(S, K, T, R, q, sigma, True)
    put = bsm_price(S, K, T, R, q, sigma, False)
    np.testing.assert_allclose(call - put, S * np.exp(-q * T) - K * np.exp(-R * T), rtol=1e-10, atol=1e-10)
    dc = bsm_delta(S, K, T, R, q, sigma, True)
    dp = bsm_delta(S, K, T, R, q, sigma, False)
    np.testing.assert_allclose(dc - dp, np.exp(-q * T), rtol=1e-12)
    assert np.all((dc >= 0) & (dc <= 1)) and np.all((dp <= 0) & (dp >= -1))


def test_gamma_and_vanna_are_the_same_for_calls_and_puts_numerically() -> None:
    S, K, T, sigma, q = _grid()
    h = S * 1e-3
    fd = {}
    for is_call in (True, False):
        up = bsm_price(S + h, K, T, R, q, sigma, is_call)
        dn = bsm_price(S - h, K, T, R, q, sigma, is_call)
        mid = bsm_price(S, K, T, R, q, sigma, is_call)
        e = 1e-5
        fd[is_call] = ((up - 2 * mid + dn) / (h * h),
                       (bsm_delta(S, K, T, R, q, sigma + e, is_call)
                        - bsm_delta(S, K, T, R, q, sigma - e, is_call)) / (2 * e))
    np.testing.assert_allclose(fd[True][0], fd[False][0], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(fd[True][1], fd[False][1], rtol=1e-5, atol=1e-7)


def test_known_textbook_value() -> None:
    # Hull: S=42, K=40, r=10 %, sigma=20 %, T=0.5 -> call 4.76, put 0.81.
    assert float(bsm_price(42, 40, 0.5, 0.10, 0.0, 0.2, True)) == pytest.approx(4.7594, abs=1e-4)
    assert float(bsm_price(42, 40, 0.5, 0.10, 0.0, 0.2, False)) == pytest.approx(0.8086, abs=1e-4)


def test_functions_broadcast_and_return_arrays() -> None:
    K = np.array([90.0, 100.0, 110.0])
    is_call = np.array([True, False, True])
    for out in (bsm_price(100.0, K, 0.5, R, 0.0, 0.2, is_call), bsm_delta(100.0, K, 0.5, R, 0.0, 0.2, is_call),
                bsm_gamma(100.0, K, 0.5, R, 0.0, 0.2), bsm_vanna(100.0, K, 0.5, R, 0.0, 0.2)):
        assert isinstance(out, np.ndarray) and out.shape == (3,)
    grid = bsm_gamma(np.array([[95.0], [105.0]]), K[None, :], 0.5, R, 0.0, 0.2)
    assert grid.shape == (2, 3)


@pytest.mark.parametrize("is_call", [True, False])
def test_implied_vol_round_trips_over_grid(is_call: bool) -> None:
    S, K, T, sigma, q = _grid()
    price = bsm_price(S, K, T, R, q, sigma, is_call)
    iv = implied_vol(price, S, K, T, R, q, is_call)
    # Where vega underflows (price ~ 1e-80) any vol reprices the option; compare only where it is
    # identifiable, and require at least most of the grid to be.
    d1 = (np.log(S / K) + (R - q + 0.5 * sigma**2) * T) / (sigma * np.sqrt(T))
    vega = S * np.exp(-q * T) * np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi) * np.sqrt(T)
    identifiable = vega > 1e-6
    assert identifiable.mean() > 0.9
    np.testing.assert_allclose(iv[identifiable], sigma[identifiable], rtol=1e-6)
    assert np.all(np.isfinite(iv))


def test_implied_vol_is_nan_for_impossible_prices() -> None:
    S, K, T, q = 100.0, 90.0, 0.5, 0.01
    intrinsic_call = S * math.exp(-q * T) - K * math.exp(-R * T)
    prices = np.array([intrinsic_call - 0.5, S * math.exp(-q * T) + 0.01, -1.0, np.nan])
    assert np.all(np.isnan(implied_vol(prices, S, K, T, R, q, True)))
    # A put worth more than the discounted strike, or less than zero.
    put_prices = np.array([K * math.exp(-R * T) + 0.01, -0.01])
    assert np.all(np.isnan(implied_vol(put_prices, S, K, T, R, q, False)))
    # A vol beyond the upper bracket has no solution either.
    too_rich = bsm_price(S, K, T, R, q, 6.0, True)
    assert np.isnan(implied_vol(too_rich, S, K, T, R, q, True, hi=5.0))
    # Mixed: valid entries still solve.
    mixed = implied_vol(np.array([bsm_price(S, K, T, R, q, 0.3, True), -1.0]), S, K, T, R, q, True)
    assert mixed[0] == pytest.approx(0.3, rel=1e-7) and np.isnan(mixed[1])


@settings(max_examples=200, deadline=None)
@given(moneyness=st.floats(0.7, 1.3), T=st.floats(1 / 365, 2.0), sigma=st.floats(0.03, 3.0),
       q=st.floats(0.0, 0.05), is_call=st.booleans())
def test_implied_vol_round_trip_property(moneyness: float, T: float, sigma: float, q: float,
                                         is_call: bool) -> None:
    S, K = 100.0 * moneyness, 100.0
    price = float(bsm_price(S, K, T, R, q, sigma, is_call))
    iv = float(implied_vol(price, S, K, T, R, q, is_call))
    assert math.isfinite(iv)
    # The solved vol reprices the option; where vega is meaningful it is the vol itself.
    assert float(bsm_price(S, K, T, R, q, iv, is_call)) == pytest.approx(price, abs=1e-8 * S)
    d1 = (math.log(S / K) + (R - q + 0.5 * sigma**2) * T) / (sigma * math.sqrt(T))
    vega = S * math.exp(-q * T) * math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) * math.sqrt(T)
    if vega > 1e-2:
        assert iv == pytest.approx(sigma, abs=1e-6)


def _minutes(years: float) -> float:
    return years * MINUTES_PER_YEAR


def test_year_fraction_to_the_minute_on_a_regular_day() -> None:
    now = datetime(2025, 3, 10, 10, 30, tzinfo=NY)  # Monday, after the DST switch
    assert _minutes(year_fraction(now, date(2025, 3, 14))) == pytest.approx(4 * 1440 + 330)
    # Seconds are truncated to the whole minute.
    assert _minutes(year_fraction(now.replace(second=59), date(2025, 3, 14))) == pytest.approx(4 * 1440 + 329)
    # The same instant given in UTC gives the same answer.
    assert year_fraction(now.astimezone(UTC), date(2025, 3, 14)) == year_fraction(now, date(2025, 3, 14))
    # Naive datetimes are New York wall time.
    assert year_fraction(now.replace(tzinfo=None), date(2025, 3, 14)) == year_fraction(now, date(2025, 3, 14))


def test_year_fraction_uses_early_close() -> None:
    # 2025-11-28, the day after Thanksgiving, closes at 13:00.
    assert expiry_datetime(date(2025, 11, 28)) == datetime(2025, 11, 28, 13, 0, tzinfo=NY)
    now = datetime(2025, 11, 28, 10, 0, tzinfo=NY)
    assert _minutes(year_fraction(now, date(2025, 11, 28))) == pytest.approx(180)
    # A non-session date (weekend) falls back to 16:00.
    assert expiry_datetime(date(2025, 3, 15)) == datetime(2025, 3, 15, 16, 0, tzinfo=NY)


def test_year_fraction_floor_for_late_zero_dte() -> None:
    expiry = date(2025, 3, 10)
    assert _minutes(year_fraction(datetime(2025, 3, 10, 15, 0, tzinfo=NY), expiry)) == pytest.approx(60)
    assert year_fraction(datetime(2025, 3, 10, 15, 55, tzinfo=NY), expiry) == pytest.approx(MIN_T_YEARS)
    assert year_fraction(datetime(2025, 3, 10, 17, 0, tzinfo=NY), expiry) == pytest.approx(MIN_T_YEARS)
    assert _minutes(MIN_T_YEARS) == pytest.approx(15)
