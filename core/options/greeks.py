"""Black–Scholes–Merton prices, greeks and implied volatility, vectorised over numpy arrays.

Every function broadcasts its arguments (scalars or arrays) and returns a float64 array.
Units: S and K in dollars, T in years, r and q continuously compounded per year, sigma as a
decimal per sqrt(year) (0.20 = 20 %).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from core import calendar
from core.types import NY

MINUTES_PER_YEAR = 365.0 * 24.0 * 60.0
# A 0DTE contract late in the day still has a few minutes of optionality; without a floor its
# gamma tends to a spike that would dominate every level.
MIN_T_MINUTES = 15.0
MIN_T_YEARS = MIN_T_MINUTES / MINUTES_PER_YEAR
_REGULAR_CLOSE = time(16, 0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

FloatArray = NDArray[np.float64]


def _pdf(x: FloatArray) -> FloatArray:
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _d1_d2(S: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, q: ArrayLike,
           sigma: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    S, K, T, r, q, sigma = (np.asarray(a, dtype=np.float64) for a in (S, K, T, r, q, sigma))
    vol_sqrt_t = sigma * np.sqrt(T)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / vol_sqrt_t
    return d1, d1 - vol_sqrt_t, vol_sqrt_t


def bsm_price(S: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, q: ArrayLike,
              sigma: ArrayLike, is_call: ArrayLike) -> FloatArray:
    S, K, T, r, q = (np.asarray(a, dtype=np.float64) for a in (S, K, T, r, q))
    fwd_s = S * np.exp(-q * T)
    disc_k = K * np.exp(-r * T)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_moneyness = np.log(fwd_s / disc_k)
    return _price(fwd_s, disc_k, log_moneyness, np.sqrt(T),
                  np.asarray(sigma, dtype=np.float64), np.asarray(is_call, dtype=bool))


def _price(fwd_s: FloatArray, disc_k: FloatArray, log_moneyness: FloatArray, sqrt_t: FloatArray,
           sigma: FloatArray, is_call: np.ndarray) -> FloatArray:
    """Price from precomputed parts (the implied-vol loop reuses them). Calls and puts share one pair
    of normal CDFs: each side uses N(+-d), which keeps deep out-of-the-money values accurate."""
    vol_sqrt_t = sigma * sqrt_t
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = log_moneyness / vol_sqrt_t + 0.5 * vol_sqrt_t
    d2 = d1 - vol_sqrt_t
    side = np.where(is_call, 1.0, -1.0)
    return np.asarray(side * (fwd_s * ndtr(side * d1) - disc_k * ndtr(side * d2)), dtype=np.float64)


def bsm_delta(S: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, q: ArrayLike,
              sigma: ArrayLike, is_call: ArrayLike) -> FloatArray:
    d1, _, _ = _d1_d2(S, K, T, r, q, sigma)
    div = np.exp(-np.asarray(q, dtype=np.float64) * np.asarray(T, dtype=np.float64))
    call = div * ndtr(d1)
    return np.asarray(np.where(np.asarray(is_call, dtype=bool), call, call - div), dtype=np.float64)


def bsm_gamma(S: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, q: ArrayLike,
              sigma: ArrayLike) -> FloatArray:
    """Same for calls and puts."""
    d1, _, vol_sqrt_t = _d1_d2(S, K, T, r, q, sigma)
    div = np.exp(-np.asarray(q, dtype=np.float64) * np.asarray(T, dtype=np.float64))
    return np.asarray(div * _pdf(d1) / (np.asarray(S, dtype=np.float64) * vol_sqrt_t), dtype=np.float64)


def bsm_vanna(S: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, q: ArrayLike,
              sigma: ArrayLike) -> FloatArray:
    """dDelta/dsigma = -e^(-qT) phi(d1) d2 / sigma, per 1.00 of sigma; same for calls and puts."""
    d1, d2, _ = _d1_d2(S, K, T, r, q, sigma)
    div = np.exp(-np.asarray(q, dtype=np.float64) * np.asarray(T, dtype=np.float64))
    return np.asarray(-div * _pdf(d1) * d2 / np.asarray(sigma, dtype=np.float64), dtype=np.float64)


def implied_vol(price: ArrayLike, S: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike,
                q: ArrayLike, is_call: ArrayLike, lo: float = 1e-4, hi: float = 5.0,
                tol: float = 1e-10, max_iter: int = 100) -> FloatArray:
    """Vectorised bisection on [lo, hi]; NaN where the price has no volatility in that range
    (outside the no-arbitrage bounds, or non-finite input)."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (price, S, K, T, r, q)),
                                 np.asarray(is_call, dtype=bool))
    price, S, K, T, r, q = (a.astype(np.float64) for a in arrays[:6])
    is_call = arrays[6]
    with np.errstate(divide="ignore", invalid="ignore"):
        fwd_s = S * np.exp(-q * T)
        disc_k = K * np.exp(-r * T)
        parts = (fwd_s, disc_k, np.log(fwd_s / disc_k), np.sqrt(T))
    lo_v = np.full(price.shape, lo)
    hi_v = np.full(price.shape, hi)
    p_lo = _price(*parts, lo_v, is_call)
    p_hi = _price(*parts, hi_v, is_call)
    # Price is increasing in sigma, so a root exists iff p_lo <= price <= p_hi (with a hair of slack
    # for rounding at either end).
    slack = 1e-12 * np.maximum(1.0, np.abs(price))
    ok = np.isfinite(price) & (price >= p_lo - slack) & (price <= p_hi + slack) & (S > 0) & (K > 0) & (T > 0)
    for _ in range(max_iter):
        mid = 0.5 * (lo_v + hi_v)
        above = _price(*parts, mid, is_call) > price
        hi_v = np.where(above, mid, hi_v)
        lo_v = np.where(above, lo_v, mid)
        if float(np.max(hi_v - lo_v, initial=0.0)) < tol:
            break
    return np.where(ok, 0.5 * (lo_v + hi_v), np.nan)


def expiry_datetime(expiration: date) -> datetime:
    """When an option expiring on `expiration` stops trading: the session close (13:00 on an early
    close day), or 16:00 New York if the date is not a known session."""
    try:
        if calendar.is_session(expiration):
            return calendar.session_bounds(expiration)[1]
    except ValueError:  # DateOutOfBounds: dates outside the calendar's range fall back to 16:00
        pass
    return datetime.combine(expiration, _REGULAR_CLOSE, tzinfo=NY)


def year_fraction(now: datetime, expiration: date) -> float:
    """Years from `now` to the expiry (whole minutes, 365-day year), never below MIN_T_YEARS.
    A naive `now` is taken as New York time."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=NY)
    minutes = math.floor((expiry_datetime(expiration) - now) / timedelta(minutes=1))
    return max(float(minutes), MIN_T_MINUTES) / MINUTES_PER_YEAR
