"""Recent bars per symbol, refreshed incrementally so a prediction costs one small request.

The first call fetches enough history for every feature (trailing 20-session volume profile, VIX
percentile); later calls fetch only from the last cached bar on. Concurrent callers for one symbol
share one refresh.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pandas as pd

from core.marketdata import MarketDataProvider
from core.types import normalise_bars

# Tradier keeps about 40 calendar days of 5-minute bars; 38 leaves room and still covers 25+ sessions.
HISTORY_DAYS = 38


class BarCache:
    def __init__(self, provider: MarketDataProvider, timeframe: str, *, min_refresh_seconds: float = 5.0,
                 max_sessions: int = 40):
        self._provider = provider
        self._timeframe = timeframe
        self._frames: dict[str, pd.DataFrame] = {}
        self._refreshed_at: dict[str, tuple[float, datetime]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._min_refresh = min_refresh_seconds
        self._max_sessions = max_sessions

    async def get(self, symbol: str, now: datetime | None = None) -> pd.DataFrame:
        now = now or self._provider.now()
        lock = self._locks.setdefault(symbol, asyncio.Lock())
        async with lock:
            cached = self._frames.get(symbol)
            stamp = self._refreshed_at.get(symbol)
            minute = now.replace(second=0, microsecond=0)
            if (cached is not None and stamp is not None and stamp[1] == minute
                    and time.monotonic() - stamp[0] < self._min_refresh):
                return cached
            if cached is None or cached.empty or cached.index[-1] > now:
                fresh = await self._provider.get_bars(symbol, now - timedelta(days=HISTORY_DAYS), now,
                                                      self._timeframe)
                frame = normalise_bars(fresh)
            else:
                # Re-fetch from the last cached bar: it may have been revised when it closed.
                fresh = await self._provider.get_bars(symbol, cached.index[-1].to_pydatetime(), now,
                                                      self._timeframe)
                frame = normalise_bars(pd.concat([cached, normalise_bars(fresh)]))
            frame = self._trim(frame)
            self._frames[symbol] = frame
            self._refreshed_at[symbol] = (time.monotonic(), minute)
            return frame

    def _trim(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Whole sessions from HISTORY_DAYS before the newest bar (what a first fetch gets), at most
        max_sessions of them: a bot up for weeks then scores on the same history as a fresh one, and
        the cost of a prediction (features over every cached bar) does not creep up with uptime."""
        if frame.empty:
            return frame
        idx = frame.index
        cutoff = (idx[-1] - pd.Timedelta(days=HISTORY_DAYS)).normalize()
        days = idx.normalize().unique()
        if len(days) > self._max_sessions:
            cutoff = max(cutoff, days[-self._max_sessions])
        start = int(idx.searchsorted(cutoff))
        return frame.iloc[start:] if start else frame

