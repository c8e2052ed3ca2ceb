"""Training targets: what happened in the `horizon_bars` bars after each bar's close.

The window of bar t is bars t+1 .. t+h of t's own session: it never crosses the session close (no
position is held overnight). Near the close the window is cut short at the close and the position is
closed there (the timeout exit is the session's last close); such rows are labelled and trained like any
other, so the last hour is in range. Only a session's last bar, whose window is empty, has no labels.
Labels of t read only close_t, ATR_t and bars after t within t's session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from core.model.model_set import LabelError, LabelParams

LABEL_COLUMNS = [
    "fut_high_ret", "fut_low_ret", "win_long", "win_short", "quality_long", "quality_short",
    "outcome_r_long", "outcome_r_short", "complete",
]


def _windows(values: np.ndarray, h: int, fill: float) -> np.ndarray:
    """Row t holds values[t+1 .. t+h], padded with `fill` past the end."""
    padded = np.concatenate([values[1:], np.full(h, fill)])
    return sliding_window_view(padded, h)


def _first_true(hit: np.ndarray) -> np.ndarray:
    """Index of the first True per row, or a number past the window if none."""
    return np.where(hit.any(axis=1), hit.argmax(axis=1), hit.shape[1] + 1)


def _side(entry: np.ndarray, atr_: np.ndarray, fav_w: np.ndarray, adv_w: np.ndarray, last_close: np.ndarray,
          sign: float, p: LabelParams) -> dict[str, np.ndarray]:
    """Outcomes for one side. fav_w/adv_w are the window's highs/lows (long) or lows/highs (short),
    already with +-inf outside the window so they never win a max/min."""
    target = entry + sign * p.target_atr * atr_
    stop = entry - sign * p.stop_atr * atr_
    first_target = _first_true(sign * (fav_w - target[:, None]) >= 0)
    first_stop = _first_true(sign * (adv_w - stop[:, None]) <= 0)
    # A bar that touches both is a loss: we cannot know the order inside a bar.
    win = first_target < first_stop
    stopped = (first_stop <= first_target) & (first_stop < fav_w.shape[1])
    timeout_r = sign * (last_close - entry) / (p.stop_atr * atr_)
    outcome = np.where(win, p.target_atr / p.stop_atr, np.where(stopped, -1.0, timeout_r))

    excursion = sign * (fav_w - entry[:, None])  # -inf outside the window
    best_at = excursion.argmax(axis=1)
    best = excursion[np.arange(len(entry)), best_at]
    worst_path = np.maximum.accumulate(sign * (entry[:, None] - adv_w), axis=1)
    adverse = np.maximum(worst_path[np.arange(len(entry)), best_at], 0.0)
    quality = (best > 0) & (best >= p.quality_r * adverse) & (best >= p.min_move_atr * atr_)
    return {"win": win.astype(float), "outcome": outcome, "quality": quality.astype(float)}


def build_labels(bars: pd.DataFrame, params: LabelParams, atr: pd.Series) -> pd.DataFrame:
    """One row per bar with LABEL_COLUMNS; NaN where the window is empty or ATR_t is unusable."""
    for col in ("high", "low", "close"):
        if col not in bars.columns:
            raise LabelError(f"bar frame lacks column {col!r}")
    if not atr.index.equals(bars.index):
        raise LabelError("atr must share the bar frame's index")
    h = params.horizon_bars
    n = len(bars)
    if n == 0:
        empty = {c: pd.Series(dtype="float64") for c in LABEL_COLUMNS}
        empty["complete"] = pd.Series(dtype=bool)
        return pd.DataFrame(empty, index=bars.index)

    high = bars["high"].to_numpy(dtype=float)
    low = bars["low"].to_numpy(dtype=float)
    close = bars["close"].to_numpy(dtype=float)
    atr_ = atr.to_numpy(dtype=float)
    session = pd.factorize(pd.Index(bars.index.date))[0]

    in_window = _windows(session.astype(float), h, -1.0) == session[:, None]
    n_in = in_window.sum(axis=1)
    has_bars = n_in > 0
    usable = has_bars & np.isfinite(atr_) & (atr_ > 0) & np.isfinite(close)
    # A window cut short by the close is a real outcome (flat at the close), not a missing one.
    complete = usable

    high_w = np.where(in_window, _windows(high, h, np.nan), -np.inf)
    low_w = np.where(in_window, _windows(low, h, np.nan), np.inf)
    close_w = _windows(close, h, np.nan)
    last_close = close_w[np.arange(n), np.maximum(n_in - 1, 0)]
    safe_atr = np.where(usable, atr_, 1.0)
    safe_close = np.where(usable, close, 1.0)

    long = _side(safe_close, safe_atr, high_w, low_w, last_close, 1.0, params)
    short = _side(safe_close, safe_atr, low_w, high_w, last_close, -1.0, params)

    def masked(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
        return np.where(ok, values, np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        fut_high = high_w.max(axis=1) / close - 1.0
        fut_low = low_w.min(axis=1) / close - 1.0
    out = pd.DataFrame({
        "fut_high_ret": masked(fut_high, has_bars),
        "fut_low_ret": masked(fut_low, has_bars),
        "win_long": masked(long["win"], usable),
        "win_short": masked(short["win"], usable),
        "quality_long": masked(long["quality"], usable),
        "quality_short": masked(short["quality"], usable),
        "outcome_r_long": masked(long["outcome"], usable),
        "outcome_r_short": masked(short["outcome"], usable),
        "complete": complete,
    }, index=bars.index)
    return out
