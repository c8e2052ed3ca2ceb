"""Each symbol's option contracts, refetched at most every CHAIN_REFRESH_MINUTES.

A chain is one request per expiration (SPY has five or six within a week), so fetching every chain
at every bar close would cost more than Tradier's rate allows for a large watchlist. Between
refreshes the caller recomputes the levels at the live spot from the cached IVs and open interest
(see docs/levels.md for what that costs). The first fetch of each symbol lives longer by a phase set
by its place in the watchlist, so the refreshes of a 50-symbol watchlist spread over several bar
closes instead of all falling on one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.marketdata import MarketDataProvider
from core.types import NY, OptionContract


@dataclass(frozen=True)
class _Entry:
    day: date
    fetched_at: datetime
    expires_at: datetime
    contracts: list[OptionContract]


class ChainCache:
    def __init__(self, provider: MarketDataProvider, *, refresh: timedelta, max_dte: int,
                 symbols: list[str]) -> None:
        self._provider = provider
        self._refresh = refresh
        self._max_dte = max_dte
        self._symbols = list(symbols)
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, symbol: str, now: datetime) -> list[OptionContract]:
        """Contracts of the expirations within max DTE of `now`'s session; `now` is the only clock."""
        async with self._locks.setdefault(symbol, asyncio.Lock()):
            today = now.astimezone(NY).date()
            entry = self._entries.get(symbol)
            if entry is not None and entry.day == today and entry.fetched_at <= now < entry.expires_at:
                return entry.contracts
            contracts = await self._fetch(symbol, today)
            lifetime = self._refresh if entry is not None else self._refresh + self._phase(symbol)
            self._entries[symbol] = _Entry(today, now, now + lifetime, contracts)
            return contracts

    def expires_at(self, symbol: str) -> datetime | None:
        entry = self._entries.get(symbol)
        return None if entry is None else entry.expires_at

    def _phase(self, symbol: str) -> timedelta:
        """0 for the first symbol of the watchlist up to nearly one refresh period for the last."""
        if symbol not in self._symbols:
            return timedelta(0)
        return self._refresh * (self._symbols.index(symbol) / len(self._symbols))

    async def _fetch(self, symbol: str, today: date) -> list[OptionContract]:
        expirations = await self._provider.get_expirations(symbol)
        horizon = today + timedelta(days=self._max_dte)
        wanted = [d for d in expirations if today <= d <= horizon]
        chains = await asyncio.gather(*(self._provider.get_chain(symbol, d) for d in wanted))
        return [c for chain in chains for c in chain]
