"""Tradier REST market data (shared/reference/tradier-api.md) behind the `MarketDataProvider` protocol.

Transport rules: `Accept: application/json` and the Bearer token on every request; at most
`requests_per_minute` requests in any rolling window (plus a wait whenever X-Ratelimit-Available
reaches 0); bounded retries with exponential backoff and jitter for 429/`Quota Violation`, 5xx,
timeouts and connection errors; 400/401/403 fail at once; identical in-flight requests are shared.
The token never appears in a message or a log line.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import aiohttp
import pandas as pd

from core.calendar import sessions_between
from core.clock import wall_clock_ny
from core.marketdata import tradier_parse as parse
from core.marketdata.priority import current_priority
from core.types import (
    NY,
    CalendarDay,
    MarketClock,
    MarketDataError,
    OptionContract,
    Quote,
    UnknownSymbolError,
    empty_bars,
    normalise_bars,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# Tradier serves 5min/15min timesales for ~40 calendar days; 10-day chunks keep each answer small.
CHUNK = timedelta(days=10)
VIX_KEEP = timedelta(days=45)  # more than any symbol's bar history (core.bar_cache.HISTORY_DAYS)
MIN_BISECT_SPAN = timedelta(hours=1)
TIMEFRAMES = {"5min": ("5min", 5), "15min": ("15min", 15), "1h": ("15min", 60)}
SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9./]{0,24}$")
NULL_HISTORY_RETRIES = 2
# GET URLs stay short; beyond this many characters of symbols the quote request is a form POST.
MAX_GET_SYMBOLS_CHARS = 1000


class _TooBigBody(MarketDataError):
    """The gateway refused a timesales range as too large; the caller bisects it."""


class _TokenRejected(MarketDataError):
    """401/403: retrying cannot help and every other call would fail the same way."""


class _NotJson(MarketDataError):
    """A 200 answer that is not JSON (XML, HTML, text, truncated JSON)."""


class SlidingWindowPacer:
    """At most `limit` acquisitions in any rolling `window` seconds (stricter than Tradier's window),
    handed out by priority: a waiting request of a lower `priority` number (a user's command) is
    served before any waiting request of a higher one (scan traffic), first come first served within
    one priority (`core.marketdata.priority`).

    `acquire(until_done=True)` + `release()` count a request from its departure until its answer
    and for `window` seconds after that: the server counts ARRIVALS, which may lag the departure
    (a busy event loop, a slow connect), so a departure stamp alone lets arrivals bunch up."""

    def __init__(self, limit: int, window: float = 60.0, sleep: Sleep = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if limit <= 0 or window <= 0:
            raise ValueError("pacer limit and window must be positive")
        self._limit = limit
        self._window = window
        self._sleep = sleep
        self._monotonic = monotonic
        self._stamps: deque[float] = deque()
        self._in_flight = 0
        self._waiting: list[tuple[int, int]] = []  # heap of (priority, arrival number)
        self._arrivals = itertools.count()
        self._changed = asyncio.Event()  # set (and replaced) when a slot or the queue's head changes

    async def acquire(self, *, until_done: bool = False, priority: int | None = None) -> None:
        ticket = (current_priority() if priority is None else priority, next(self._arrivals))
        heapq.heappush(self._waiting, ticket)
        self._notify()  # a new head may have arrived
        try:
            while True:
                changed = self._changed
                if self._waiting[0] != ticket:
                    await changed.wait()
                    continue
                now = self._monotonic()
                while self._stamps and now - self._stamps[0] >= self._window:
                    self._stamps.popleft()
                if len(self._stamps) + self._in_flight < self._limit:
                    heapq.heappop(self._waiting)
                    if until_done:
                        self._in_flight += 1
                    else:
                        self._stamps.append(now)
                    return
                if self._stamps:
                    await self._sleep(self._stamps[0] + self._window - now)
                else:  # every slot is a request still in flight: wait for one to answer
                    await changed.wait()
        except BaseException:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
            raise
        finally:
            self._notify()

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return len(self._waiting)

    def release(self) -> None:
        """The request taken with `acquire(until_done=True)` has its answer (or failed)."""
        self._in_flight -= 1
        self._stamps.append(self._monotonic())
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


@dataclass(frozen=True)
class _VixSeries:
    start: datetime  # the series covers bars starting from here ...
    fetched_until: datetime  # ... up to here, as of its last fetch
    frame: pd.DataFrame


def _bar_closed_between(after: datetime, until: datetime, minutes: int) -> bool:
    """Whether a bar of `minutes` (aligned on the clock, as session bars are) closes in (after, until]."""
    step = minutes * 60
    return int(until.timestamp()) // step > int(after.timestamp()) // step


class TradierProvider:
    source = "tradier"

    def __init__(self, token: str, base_url: str, requests_per_minute: int = 110, timeout: float = 10.0,
                 max_retries: int = 4, clock: Callable[[], datetime] | None = None, *,
                 rate_window: float = 60.0, max_wait: float = 65.0, backoff_base: float = 0.5,
                 sleep: Sleep = asyncio.sleep, monotonic: Callable[[], float] = time.monotonic) -> None:
        if not token:
            raise MarketDataError("Tradier needs an access token")
        if max_retries < 0 or timeout <= 0:
            raise ValueError("max_retries must be >= 0 and timeout > 0")
        self._token = token
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._timeout = timeout
        self._max_retries = max_retries
        self._clock = clock
        self._max_wait = max_wait
        self._backoff_base = backoff_base
        self._sleep = sleep
        self._pacer = SlidingWindowPacer(requests_per_minute, rate_window, sleep, monotonic)
        self._quota_reset_at = 0.0  # epoch seconds; set when X-Ratelimit-Available reaches 0
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[tuple[Any, ...], asyncio.Task[Any]] = {}
        self._known_symbols: set[str] = set()
        self._vix: dict[str, _VixSeries] = {}  # interval -> the VIX bars fetched so far
        self._vix_locks: dict[str, asyncio.Lock] = {}

    # ----------------------------------------------------------------- transport

    def now(self) -> datetime:
        return self._clock() if self._clock is not None else wall_clock_ny()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json", "Authorization": f"Bearer {self._token}"},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        self._inflight.clear()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _call(self, path: str, params: dict[str, str], method: str = "GET") -> Any:
        """Decoded JSON of one request; concurrent identical requests share one HTTP call."""
        key = (method, path, tuple(sorted(params.items())))
        task = self._inflight.get(key)
        if task is None or task.done():
            task = asyncio.ensure_future(self._request(method, path, params))
            self._inflight[key] = task
            task.add_done_callback(lambda t, k=key: self._forget(k, t))
        # shield: one impatient caller cancelling must not cancel the request the others await
        return await asyncio.shield(task)

    def _forget(self, key: tuple[Any, ...], task: asyncio.Task[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have gone

    def _redact(self, text: str, limit: int = 160) -> str:
        one_line = " ".join(text.replace(self._token, "***").split())
        return one_line[:limit]

    def _backoff(self, attempt: int) -> float:
        base = self._backoff_base * (2 ** attempt)
        return min(self._max_wait, base + random.uniform(0, self._backoff_base))

    def _until(self, epoch_seconds: float | None) -> float | None:
        if epoch_seconds is None:
            return None
        return min(self._max_wait, max(0.0, epoch_seconds - time.time()))

    def _note_rate_headers(self, headers: Any) -> None:
        available = parse.num(headers.get("X-Ratelimit-Available"))
        expiry = parse.expiry_epoch_seconds(headers.get("X-Ratelimit-Expiry"))
        if available is not None and available <= 0 and expiry is not None:
            self._quota_reset_at = max(self._quota_reset_at, expiry)

    async def _wait_for_quota(self) -> None:
        wait = self._until(self._quota_reset_at) if self._quota_reset_at else None
        if wait:
            log.info("Tradier quota used up; waiting %.1f s for the window to reset", wait)
            await self._sleep(wait)

    async def _request(self, method: str, path: str, params: dict[str, str]) -> Any:
        url = self._base_url + path.lstrip("/")
        shown = "/" + path.lstrip("/")
        attempts = self._max_retries + 1
        problem = "no answer"
        for attempt in range(attempts):
            last = attempt == attempts - 1
            await self._wait_for_quota()
            await self._pacer.acquire(until_done=True)
            try:
                kwargs = {"params": params} if method == "GET" else {"data": params}
                async with self._http().request(method, url, **kwargs) as resp:
                    status = resp.status
                    content_type = resp.content_type
                    headers = resp.headers
                    text = (await resp.read()).decode("utf-8", errors="replace")
            except (TimeoutError, aiohttp.ClientError) as exc:
                self._pacer.release()
                problem = "timeout" if isinstance(exc, TimeoutError) else "connection error"
                log.warning("Tradier %s on %s (attempt %d/%d)", problem, shown, attempt + 1, attempts)
                if not last:
                    await self._sleep(self._backoff(attempt))
                continue
            except BaseException:
                self._pacer.release()
                raise
            self._pacer.release()
            self._note_rate_headers(headers)
            if status == 429 or (status != 200 and text.lstrip().startswith("Quota Violation")):
                problem = f"rate limited, HTTP {status}"
                expiry = parse.expiry_epoch_seconds(headers.get("X-Ratelimit-Expiry"))
                wait = self._until(expiry if expiry is not None else parse.quota_body_expiry(text))
                log.warning("Tradier throttled %s (attempt %d/%d)", shown, attempt + 1, attempts)
                if not last:
                    # a little jitter past the expiry so many clients do not stampede the new window
                    await self._sleep((self._backoff(attempt) if wait is None else wait)
                                      + random.uniform(0, 0.05))
                continue
            payload, decode_problem = self._decode(text, content_type)
            code, message = parse.error_of(payload)
            if code == parse.TOO_BIG_BODY:
                raise _TooBigBody(f"Tradier refused a too large range for {shown}")
            if status >= 500:
                problem = f"HTTP {status}"
                log.warning("Tradier HTTP %d on %s (attempt %d/%d)", status, shown, attempt + 1, attempts)
                if not last:
                    await self._sleep(self._backoff(attempt))
                continue
            if status in (401, 403):
                raise _TokenRejected(f"Tradier rejected the token ({status}) for {shown}")
            if status != 200:
                reason = message or self._redact(text) or "no reason given"
                raise MarketDataError(f"Tradier rejected the request ({status}) for {shown}: "
                                      f"{self._redact(reason)}")
            if decode_problem:
                raise _NotJson(f"Tradier sent {decode_problem} for {shown}")
            if message:
                raise MarketDataError(f"Tradier error for {shown}: {self._redact(message)}")
            return payload
        raise MarketDataError(f"market data unavailable ({problem} for {shown} after {attempts} attempts)")

    @staticmethod
    def _decode(text: str, content_type: str) -> tuple[Any, str | None]:
        """(payload, None) or (None, why it is not usable JSON)."""
        if "json" not in content_type.lower():
            return None, f"a non-JSON answer ({content_type or 'no content type'})"
        try:
            return json.loads(text), None
        except ValueError:
            return None, "malformed JSON"

    # ----------------------------------------------------------------- helpers

    @staticmethod
    def _symbol(symbol: str) -> str:
        clean = str(symbol).strip().upper()
        if not SYMBOL_RE.match(clean):
            raise UnknownSymbolError(f"unknown symbol: {str(symbol)[:30]!r}")
        return clean

    async def _raise_if_unknown(self, symbol: str) -> None:
        """Tradier answers an unknown symbol with empty or non-JSON data; a quote tells the two apart."""
        if symbol in self._known_symbols:
            return
        if symbol not in await self.get_quotes([symbol]):
            raise UnknownSymbolError(f"unknown symbol: {symbol}")

    def _as_ny(self, when: datetime) -> datetime:
        return when.replace(tzinfo=NY) if when.tzinfo is None else when.astimezone(NY)

    # ----------------------------------------------------------------- protocol

    async def get_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        wanted = sorted({self._symbol(s) for s in symbols})
        if not wanted:
            return {}
        joined = ",".join(wanted)
        method = "GET" if len(joined) <= MAX_GET_SYMBOLS_CHARS else "POST"
        payload = await self._call("markets/quotes", {"symbols": joined, "greeks": "false"}, method)
        found, unmatched = parse.quotes(payload)
        if unmatched:
            log.info("Tradier does not know: %s", ", ".join(unmatched[:10]))
        self._known_symbols.update(found)
        return {s: q for s, q in found.items() if s in wanted}

    async def get_bars(self, symbol: str, start: datetime, end: datetime, timeframe: str) -> pd.DataFrame:
        if timeframe not in TIMEFRAMES:
            raise MarketDataError(f"unsupported timeframe {timeframe!r} (use 5min, 15min or 1h)")
        symbol = self._symbol(symbol)
        start, end = self._as_ny(start), self._as_ny(end)
        if end < start:
            raise MarketDataError("bar range ends before it starts")
        interval, minutes = TIMEFRAMES[timeframe]
        now = pd.Timestamp(self._as_ny(self.now()))
        # an hour bar starting at `end` is built from 15-minute bars up to end + 45 min
        tail = timedelta(minutes=45) if timeframe == "1h" else timedelta(0)
        fetch_end = min(end + tail, now.to_pydatetime())
        if fetch_end < start:
            return empty_bars()
        try:
            raw, vix_raw = await asyncio.gather(
                self._timesales(symbol, interval, start, fetch_end),
                self._vix_timesales(interval, start, fetch_end),
            )
        except _NotJson:
            await self._raise_if_unknown(symbol)
            raise
        base_minutes = 15 if timeframe == "1h" else minutes
        bars = parse.to_hourly(raw) if timeframe == "1h" else raw
        if bars.empty:
            if symbol != "VIX":
                await self._raise_if_unknown(symbol)
            return empty_bars()
        closes = parse.close_times(bars.index, minutes)
        keep = (closes <= now) & (bars.index >= start) & (bars.index <= end)
        bars, closes = bars[keep], closes[keep]
        vix_closes = parse.close_times(vix_raw.index, base_minutes)
        vix_raw = vix_raw[vix_closes <= now]
        vix_closes = vix_closes[vix_closes <= now]
        return normalise_bars(parse.attach_vix(bars, closes, vix_raw, vix_closes))

    async def _vix_timesales(self, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        """VIX bars over [start, end] from one series shared by every symbol: a scan of 50 symbols
        fetches VIX once (from its last cached bar on) instead of once per symbol."""
        async with self._vix_locks.setdefault(interval, asyncio.Lock()):
            try:
                frame = await self._refresh_vix(interval, start, end)
            except _TokenRejected:
                raise
            except MarketDataError as exc:
                # without VIX the bars are still useful; the vix column stays NaN ("unknown")
                log.warning("VIX bars unavailable, vix column left empty: %s", exc)
                return parse.empty_ohlcv()
        return frame[(frame.index >= pd.Timestamp(start)) & (frame.index <= pd.Timestamp(end))]

    async def _refresh_vix(self, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        cached = self._vix.get(interval)
        if cached is None or start < cached.start or cached.frame.empty:
            frame = await self._timesales("VIX", interval, start, end)
            self._vix[interval] = _VixSeries(start, end, frame)
            return frame
        if not _bar_closed_between(cached.fetched_until, end, int(interval.removesuffix("min"))):
            return cached.frame
        # from the last cached bar on: it may have been revised (or still been forming) when fetched
        fresh = await self._timesales("VIX", interval, cached.frame.index[-1].to_pydatetime(), end)
        frame = pd.concat([cached.frame, fresh])
        frame = frame[~frame.index.duplicated(keep="last")].sort_index()
        keep_from = pd.Timestamp(end) - VIX_KEEP
        frame = frame[frame.index >= keep_from]
        self._vix[interval] = _VixSeries(max(cached.start, keep_from.to_pydatetime()), end, frame)
        return frame

    async def _timesales(self, symbol: str, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        spans = []
        cursor = start
        while cursor <= end:
            chunk_end = min(cursor + CHUNK, end)
            spans.append((cursor, chunk_end))
            cursor = chunk_end + timedelta(minutes=1)
        frames = await asyncio.gather(*(self._timesales_span(symbol, interval, a, b) for a, b in spans))
        frames = [f for f in frames if not f.empty]
        if not frames:
            return parse.empty_ohlcv()
        out = pd.concat(frames)
        return out[~out.index.duplicated(keep="last")].sort_index()

    async def _timesales_span(self, symbol: str, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        params = {"symbol": symbol, "interval": interval, "session_filter": "open",
                  "start": start.strftime("%Y-%m-%d %H:%M"), "end": end.strftime("%Y-%m-%d %H:%M")}
        try:
            return parse.timesales(await self._call("markets/timesales", params))
        except _TooBigBody:
            if end - start <= MIN_BISECT_SPAN:
                raise MarketDataError("Tradier refused even a one-hour timesales range") from None
            middle = (start + (end - start) / 2).replace(second=0, microsecond=0)
            halves = await asyncio.gather(
                self._timesales_span(symbol, interval, start, middle),
                self._timesales_span(symbol, interval, middle + timedelta(minutes=1), end),
            )
            return pd.concat(halves).sort_index()

    async def get_daily(self, symbol: str, start: date, end: date) -> pd.DataFrame:
        symbol = self._symbol(symbol)
        if end < start:
            raise MarketDataError("daily range ends before it starts")
        params = {"symbol": symbol, "interval": "daily",
                  "start": start.isoformat(), "end": end.isoformat()}
        has_sessions = bool(sessions_between(start, min(end, self.now().date())))
        frame = None
        for attempt in range(NULL_HISTORY_RETRIES + 1):
            try:
                frame = parse.history(await self._call("markets/history", params))
            except _NotJson:
                await self._raise_if_unknown(symbol)
                raise
            # Tradier sometimes answers `history: null` for a range that has data; ask again
            if frame is not None or not has_sessions or attempt == NULL_HISTORY_RETRIES:
                break
            await self._sleep(self._backoff(attempt))
        if frame is None or frame.empty:
            await self._raise_if_unknown(symbol)
            return parse.empty_daily()
        return frame[(frame.index >= pd.Timestamp(start)) & (frame.index <= pd.Timestamp(end))]

    async def get_expirations(self, symbol: str) -> list[date]:
        symbol = self._symbol(symbol)
        found = parse.expirations(await self._call("markets/options/expirations", {"symbol": symbol}))
        if not found:
            await self._raise_if_unknown(symbol)
        return found

    async def get_chain(self, symbol: str, expiration: date) -> list[OptionContract]:
        symbol = self._symbol(symbol)
        params = {"symbol": symbol, "expiration": expiration.isoformat(), "greeks": "true"}
        contracts = parse.chain(await self._call("markets/options/chains", params), symbol, expiration)
        if not contracts:
            await self._raise_if_unknown(symbol)
        return contracts

    async def get_clock(self) -> MarketClock:
        return parse.clock(await self._call("markets/clock", {}))

    async def get_calendar(self, year: int, month: int) -> list[CalendarDay]:
        if not 1 <= int(month) <= 12 or not 1900 <= int(year) <= 2200:
            raise MarketDataError(f"no such month: {year}-{month}")
        payload = await self._call("markets/calendar", {"year": f"{int(year):04d}", "month": f"{int(month):02d}"})
        return parse.calendar(payload)
