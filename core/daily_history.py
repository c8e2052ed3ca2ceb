"""Daily history for the features (`core.model.features.DailyHistory`), fetched through the provider and
cached, so training and serving see the same prior-day levels and VIX percentile.

Only providers whose daily history reaches further back than their intraday bars are asked: Tradier's
/markets/history serves years where its 5-minute bars reach ~40 days. Simulated and CSV daily rows are
aggregated from the very intraday bars the features already read, so they would add nothing; those
sources keep the intraday definitions. A failed daily request costs the features their longer reach,
never a prediction or a training: it is logged, and retried after RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import date, timedelta

import pandas as pd

from core.marketdata import MarketDataProvider
from core.model.features import DailyHistory

log = logging.getLogger(__name__)
DAILY_SOURCES = frozenset({"tradier"})
VIX_LOOKBACK_DAYS = 380  # calendar days holding features.VIX_PCT_DAILY_CLOSES (252) sessions, and a margin
PRIOR_SESSION_DAYS = 10  # calendar days back to a session's prior session, across any holiday weekend
RETRY_SECONDS = 300.0
DAILY_COLUMNS = ("high", "low", "close")


class DailyHistorySource:
    """One fetch of VIX daily per new last day, shared by every symbol; a symbol's own daily only when
    asked for (training: its first session's prior day; serving reads the prior session from its bars)."""

    def __init__(self, provider: MarketDataProvider, *, monotonic: Callable[[], float] = time.monotonic):
        self._provider = provider
        self._monotonic = monotonic
        self._frames: dict[str, tuple[date, date, pd.DataFrame]] = {}  # symbol -> (start, end, rows)
        self._failed_at: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def enabled(self) -> bool:
        return self._provider.source in DAILY_SOURCES

    async def get(self, symbol: str, first_day: date, last_day: date, *,
                  with_symbol: bool) -> DailyHistory | None:
        """Daily rows reaching far enough before `first_day` for the features of sessions
        first_day..last_day (rows of last_day itself may be partial; the features never read them)."""
        if not self.enabled:
            return None
        vix = await self._rows("VIX", first_day - timedelta(days=VIX_LOOKBACK_DAYS), last_day)
        own = (await self._rows(symbol, first_day - timedelta(days=PRIOR_SESSION_DAYS), last_day)
               if with_symbol else None)
        return DailyHistory(symbol=own, vix=vix) if vix is not None or own is not None else None

    async def _rows(self, symbol: str, start: date, end: date) -> pd.DataFrame | None:
        async with self._locks.setdefault(symbol, asyncio.Lock()):  # concurrent scans share one fetch
            cached = self._frames.get(symbol)
            if cached is not None and cached[0] <= start and cached[1] >= end:
                return cached[2]
            failed = self._failed_at.get(symbol)
            if failed is not None and self._monotonic() - failed < RETRY_SECONDS:
                return None
            try:
                rows = _checked(await self._provider.get_daily(symbol, start, end))
            except Exception as exc:  # any bad answer: the intraday definitions serve instead
                self._failed_at[symbol] = self._monotonic()
                log.warning("daily history for %s unavailable (%s: %s); its prior-day and VIX percentile "
                            "features come from the intraday bars", symbol, type(exc).__name__, exc)
                return None
            self._failed_at.pop(symbol, None)
            self._frames[symbol] = (start, end, rows)
            return rows


def as_trained(daily: DailyHistory | None, manifest: dict) -> DailyHistory | None:
    """The parts of `daily` the model's manifest says it was trained with: a model trained on the
    intraday definitions (or before daily history existed) is served on them too."""
    used = manifest.get("daily_history") or {}
    if daily is None or not (used.get("symbol") or used.get("vix")):
        return None
    return DailyHistory(symbol=daily.symbol if used.get("symbol") else None,
                        vix=daily.vix if used.get("vix") else None)


def _checked(rows: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(rows, pd.DataFrame) or not isinstance(rows.index, pd.DatetimeIndex):
        raise ValueError("daily rows are not a date-indexed frame")
    missing = [c for c in DAILY_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"daily rows lack {', '.join(missing)}")
    return rows[list(DAILY_COLUMNS)].astype("float64").sort_index()
