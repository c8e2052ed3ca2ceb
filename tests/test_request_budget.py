"""Issue 12's request budget against the Tradier fake: the pacer holds its limit under a 50-symbol scan
plus a burst of user commands and serves the users first; option chains are cached and refreshed as
CHAIN_REFRESH_MINUTES says, staggered across symbols; VIX is fetched once for many symbols."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from core.chain_cache import ChainCache
from core.marketdata.priority import SCAN, market_priority
from core.marketdata.tradier import TradierProvider
from core.types import NY
from tests.fakes.fake_tradier import run_fake_tradier

TOKEN = "budget-token"
NOW = datetime(2025, 7, 1, 10, 5, 20, tzinfo=NY)  # a Tuesday, 20 s after the 10:05 bar closed
LIMIT, WINDOW = 10, 60.0


class VirtualTime:
    """The pacer's clock and sleep: time moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleepers: list[tuple[float, asyncio.Future]] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.t + max(seconds, 0.0), future))
        await future

    def wake_next(self) -> None:
        self.t = max(self.t, min(at for at, _ in self.sleepers))
        due = [(at, f) for at, f in self.sleepers if at <= self.t]
        self.sleepers = [(at, f) for at, f in self.sleepers if at > self.t]
        for _, future in due:
            if not future.done():
                future.set_result(None)


async def _until(condition, rounds: int = 2000) -> None:
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never reached")


async def test_pacer_holds_the_limit_with_50_symbols_and_users_go_first():
    vt = VirtualTime()
    async with run_fake_tradier(token=TOKEN, now=NOW) as fake:
        fake.rate_limit = None
        arrivals: list[tuple[float, str]] = []
        answer = fake._answer

        async def recording(request, endpoint, params):
            arrivals.append((vt.t, params.get("symbols", "")))
            return await answer(request, endpoint, params)

        fake._answer = recording  # type: ignore[method-assign]
        provider = TradierProvider(TOKEN, fake.base_url, requests_per_minute=LIMIT, rate_window=WINDOW,
                                   clock=fake.now, sleep=vt.sleep, monotonic=vt.monotonic, timeout=5.0)
        scan_symbols = [f"S{i:02d}" for i in range(50)]
        user_symbols = [f"U{i}" for i in range(5)]
        try:
            with market_priority(SCAN):
                scans = [asyncio.ensure_future(provider.get_quotes([s])) for s in scan_symbols]
            await _until(lambda: len(arrivals) == LIMIT and vt.sleepers)  # the window is full
            users = [asyncio.ensure_future(provider.get_quotes([s])) for s in user_symbols]
            await _until(lambda: provider._pacer.waiting == 50 - LIMIT + len(user_symbols))
            everything = scans + users
            while not all(t.done() for t in everything):
                await _until(lambda: vt.sleepers or all(t.done() for t in everything))
                if vt.sleepers:
                    vt.wake_next()
            await asyncio.gather(*everything)
        finally:
            await provider.close()
    order = [symbols for _, symbols in arrivals]
    assert len(order) == 55 and sorted(order) == sorted(scan_symbols + user_symbols)
    # the burst came while 40 scan requests were queued: the next requests to leave are the users'
    assert order[LIMIT:LIMIT + len(user_symbols)] == user_symbols
    times = [t for t, _ in arrivals]
    # at most LIMIT requests in any rolling window
    assert all(times[i + LIMIT] - times[i] >= WINDOW for i in range(len(times) - LIMIT))


class CountingProvider:
    """The Tradier provider, counting what the chain cache asks for."""

    def __init__(self, inner: TradierProvider) -> None:
        self.inner = inner
        self.expiration_calls: list[str] = []

    async def get_expirations(self, symbol: str):
        self.expiration_calls.append(symbol)
        return await self.inner.get_expirations(symbol)

    async def get_chain(self, symbol: str, expiration):
        return await self.inner.get_chain(symbol, expiration)


async def test_chain_cache_expires_and_refreshes_as_configured_and_staggered():
    symbols = ["SPY", "QQQ", "IWM"]
    async with run_fake_tradier(token=TOKEN, now=NOW) as fake:
        inner = TradierProvider(TOKEN, fake.base_url, clock=fake.now, timeout=5.0)
        provider = CountingProvider(inner)
        cache = ChainCache(provider, refresh=timedelta(minutes=15), max_dte=7, symbols=symbols)  # type: ignore[arg-type]
        try:
            first = {s: await cache.get(s, NOW) for s in symbols}
            assert first["SPY"] and provider.expiration_calls == symbols
            chains_after_first = fake.counts["chains"]
            # staggered: the first fetches expire 15, 20 and 25 minutes later, not all at once
            assert [cache.expires_at(s) - NOW for s in symbols] == [timedelta(minutes=m) for m in (15, 20, 25)]
            for minutes in (5, 10):  # bar closes before the first expiry: nothing is fetched
                for s in symbols:
                    assert await cache.get(s, NOW + timedelta(minutes=minutes)) == first[s]
            assert fake.counts["chains"] == chains_after_first and len(provider.expiration_calls) == 3
            at_15 = NOW + timedelta(minutes=15)
            for s in symbols:
                await cache.get(s, at_15)
            assert provider.expiration_calls[3:] == ["SPY"]  # only SPY's chain had expired
            assert cache.expires_at("SPY") == at_15 + timedelta(minutes=15)  # later ones: every period
            for s in symbols:
                await cache.get(s, NOW + timedelta(minutes=25))
            assert provider.expiration_calls[3:] == ["SPY", "QQQ", "IWM"]
            # a new session never serves yesterday's chain
            await cache.get("SPY", NOW + timedelta(days=1, minutes=-60))
            assert provider.expiration_calls[-1] == "SPY" and len(provider.expiration_calls) == 7
        finally:
            await inner.close()


async def test_vix_is_fetched_once_for_many_symbols():
    async with run_fake_tradier(token=TOKEN, now=NOW) as fake:
        provider = TradierProvider(TOKEN, fake.base_url, clock=fake.now, timeout=5.0)
        start = NOW - timedelta(days=2)
        try:
            frames = [await provider.get_bars(s, start, NOW, "5min") for s in ("SPY", "QQQ", "IWM", "AAPL")]
            vix_calls = [r for r in fake.requests_to("timesales") if r.params["symbol"] == "VIX"]
            assert len(vix_calls) == 1
            assert all(f["vix"].notna().all() for f in frames)
            fake.set_now(NOW + timedelta(minutes=5))  # the next bar closes: one incremental VIX call
            later = NOW + timedelta(minutes=5)
            again = await provider.get_bars("SPY", start, later, "5min")
            vix_calls = [r for r in fake.requests_to("timesales") if r.params["symbol"] == "VIX"]
            assert len(vix_calls) == 2 and vix_calls[1].params["start"] != vix_calls[0].params["start"]
            assert again["vix"].notna().all() and len(again) == len(frames[0]) + 1
        finally:
            await provider.close()
