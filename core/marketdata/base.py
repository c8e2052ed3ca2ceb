"""The async interface every market-data provider implements.

Every method raises `core.types.MarketDataError` (or `UnknownSymbolError`) with a short message
on failure, never a raw client exception, and never includes a secret in the message.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol, runtime_checkable

import pandas as pd

from core.types import CalendarDay, MarketClock, OptionContract, Quote


@runtime_checkable
class MarketDataProvider(Protocol):
    #: "tradier", "simulated" or "csv"; copied into everything derived from the data.
    source: str

    async def get_bars(self, symbol: str, start: datetime, end: datetime, timeframe: str) -> pd.DataFrame:
        """Regular-session bars whose START lies in [start, end], in the `core.types` bar frame
        convention, with the `vix` column filled (VIX close at each bar's close, as-of, never
        from a later bar). Only closed bars: a bar still forming at the provider's "now" is left out.
        timeframe is "5min", "15min" or "1h".

        The window is on bar START, inclusive at both ends: `core.bar_cache` re-fetches from the
        last cached bar's start to get its revised values. "Closed" is by the provider's clock, not
        by `end`: a bar starting at `end` may not have closed by `end`, so a caller asking "as of T"
        (the predictor) keeps only bars that closed by T itself."""
        ...

    async def get_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        """Latest quotes; "VIX" may be among the symbols. Unknown symbols are absent from the dict."""
        ...

    async def get_daily(self, symbol: str, start: date, end: date) -> pd.DataFrame:
        """Daily bars: index = tz-naive DatetimeIndex of dates; columns open, high, low, close, volume."""
        ...

    async def get_expirations(self, symbol: str) -> list[date]:
        ...

    async def get_chain(self, symbol: str, expiration: date) -> list[OptionContract]:
        """All calls and puts of one expiration, sorted by (strike, type)."""
        ...

    async def get_clock(self) -> MarketClock:
        ...

    async def get_calendar(self, year: int, month: int) -> list[CalendarDay]:
        ...

    def now(self) -> datetime:
        """The provider's notion of the current time (simulated markets may run a fake clock)."""
        ...

    async def close(self) -> None:
        ...
