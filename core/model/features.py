"""Model inputs from a bar frame. The same function serves training and live prediction.

Every feature of bar t is computed from bars at or before t only (rolling windows, backward shifts and
per-session cumulative sums), so cutting the frame at t leaves the rows up to t unchanged; the tests
check exactly that. Missing history gives NaN, which LightGBM treats as "unknown".

Daily history (`DailyHistory`, the provider's `get_daily` rows) lengthens what the prior-day levels and
the VIX percentile can see: a bar of day d reads daily rows dated strictly before d only, since a day's
own row is complete only after its close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from core import calendar

FEATURE_NAMES: list[str] = [
    "ret_1", "ret_3", "ret_6", "ret_12",
    "rvol_12", "rvol_48",
    "atr_14", "atr_pct",
    "rsi_14",
    "vwap_dist_atr",
    "or_pos",
    "minutes_since_open",
    "gap",
    "prev_high_dist_atr", "prev_low_dist_atr",
    "rel_volume",
    "vix", "vix_chg_1", "vix_chg_12", "vix_chg_prev_close", "vix_pct",
    "minutes_to_close",
    "rv_session", "rv_prev_1", "rv_prev_5", "rv_prev_20",
    "tr_profile", "tr_profile_ahead",
    "rel_volume_sessions",
    "vix_bar_vol",
]
# The features the band regressors see: volatility, time of day, volume and VIX. Direction features
# (returns, RSI, VWAP and opening-range position, prior-day distances) only added noise to the band
# (bench/band_ablation.py).
REGRESSOR_FEATURES: list[str] = [c for c in FEATURE_NAMES if c not in (
    "ret_1", "ret_3", "ret_6", "ret_12", "rsi_14", "vwap_dist_atr", "or_pos",
    "prev_high_dist_atr", "prev_low_dist_atr")]
# The classifiers' inputs: the band's volatility detail (HAR realised vol, range profile) is left out, to
# keep the four classifier fits per set within the training time budget.
CLASSIFIER_INPUTS: list[str] = [c for c in FEATURE_NAMES if c not in (
    "rv_session", "rv_prev_1", "rv_prev_5", "rv_prev_20", "tr_profile", "tr_profile_ahead",
    "rel_volume_sessions", "vix_bar_vol")]
# E[high - low] of a Brownian bar is 2*sqrt(2/pi) ~ 1.6 times its return sd: puts sd-type vol
# estimates on ATR's scale.
RANGE_PER_SD = 1.6
TRADING_DAYS = 252

ATR_BARS = 14
RSI_BARS = 14
OPENING_RANGE_MINUTES = 30
REL_VOLUME_SESSIONS = 20
REL_VOLUME_MIN_SESSIONS = 3
PROFILE_SESSIONS = 20
PROFILE_MIN_SESSIONS = 3
PROFILE_AHEAD_BARS = 12  # the default label horizon (HORIZON_BARS); the window stops at the close
VIX_PCT_SESSIONS = 20
VIX_PCT_DAILY_CLOSES = 252  # a year of daily VIX closes when daily history is given
VIX_PCT_MIN_CLOSES = 20
SESSION_MINUTES = 390


@dataclass(frozen=True)
class DailyHistory:
    """Daily bars as `MarketDataProvider.get_daily` returns them (tz-naive date index; open, high, low,
    close): the symbol's own and VIX's. Either may be None; what it would give then comes from the
    intraday bars, as without any daily history."""
    symbol: pd.DataFrame | None = None
    vix: pd.DataFrame | None = None


class FeatureError(ValueError):
    """The bar frame cannot be turned into features (missing columns, bad timeframe)."""


def _check(bars: pd.DataFrame, bar_minutes: int) -> None:
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in bars.columns]
    if missing:
        raise FeatureError(f"bar frame lacks columns: {', '.join(missing)}")
    if bar_minutes not in (5, 15, 60):
        raise FeatureError(f"bar_minutes must be 5, 15 or 60, not {bar_minutes}")
    if not isinstance(bars.index, pd.DatetimeIndex) or bars.index.tz is None:
        raise FeatureError("bar frame index must be a tz-aware DatetimeIndex")
    if not bars.index.is_monotonic_increasing:
        raise FeatureError("bar frame index must be sorted")


def true_range(bars: pd.DataFrame) -> pd.Series:
    # A session's first bar is measured from its own open: the overnight gap is not intraday
    # volatility (it made ATR, and with it targets and stops, 1.5-1.8x too wide after the open).
    # The gap is a feature of its own.
    days = pd.Index(bars.index.date)
    same_session = np.zeros(len(bars), dtype=bool)
    same_session[1:] = days[1:] == days[:-1]
    prev_close = bars["close"].shift(1).where(same_session)
    hl = bars["high"] - bars["low"]
    hc = (bars["high"] - prev_close).abs()
    lc = (bars["low"] - prev_close).abs()
    return pd.concat([hl, hc, lc], axis=1).max(axis=1)


def atr(bars: pd.DataFrame, n: int = ATR_BARS) -> pd.Series:
    """Average true range over the last n bars (simple mean; NaN until n bars exist)."""
    return true_range(bars).rolling(n, min_periods=n).mean().rename("atr")


def _session_opens(days: np.ndarray, first_bar: pd.Series) -> dict[date, datetime]:
    # The calendar open, so a missing first bar does not shift the clock; a non-session day
    # (odd CSV data) falls back to its first bar.
    out = {}
    for d in days:
        out[d] = calendar.session_bounds(d)[0] if calendar.is_session(d) else first_bar[d].to_pydatetime()
    return out


def _per_day(moments: dict[date, datetime], days: pd.Index, tz: object) -> pd.DatetimeIndex:
    # One conversion per session, not per bar: converting ~14,000 objects cost ~0.3 s.
    return pd.DatetimeIndex([pd.Timestamp(moments[d]) for d in days]).tz_convert(tz)


def _session_closes(days: np.ndarray, first_bar: pd.Series, bar_minutes: int) -> dict[date, datetime]:
    # The calendar close (13:00 on early-close days); an odd non-session day in CSV data closes a
    # regular session length after its first bar.
    out = {}
    for d in days:
        out[d] = (calendar.session_bounds(d)[1] if calendar.is_session(d)
                  else first_bar[d].to_pydatetime() + pd.Timedelta(minutes=SESSION_MINUTES))
    return out


def _rsi(close: pd.Series, n: int) -> pd.Series:
    delta = close.diff()
    up = delta.clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    down = (-delta.clip(upper=0)).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    total = up + down
    # A flat stretch (no moves at all) is neutral, not undefined.
    return (100 * up / total).mask(total == 0, 50.0)


def _slot_grid(values: np.ndarray, day: pd.Index, slot: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sessions x minute-of-session slots (NaN where a session lacks the slot), and each bar's cell."""
    day_pos = pd.factorize(day)[0]
    slots = np.unique(slot.to_numpy())
    slot_pos = np.searchsorted(slots, slot.to_numpy())
    grid = np.full((day_pos.max() + 1 if len(day_pos) else 0, len(slots)), np.nan)
    grid[day_pos, slot_pos] = values
    return grid, day_pos, slot_pos


