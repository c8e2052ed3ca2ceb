"""Small seeded bar generators on the real NYSE session grid, for training tests and the bench.

`random_walk_bars`: a driftless geometric random walk with an independent VIX; nothing is learnable.
`planted_pattern_bars`: the same, except that price drifts against the VIX's 12-bar change, so the
feature `vix_chg_12` carries a real, learnable edge.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from core import calendar
from core.types import NY, normalise_bars


def session_grid(start: date, n_sessions: int, bar_minutes: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Bar start times of `n_sessions` sessions from `start`, and a session number per bar."""
    days = calendar.sessions_between(start, start + timedelta(days=int(n_sessions * 1.6) + 15))[:n_sessions]
    starts: list[pd.Timestamp] = []
    session_no: list[int] = []
    for i, d in enumerate(days):
        open_, _ = calendar.session_bounds(d)
        closes = calendar.bar_closes(d, bar_minutes)
        day_starts = [open_] + closes[:-1]
        starts.extend(day_starts)
        session_no.extend([i] * len(day_starts))
    idx = pd.DatetimeIndex(starts).tz_convert(NY).rename("time")
    return idx, np.asarray(session_no)


def _vix_path(rng: np.random.Generator, n: int) -> np.ndarray:
    # Mean-reverting log-VIX around 16, moving a little every bar.
    x = np.empty(n)
    x[0] = 0.0
    shocks = rng.normal(0.0, 0.01, n)
    for i in range(1, n):
        x[i] = 0.999 * x[i - 1] + shocks[i]
    return 16.0 * np.exp(x)


def _bars_from_returns(rng: np.random.Generator, idx: pd.DatetimeIndex, session_no: np.ndarray,
                       logret: np.ndarray, sigma: float, vix: np.ndarray, start_price: float) -> pd.DataFrame:
    n = len(idx)
    new_session = np.r_[True, session_no[1:] != session_no[:-1]]
    gaps = np.where(new_session, rng.normal(0.0, 3 * sigma, n), 0.0)
    gaps[0] = 0.0
    close = start_price * np.exp(np.cumsum(logret + gaps))
    open_ = close / np.exp(logret)
    wick_up = np.abs(rng.normal(0.0, 0.5 * sigma, n))
    wick_down = np.abs(rng.normal(0.0, 0.5 * sigma, n))
    high = np.maximum(open_, close) * np.exp(wick_up)
    low = np.minimum(open_, close) * np.exp(-wick_down)
    minutes = (idx - idx.normalize()).total_seconds().to_numpy() / 60.0 - 570.0
    u_shape = 1.0 + 2.0 * ((minutes - 195.0) / 195.0) ** 2
    volume = np.round(rng.lognormal(np.log(50_000.0), 0.3, n) * u_shape)
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume, "vix": vix}, index=idx
    )
    return normalise_bars(frame)


def _sigma(bar_minutes: int) -> float:
    return 0.0012 * np.sqrt(bar_minutes / 5.0)


def random_walk_bars(n_sessions: int = 180, bar_minutes: int = 5, seed: int = 0,
                     start: date = date(2024, 1, 2), start_price: float = 450.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx, session_no = session_grid(start, n_sessions, bar_minutes)
    sigma = _sigma(bar_minutes)
    logret = rng.normal(0.0, sigma, len(idx))
    return _bars_from_returns(rng, idx, session_no, logret, sigma, _vix_path(rng, len(idx)), start_price)


def planted_pattern_bars(n_sessions: int = 180, bar_minutes: int = 5, seed: int = 0,
                         start: date = date(2024, 1, 2), start_price: float = 450.0,
                         strength: float = 0.35) -> pd.DataFrame:
    """Each bar drifts by -strength*sigma times the sign of the VIX change over the previous 12 bars."""
    rng = np.random.default_rng(seed)
    idx, session_no = session_grid(start, n_sessions, bar_minutes)
    sigma = _sigma(bar_minutes)
    n = len(idx)
    vix = _vix_path(rng, n)
    vix_move = np.zeros(n)
    vix_move[13:] = vix[12:-1] - vix[:-13]  # change from bar j-13 to bar j-1: known before bar j
    logret = rng.normal(0.0, sigma, n) - strength * sigma * np.sign(vix_move)
    return _bars_from_returns(rng, idx, session_no, logret, sigma, vix, start_price)
