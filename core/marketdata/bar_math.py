"""Bar arithmetic shared by the providers that build bars themselves (simulated, CSV)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from core.types import BAR_COLUMNS


def aggregate_bars(bars_5min: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Aggregate 5-minute bars onto the session grid (buckets counted from each session's open)."""
    if bars_5min.empty:
        return bars_5min
    idx = bars_5min.index
    day_open = idx.normalize() + pd.Timedelta(hours=9, minutes=30)
    bucket_start = day_open + ((idx - day_open) // pd.Timedelta(minutes=minutes)) * pd.Timedelta(minutes=minutes)
    grouped = bars_5min.groupby(bucket_start)
    out = pd.DataFrame({
        "open": grouped["open"].first(), "high": grouped["high"].max(), "low": grouped["low"].min(),
        "close": grouped["close"].last(), "volume": grouped["volume"].sum(), "vix": grouped["vix"].last(),
    })
    out.index = pd.DatetimeIndex(out.index).rename("time")
    return out[BAR_COLUMNS]


def daily_bars(bars: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """Intraday bars -> one row per session in [start, end] (index: tz-naive dates named "date")."""
    days = bars.index.tz_localize(None).normalize()
    grouped = bars.groupby(days)
    daily = pd.DataFrame({
        "open": grouped["open"].first(), "high": grouped["high"].max(), "low": grouped["low"].min(),
        "close": grouped["close"].last(), "volume": grouped["volume"].sum(),
    })
    daily.index = pd.DatetimeIndex(daily.index, name="date")
    return daily.loc[(daily.index >= pd.Timestamp(start)) & (daily.index <= pd.Timestamp(end))]