def _trailing_mean(grid: np.ndarray, sessions: int, min_sessions: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the mean over the same slot in up to `sessions` previous sessions (NaN below
    `min_sessions` of them) and how many there were. Row i reads rows < i only."""
    known = np.isfinite(grid)
    zero = np.zeros((1, grid.shape[1]))
    total = np.vstack([zero, np.cumsum(np.where(known, grid, 0.0), axis=0)])
    count = np.vstack([zero, np.cumsum(known, axis=0)])
    rows = np.arange(grid.shape[0])
    lo = np.maximum(rows - sessions, 0)
    n = count[rows] - count[lo]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n >= min_sessions, (total[rows] - total[lo]) / np.maximum(n, 1), np.nan)
    return mean, n


def _rel_volume(volume: pd.Series, day: pd.Index, slot: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Volume over the mean volume of the same minute-of-session in up to REL_VOLUME_SESSIONS previous
    sessions (at least REL_VOLUME_MIN_SESSIONS), and how many sessions that mean rests on."""
    grid, day_pos, slot_pos = _slot_grid(volume.to_numpy(dtype=float), day, slot)
    past, count = _trailing_mean(grid, REL_VOLUME_SESSIONS, REL_VOLUME_MIN_SESSIONS)
    mean = past[day_pos, slot_pos]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = volume.to_numpy() / mean
    rel[~np.isfinite(rel)] = np.nan
    sessions = count[day_pos, slot_pos].astype(float)
    return pd.Series(rel, index=volume.index), pd.Series(sessions, index=volume.index)


def _range_profile(tr_pct: pd.Series, day: pd.Index, slot: pd.Series,
                   bars_left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The intraday volatility profile from previous sessions only: the mean true range (as a fraction
    of price) at this minute-of-session, and its sum over the next PROFILE_AHEAD_BARS slots, stopping
    at the close: how much range the coming window usually holds at this time of day."""
    grid, day_pos, slot_pos = _slot_grid(tr_pct.to_numpy(dtype=float), day, slot)
    past, _ = _trailing_mean(grid, PROFILE_SESSIONS, PROFILE_MIN_SESSIONS)
    cum = np.cumsum(np.nan_to_num(past, nan=0.0), axis=1)
    here = past[day_pos, slot_pos]
    end = np.minimum(slot_pos + np.minimum(PROFILE_AHEAD_BARS, bars_left), cum.shape[1] - 1)
    ahead = np.where(np.isfinite(here), cum[day_pos, end] - cum[day_pos, slot_pos], np.nan)
    return here, ahead


def _realised_vol(logret: pd.Series, day: pd.Index) -> tuple[pd.Series, pd.DataFrame]:
    """Realised volatility per bar (root mean square of 1-bar log returns within the session): so far
    today, and of whole previous sessions averaged over 1, 5 and 20 sessions (the HAR inputs)."""
    by_day = pd.Series(day, index=logret.index)
    sq = logret.where(by_day.eq(by_day.shift(1))).pow(2)  # the overnight return is the gap, not RV
    n_returns = sq.notna().astype(float).groupby(by_day).cumsum()
    session_rv = np.sqrt(sq.fillna(0.0).groupby(by_day).cumsum() / n_returns.where(n_returns > 0))
    daily = np.sqrt(sq.groupby(by_day).mean())
    prior = daily.shift(1)
    lagged = pd.DataFrame({
        "rv_prev_1": prior,
        "rv_prev_5": prior.rolling(5, min_periods=1).mean(),
        "rv_prev_20": prior.rolling(20, min_periods=1).mean(),
    })
    return session_rv, lagged


def _dates(index: pd.Index) -> pd.DatetimeIndex:
    """Session dates (python dates or daily rows' timestamps) as tz-naive midnight timestamps."""
    out = pd.DatetimeIndex(pd.to_datetime(index))
    return (out.tz_localize(None) if out.tz is not None else out).normalize()


def _prior_sessions(sessions: pd.DataFrame, daily: pd.DataFrame | None) -> pd.DataFrame:
    """Per row of `sessions` (one per intraday session, date-indexed), the same columns of the last
    session strictly before it: its daily row where the daily history has that session, else its
    intraday aggregate. Without daily rows that is the previous intraday session, as it always was.
    Never the session's own daily row: that is complete only after its close."""
    known = sessions.set_axis(_dates(sessions.index))
    if daily is not None and len(daily):
        rows = daily.reindex(columns=sessions.columns).astype("float64")
        rows = rows.set_axis(_dates(rows.index))
        rows = rows[~rows.index.duplicated(keep="last")]
        known = rows.combine_first(known).sort_index()
    before = known.index.searchsorted(_dates(sessions.index), side="left") - 1
    out = np.full((len(sessions), len(sessions.columns)), np.nan)
    out[before >= 0] = known.to_numpy(dtype="float64")[before[before >= 0]]
    return pd.DataFrame(out, index=sessions.index, columns=sessions.columns)


def _vix_pct_daily(vix: np.ndarray, codes: np.ndarray, days: pd.Index, vix_daily: pd.DataFrame) -> np.ndarray:
    """Each bar's VIX as a percentile of the last VIX_PCT_DAILY_CLOSES daily VIX closes dated before its
    session (NaN below VIX_PCT_MIN_CLOSES of them). Ranked as pandas' rolling rank ranks a value in a
    window that holds it, so the daily and the intraday percentile share a scale."""
    closes = vix_daily["close"].astype("float64").set_axis(_dates(vix_daily.index))
    closes = closes[~closes.index.duplicated(keep="last")].sort_index().dropna()
    values = closes.to_numpy()
    ends = closes.index.searchsorted(_dates(days), side="left")
    bounds = np.searchsorted(codes, np.arange(len(days) + 1))  # bars are sorted: a day's bars are contiguous
    out = np.full(len(vix), np.nan)
    for i, end in enumerate(ends):
        window = np.sort(values[max(0, end - VIX_PCT_DAILY_CLOSES):end])
        if len(window) < VIX_PCT_MIN_CLOSES:
            continue
        here = vix[bounds[i]:bounds[i + 1]]
        below = np.searchsorted(window, here, side="left")
        equal = np.searchsorted(window, here, side="right") - below
        out[bounds[i]:bounds[i + 1]] = (below + equal / 2 + 1) / (len(window) + 1)
    out[~np.isfinite(vix)] = np.nan
    return out


def build_features(bars: pd.DataFrame, bar_minutes: int, daily: DailyHistory | None = None) -> pd.DataFrame:
    """One row per bar, columns FEATURE_NAMES in that order; row t uses bars <= t, and daily rows dated
    before t's session, only. Without `daily` (or with a part of it None) those features come from the
    intraday bars alone."""
    _check(bars, bar_minutes)
    daily = daily or DailyHistory()
    idx = bars.index
    close, high, low = bars["close"], bars["high"], bars["low"]
    volume = bars["volume"].fillna(0.0)
    vix = bars["vix"] if "vix" in bars.columns else pd.Series(np.nan, index=idx)
    if len(bars) == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in FEATURE_NAMES}, index=idx)
    out = pd.DataFrame(index=idx)

    day = pd.Index(idx.date, name="day")
    first_bar = pd.Series(idx, index=idx).groupby(day).first()
    opens = _session_opens(first_bar.index.to_numpy(), first_bar)
    codes, unique_days = pd.factorize(day)
    session_open = _per_day(opens, unique_days, idx.tz)[codes]
    since_open_start = (idx - session_open).total_seconds().to_numpy() / 60.0

    for k in (1, 3, 6, 12):
        out[f"ret_{k}"] = close / close.shift(k) - 1.0
    logret = np.log(close / close.shift(1))
    out["rvol_12"] = logret.rolling(12, min_periods=12).std()
    out["rvol_48"] = logret.rolling(48, min_periods=48).std()
    tr = true_range(bars)
    a = tr.rolling(ATR_BARS, min_periods=ATR_BARS).mean()  # = atr(bars), sharing the true range
    safe_atr = a.where(a > 0)
    out["atr_14"] = a
    out["atr_pct"] = a / close
    out["rsi_14"] = _rsi(close, RSI_BARS)

    by_day = pd.Series(day, index=idx)
    typical = (high + low + close) / 3.0
    cum_pv = (typical * volume).groupby(by_day).cumsum()
    cum_v = volume.groupby(by_day).cumsum()
    vwap = (cum_pv / cum_v).where(cum_v > 0)
    out["vwap_dist_atr"] = (close - vwap) / safe_atr

    # Opening range: bars starting within the first 30 minutes; known once the last of them closes.
    in_range = since_open_start < OPENING_RANGE_MINUTES
    range_done = since_open_start + bar_minutes >= OPENING_RANGE_MINUTES
    # Every opening-range bar starts no later than the first bar for which range_done holds, so the
    # whole-day aggregate is causal once masked by range_done.
    or_high = by_day.map(high.where(in_range).groupby(by_day).max())
    or_low = by_day.map(low.where(in_range).groupby(by_day).min())
    width = (or_high - or_low).where(lambda w: w > 0)
    out["or_pos"] = ((close - or_low) / width).where(range_done)

    out["minutes_since_open"] = since_open_start + bar_minutes

    # Prior-session values, aligned to every bar of the following session.
    sessions = pd.DataFrame({
        "close": close.groupby(by_day).last(),
        "high": high.groupby(by_day).max(),
        "low": low.groupby(by_day).min(),
    })
    prev = _prior_sessions(sessions, daily.symbol)
    prev_vix_close = _prior_sessions(vix.groupby(by_day).last().to_frame("close"), daily.vix)["close"]
    prev_close = by_day.map(prev["close"])
    out["gap"] = by_day.map(bars["open"].groupby(by_day).first()) / prev_close - 1.0
    out["prev_high_dist_atr"] = (close - by_day.map(prev["high"])) / safe_atr
    out["prev_low_dist_atr"] = (close - by_day.map(prev["low"])) / safe_atr

    slot = pd.Series(np.round(since_open_start).astype(np.int64), index=idx)
    out["rel_volume"], out["rel_volume_sessions"] = _rel_volume(volume, day, slot)

    out["vix"] = vix
    out["vix_chg_1"] = vix - vix.shift(1)
    out["vix_chg_12"] = vix - vix.shift(12)
    out["vix_chg_prev_close"] = vix - by_day.map(prev_vix_close)
    if daily.vix is not None and len(daily.vix):
        out["vix_pct"] = _vix_pct_daily(vix.to_numpy(dtype="float64"), codes, unique_days, daily.vix)
    else:
        window = VIX_PCT_SESSIONS * (SESSION_MINUTES // bar_minutes)
        out["vix_pct"] = vix.rolling(window, min_periods=min(window, 50)).rank(pct=True)

    closes = _per_day(_session_closes(first_bar.index.to_numpy(), first_bar, bar_minutes), unique_days,
                      idx.tz)[codes]
    out["minutes_to_close"] = ((closes - idx).total_seconds().to_numpy() / 60.0 - bar_minutes).clip(0.0)

    session_rv, lagged = _realised_vol(logret, day)
    out["rv_session"] = session_rv
    for col in lagged.columns:
        out[col] = by_day.map(lagged[col])
    tr_pct = tr / close
    out["vix_bar_vol"] = vix / 100.0 * np.sqrt(bar_minutes / (TRADING_DAYS * SESSION_MINUTES))
    bars_left = np.floor(out["minutes_to_close"].to_numpy() / bar_minutes).astype(np.int64)
    out["tr_profile"], out["tr_profile_ahead"] = _range_profile(tr_pct, day, slot, bars_left)

    result = out[FEATURE_NAMES].astype("float64")
    return result.replace([np.inf, -np.inf], np.nan)


def band_scale(features: pd.DataFrame) -> np.ndarray:
    """A HAR-style volatility forecast on ATR's scale (fraction of price per bar): the geometric mean of
    the estimates a row has, over several horizons (ATR of 14 bars, 48-bar return sd, the previous 1, 5
    and 20 sessions' realised vol) and VIX. The band regressors predict excursions in units of it."""
    estimates = np.column_stack([
        features["atr_pct"].to_numpy(dtype=float),
        *(RANGE_PER_SD * features[c].to_numpy(dtype=float)
          for c in ("rvol_48", "rv_prev_1", "rv_prev_5", "rv_prev_20", "vix_bar_vol")),
    ])
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(estimates > 0, estimates, np.nan))
    known = np.isfinite(logs)
    total = np.where(known, logs, 0.0).sum(axis=1)
    count = known.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, np.exp(total / np.maximum(count, 1)), np.nan)
