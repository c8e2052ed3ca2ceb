"""A fake Tradier market-data server on 127.0.0.1 that speaks Tradier's wire format, for tests.

Usage::

    from tests.fakes.fake_tradier import run_fake_tradier

    async with run_fake_tradier(token="t0k", now=datetime(2025, 7, 1, 10, 7, tzinfo=NY)) as fake:
        provider = TradierProvider(token="t0k", base_url=fake.base_url, clock=fake.now)
        fake.faults.inject("rate_limit", times=2, endpoint="timesales", seconds=0.2)
        ...
        assert fake.counts["timesales"] == 3

Endpoints (under `fake.base_url`, which ends in "/v1/"): markets/quotes (GET and form POST),
markets/timesales, markets/history, markets/options/expirations, markets/options/chains,
markets/clock, markets/calendar. Endpoint names used by `counts`, `requests` and `inject`:
"quotes", "timesales", "history", "expirations", "chains", "clock", "calendar".

What it reproduces (shared/reference/tradier-api.md):
- `Authorization: Bearer <token>` required, else 401 with the plain-text body "Invalid Access Token";
  `fake.faults.revoked = True` makes every request answer that way (an expired or revoked token).
- XML (text/xml) whenever the Accept header does not ask for JSON.
- Wrapping: lists as {"plural": {"singular": X}}, one item as a bare object (or bare string for an
  expiration date), no items as a null wrapper (`{"series": null}`, `{"options": null}`, ...).
- Unknown symbols: quotes list them in `unmatched_symbols`; other endpoints answer a null wrapper.
- timesales: `interval` defaults to `tick` and `session_filter` to `all` (pre/post-market bars from
  08:00 to 17:00) exactly like Tradier, so a client that forgets them gets the wrong bars;
  `start`/`end` are Eastern "YYYY-MM-DD HH:MM", inclusive; bars go back 40 (open) / 18 (all) calendar
  days from the fake's now; the bar still forming at now IS included; `price` = (high+low)/2 and
  differs from `close`; `timestamp` is epoch seconds of the bar start.
- chains come unsorted (string order of strikes, puts first); deep in-the-money contracts have
  bid_iv/mid_iv/ask_iv 0.0 with smv_vol set; greeks use theta per day and vega, rho, phi per
  1 percentage point; `faults.missing_greeks_every = N` drops the greeks of every Nth contract.
- expirations: `{"date": [...]}`, or `{"expiration": [...]}` objects when strikes, contractSize or
  expirationType is requested.
- Rate limits: X-Ratelimit-Allowed/Used/Available/Expiry (expiry in epoch ms) in a fixed window that
  opens with the first request (`fake.rate_limit` per `fake.rate_window` seconds, default 120/60 s;
  None disables). Over the limit: 429 with a "Quota Violation ... <expiry ms>" body.

Control (Python side, no HTTP control endpoints):
- `fake.faults.inject(kind, times=1, endpoint=None, seconds=...)` queues misbehaviour for the next
  `times` matching requests. Kinds: "rate_limit" (429 + X-Ratelimit-Expiry in ms, `seconds` ahead),
  "quota" (400 with a "Quota Violation" body ending in the expiry ms, no header), "server_error"
  (500), "slow" (answer after `seconds`), "disconnect" (drop the connection), "non_json" (200
  text/html), "xml" (200 text/xml), "malformed_json" (200 truncated JSON), "null" (wrapper JSON
  null, i.e. an empty series), "null_string" (wrapper "null"), "errors" (200 with
  {"errors": {"error": ...}}), "fault" (500 with a gateway fault), "available_zero" (normal answer
  but X-Ratelimit-Available 0 and the expiry `seconds` ahead).
- `fake.faults.max_items = 1` truncates every list, so single items come back as bare objects.
- `fake.faults.too_big_span = timedelta(days=3)`: timesales ranges longer than that get the gateway
  fault `protocol.http.TooBigBody` (HTTP 500), which clients must bisect.
- `fake.set_now(dt)` / `fake.clock`: the fake's notion of now (default: the real time).
- Records: `fake.counts[endpoint]`, `fake.requests` (endpoint, method, params, monotonic and wall
  time of arrival), `fake.requests_to(endpoint)`, `fake.reset_records()`.

Simplifications: prices come from a smooth deterministic function of (symbol, minute), so every
interval aggregates consistently; sessions come from core.calendar (NYSE, with holidays and early
closes); option fields filled from trades (last, volume, change) are null or 0; index quotes have
null bid/ask.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from aiohttp import web

from core.calendar import is_session, previous_session, session_bounds, sessions_between
from core.clock import wall_clock_ny
from core.types import NY

BASE_PRICES = {"SPY": 600.0, "QQQ": 520.0, "IWM": 230.0, "VIX": 16.0, "AAPL": 230.0}
INDEXES = {"VIX"}
OPTIONABLE = {"SPY", "QQQ", "IWM", "AAPL"}
DAILY_EXPIRIES = {"SPY", "QQQ"}
LOOKBACK_DAYS = {("open", "1min"): 20, ("all", "1min"): 10, ("open", "5min"): 40, ("all", "5min"): 18,
                 ("open", "15min"): 40, ("all", "15min"): 18, ("open", "tick"): 5, ("all", "tick"): 5}
INTERVAL_MINUTES = {"tick": 1, "1min": 1, "5min": 5, "15min": 15}
ENDPOINTS = {
    "markets/quotes": "quotes",
    "markets/timesales": "timesales",
    "markets/history": "history",
    "markets/options/expirations": "expirations",
    "markets/options/chains": "chains",
    "markets/clock": "clock",
    "markets/calendar": "calendar",
}
WRAPPERS = {"quotes": "quotes", "timesales": "series", "history": "history", "expirations": "expirations",
            "chains": "options", "clock": "clock", "calendar": "calendar"}
FAULT_KINDS = {"rate_limit", "quota", "server_error", "slow", "disconnect", "non_json", "xml",
               "malformed_json", "null", "null_string", "errors", "fault", "available_zero"}


@dataclass
class RecordedRequest:
    endpoint: str
    method: str
    params: dict[str, str]
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival
    accept: str = ""
    status: int = 0  # filled in once the answer is decided


@dataclass
class _Fault:
    kind: str
    remaining: int
    endpoint: str | None
    symbol: str | None
    seconds: float


@dataclass
class Faults:
    revoked: bool = False
    max_items: int | None = None
    too_big_span: timedelta | None = None
    missing_greeks_every: int = 0
    _queue: list[_Fault] = field(default_factory=list)

    def inject(self, kind: str, times: int = 1, endpoint: str | None = None, seconds: float = 0.3,
               symbol: str | None = None) -> None:
        """Misbehave on the next `times` requests to `endpoint` (any if None) naming `symbol` (any if None)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")
        if endpoint is not None and endpoint not in WRAPPERS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(WRAPPERS)}")
        self._queue.append(_Fault(kind, times, endpoint, symbol, seconds))

    def clear(self) -> None:
        self._queue.clear()
        self.revoked = False
        self.max_items = None
        self.too_big_span = None
        self.missing_greeks_every = 0

    def take(self, endpoint: str, params: dict[str, str]) -> _Fault | None:
        named = {s.strip().upper() for s in (params.get("symbol", "") + "," + params.get("symbols", "")).split(",")}
        for fault in self._queue:
            if fault.remaining > 0 and fault.endpoint in (None, endpoint) and (
                    fault.symbol is None or fault.symbol.upper() in named):
                fault.remaining -= 1
                return fault
        return None


# ----------------------------------------------------------------------------- deterministic data

def minute_prices(symbol: str, epoch_minutes: np.ndarray) -> np.ndarray:
    """A smooth, deterministic price path: the same minute always has the same price."""
    base = BASE_PRICES.get(symbol, 100.0)
    seed = sum(ord(c) for c in symbol)
    m = epoch_minutes.astype("float64")
    # a month-long swing, an intraday wiggle and minute noise; periods in calendar minutes
    wave = (0.04 * np.sin(m / 43200.0 * 2 * math.pi + seed) + 0.004 * np.sin(m / 37.0 + seed)
            + 0.0015 * np.sin(m / 5.3 + 2 * seed))
    return np.round(base * (1 + wave), 4)


def minute_volumes(symbol: str, epoch_minutes: np.ndarray) -> np.ndarray:
    if symbol in INDEXES:
        return np.zeros(len(epoch_minutes), dtype="int64")
    return 500 + (epoch_minutes.astype("int64") * 7919) % 1000


def bar(symbol: str, start_epoch: int, minutes: int) -> dict[str, Any]:
    mins = np.arange(start_epoch // 60, start_epoch // 60 + minutes)
    p = minute_prices(symbol, mins)
    v = minute_volumes(symbol, mins)
    high, low = float(p.max()), float(p.min())
    start = datetime.fromtimestamp(start_epoch, NY)
    return {
        "time": start.strftime("%Y-%m-%dT%H:%M:%S"), "timestamp": start_epoch,
        "price": round((high + low) / 2, 5), "open": float(p[0]), "high": high, "low": low,
        "close": float(p[-1]), "volume": int(v.sum()),
        "vwap": round(float((p * np.maximum(v, 1)).sum() / np.maximum(v, 1).sum()), 5),
    }


def price_at(symbol: str, when: datetime) -> float:
    """Last trade price at `when`: inside a session the current minute, else the last close."""
    day = when.date()
    if is_session(day):
        o, c = session_bounds(day)
        if when >= o:
            at = min(when, c - timedelta(minutes=1))
            return float(minute_prices(symbol, np.array([int(at.timestamp()) // 60]))[0])
    prev = previous_session(day)
    return session_close_price(symbol, prev)


def session_close_price(symbol: str, day: date) -> float:
    _, c = session_bounds(day)
    return float(minute_prices(symbol, np.array([int(c.timestamp()) // 60 - 1]))[0])


def _norm_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def black_scholes(spot: float, strike: float, years: float, iv: float, kind: str, rate: float = 0.04
                  ) -> dict[str, float]:
    sq = math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * iv * iv) * years) / (iv * sq)
    d2 = d1 - iv * sq
    disc = math.exp(-rate * years)
    if kind == "call":
        price = spot * _norm_cdf(d1) - strike * disc * _norm_cdf(d2)
        delta = _norm_cdf(d1)
        theta = -spot * _norm_pdf(d1) * iv / (2 * sq) - rate * strike * disc * _norm_cdf(d2)
        rho = strike * years * disc * _norm_cdf(d2)
    else:
        price = strike * disc * _norm_cdf(-d2) - spot * _norm_cdf(-d1)
        delta = _norm_cdf(d1) - 1
        theta = -spot * _norm_pdf(d1) * iv / (2 * sq) + rate * strike * disc * _norm_cdf(-d2)
        rho = -strike * years * disc * _norm_cdf(-d2)
    return {"price": max(price, 0.0), "delta": delta, "gamma": _norm_pdf(d1) / (spot * iv * sq),
            "theta": theta / 365.0, "vega": spot * _norm_pdf(d1) * sq / 100.0, "rho": rho / 100.0,
            "phi": -spot * years * _norm_cdf(d1 if kind == "call" else -d1) / 100.0}


def _third_friday(day: date) -> bool:
    return day.weekday() == 4 and 15 <= day.day <= 21


def _wrap(items: list[Any]) -> Any:
    """Tradier's list encoding: one item bare, several as a list (no items handled by the caller)."""
    return items[0] if len(items) == 1 else items


def _to_xml(name: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_to_xml(k, v) for k, v in value.items())
        return f"<{name}>{inner}</{name}>"
    if isinstance(value, list):
        return "".join(_to_xml(name, v) for v in value)
    if value is None:
        return f"<{name}/>"
    return f"<{name}>{escape(str(value))}</{name}>"


# ----------------------------------------------------------------------------- the server

class FakeTradier:
    def __init__(self, token: str = "test-token", now: datetime | None = None) -> None:
        self.token = token
        self.faults = Faults()
        self.clock: Callable[[], datetime] = wall_clock_ny  # the suite pins it (tests/conftest.py)
        if now is not None:
            self.set_now(now)
        self.rate_limit: int | None = 120
        self.rate_window = 60.0
        self.counts: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._window_start: float | None = None
        self._window_used = 0
        self.app = web.Application()
        self.app.router.add_route("*", "/v1/{path:.*}", self._handle)

    def set_now(self, now: datetime) -> None:
        fixed = now if now.tzinfo else now.replace(tzinfo=NY)
        self.clock = lambda: fixed

    def now(self) -> datetime:
        return self.clock().astimezone(NY)

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.endpoint == endpoint]

    def start_new_rate_window(self) -> None:
        """As if Tradier's fixed rate window had rolled over (a benchmark jumping minutes ahead)."""
        self._window_start, self._window_used = None, 0

    def reset_records(self) -> None:
        self.counts.clear()
        self.requests.clear()

    # ------------------------------------------------------------------ plumbing

    def _rate_headers(self, used_up: bool = False, expiry_in: float | None = None) -> dict[str, str]:
        allowed = self.rate_limit or 120
        wall = time.time()
        if expiry_in is not None:
            expiry = wall + expiry_in
        else:
            expiry = (self._window_start or wall) + self.rate_window
        available = 0 if used_up else max(0, allowed - self._window_used)
        return {"X-Ratelimit-Allowed": str(allowed), "X-Ratelimit-Used": str(self._window_used),
                "X-Ratelimit-Available": str(available), "X-Ratelimit-Expiry": str(int(expiry * 1000))}

    def _count_window(self) -> bool:
        """Count this request in Tradier's fixed window; True when it is over the limit."""
        wall = time.time()
        if self._window_start is None or wall >= self._window_start + self.rate_window:
            self._window_start, self._window_used = wall, 0
        self._window_used += 1
        return self.rate_limit is not None and self._window_used > self.rate_limit

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = ENDPOINTS.get(request.match_info["path"].strip("/"))
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        record = RecordedRequest(endpoint or request.path, request.method, params, time.monotonic(),
                                 time.time(), request.headers.get("Accept", ""))
        self.requests.append(record)
        self.counts[record.endpoint] += 1
        response = await self._answer(request, endpoint, params)
        record.status = response.status
        return response

    async def _answer(self, request: web.Request, endpoint: str | None, params: dict[str, str]
                      ) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}" or self.faults.revoked:
            return web.Response(status=401, text="Invalid Access Token", content_type="text/plain")
        if endpoint is None:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        if self._count_window():
            headers = self._rate_headers(used_up=True)
            return web.Response(status=429, headers=headers, content_type="text/plain",
                                text=f"Quota Violation: limit reached, resets {headers['X-Ratelimit-Expiry']}")
        fault = self.faults.take(endpoint, params)
        headers = self._rate_headers()
        if fault is not None:
            early = await self._fault_response(fault, request)
            if early is not None:
                return early
            if fault.kind == "available_zero":
                headers = self._rate_headers(used_up=True, expiry_in=fault.seconds)
        try:
            payload, status = getattr(self, f"_{endpoint}")(params)
        except ValueError as exc:
            payload, status = {"errors": {"error": str(exc)}}, 400
        if fault is not None and fault.kind in ("null", "null_string"):
            payload = {WRAPPERS[endpoint]: None if fault.kind == "null" else "null"}
        wants_json = "application/json" in request.headers.get("Accept", "")
        if not wants_json or (fault is not None and fault.kind == "xml"):
            name, inner = next(iter(payload.items()))
            return web.Response(status=status, headers=headers, content_type="text/xml",
                                text='<?xml version="1.0" encoding="UTF-8"?>' + _to_xml(name, inner))
        return web.Response(status=status, headers=headers, content_type="application/json",
                            text=json.dumps(payload))

    async def _fault_response(self, fault: _Fault, request: web.Request) -> web.StreamResponse | None:
        kind = fault.kind
        if kind == "slow":
            await asyncio.sleep(fault.seconds)
            return None
        if kind == "rate_limit":
            return web.Response(status=429, text="Rate limit exceeded", content_type="text/plain",
                                headers={"X-Ratelimit-Expiry": str(int((time.time() + fault.seconds) * 1000))})
        if kind == "quota":
            expiry_ms = int((time.time() + fault.seconds) * 1000)
            return web.Response(status=400, content_type="text/plain",
                                text=f"Quota Violation. Too many requests; the window resets at {expiry_ms}")
        if kind == "server_error":
            return web.Response(status=500, text="Internal Server Error", content_type="text/plain")
        if kind == "disconnect":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if kind == "non_json":
            return web.Response(status=200, content_type="text/html",
                                text="<html><body>Service temporarily unavailable</body></html>")
        if kind == "malformed_json":
            return web.Response(status=200, content_type="application/json", text='{"series": {"data": [')
        if kind == "errors":
            return web.json_response({"errors": {"error": "Invalid Parameter: symbol"}})
        if kind == "fault":
            return web.json_response({"fault": {"faultstring": "Gateway failure",
                                                "detail": {"errorcode": "messaging.adaptors.http.flow"}}},
                                     status=500)
        return None

    def _limit(self, items: list[Any]) -> list[Any]:
        return items[: self.faults.max_items] if self.faults.max_items is not None else items

    # ------------------------------------------------------------------ endpoints

    def _quote(self, symbol: str, now: datetime) -> dict[str, Any]:
        last = price_at(symbol, now)
        current = now.date() if is_session(now.date()) else previous_session(now.date())
        prev_close = session_close_price(symbol, previous_session(current))
        index = symbol in INDEXES
        stamp = int(now.timestamp() * 1000)
        return {
            "symbol": symbol, "description": f"{symbol} fake", "exch": "Q",
            "type": "index" if index else "etf", "last": last, "change": round(last - prev_close, 4),
            "change_percentage": round((last / prev_close - 1) * 100, 2), "volume": 0 if index else 1_000_000,
            "average_volume": 0 if index else 50_000_000, "last_volume": 0 if index else 100,
            "trade_date": stamp, "open": None, "high": None, "low": None, "close": None,
            "prevclose": prev_close, "week_52_high": round(last * 1.2, 2), "week_52_low": round(last * 0.8, 2),
            "bid": None if index else round(last - 0.01, 2), "bidsize": 0 if index else 5,
            "bidexch": "Q", "bid_date": stamp, "ask": None if index else round(last + 0.01, 2),
            "asksize": 0 if index else 7, "askexch": "Q", "ask_date": stamp,
            "root_symbols": None if index else symbol,
        }

    def _quotes(self, params: dict[str, str]) -> tuple[dict[str, Any], int]:
        symbols = [s.strip().upper() for s in params.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            raise ValueError("Invalid Parameter: symbols")
        now = self.now()
        found = self._limit([self._quote(s, now) for s in symbols if s in BASE_PRICES])
        unmatched = [s for s in symbols if s not in BASE_PRICES]
        body: dict[str, Any] = {}
        if found:
            body["quote"] = _wrap(found)
        if unmatched:
            body["unmatched_symbols"] = {"symbol": _wrap(unmatched)}
        return {"quotes": body}, 200

    @staticmethod
    def _parse_minute(text: str | None) -> datetime | None:
        if not text:
            return None
        for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d"):
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=NY)
            except ValueError:
                continue
        raise ValueError("Invalid Parameter: start/end must be YYYY-MM-DD HH:MM")

    def _timesales(self, params: dict[str, str]) -> tuple[dict[str, Any], int]:
        symbol = params.get("symbol", "").upper()
        interval = params.get("interval", "tick")
        session_filter = params.get("session_filter", "all")
        if interval not in INTERVAL_MINUTES or session_filter not in ("all", "open"):
            raise ValueError("Invalid Parameter: interval/session_filter")
        now = self.now()
        start = self._parse_minute(params.get("start")) or datetime.combine(now.date(), datetime.min.time(), NY)
        end = self._parse_minute(params.get("end")) or now
        if self.faults.too_big_span is not None and end - start > self.faults.too_big_span:
            return {"fault": {"faultstring": "Body buffer overflow",
                              "detail": {"errorcode": "protocol.http.TooBigBody"}}}, 500
        if symbol not in BASE_PRICES:
            return {"series": None}, 200
        oldest = now - timedelta(days=LOOKBACK_DAYS[(session_filter, interval)])
        step = INTERVAL_MINUTES[interval]
        rows: list[dict[str, Any]] = []
        for day in sessions_between(start.date(), end.date()):
            o, c = session_bounds(day)
            if session_filter == "all":
                o, c = o.replace(hour=8, minute=0), max(c, c.replace(hour=17, minute=0))
            t = o
            while t < c:
                if start <= t <= end and t <= now and t >= oldest:
                    epoch = int(t.timestamp())
                    if interval == "tick":
                        full = bar(symbol, epoch, 1)
                        rows.append({k: full[k] for k in ("time", "timestamp", "price", "volume")})
                    else:
                        rows.append(bar(symbol, epoch, step))
                t += timedelta(minutes=step)
        rows = self._limit(rows)
        return {"series": {"data": _wrap(rows)} if rows else None}, 200

    def _history(self, params: dict[str, str]) -> tuple[dict[str, Any], int]:
        symbol = params.get("symbol", "").upper()
        now = self.now()
        try:
            start = date.fromisoformat(params.get("start", (now.date() - timedelta(days=365)).isoformat()))
            end = date.fromisoformat(params.get("end", now.date().isoformat()))
        except ValueError as exc:
            raise ValueError("Invalid Parameter: start/end must be YYYY-MM-DD") from exc
        if symbol not in BASE_PRICES:
            return {"history": None}, 200
        rows = []
        for day in sessions_between(start, min(end, now.date())):
            o, c = session_bounds(day)
            last = min(c, now)
            if last <= o:
                continue
            mins = np.arange(int(o.timestamp()) // 60, int(last.timestamp()) // 60)
            p = minute_prices(symbol, mins)
            rows.append({"date": day.isoformat(), "open": float(p[0]), "high": float(p.max()),
                         "low": float(p.min()), "close": float(p[-1]),
                         "volume": int(minute_volumes(symbol, mins).sum())})
        rows = self._limit(rows)
        return {"history": {"day": _wrap(rows)} if rows else None}, 200

    def expiration_dates(self, symbol: str) -> list[date]:
        if symbol not in OPTIONABLE:
            return []
        today = self.now().date()
        out: set[date] = set()
        day = today
        while len(out) < 8 and day < today + timedelta(days=120):
            if day.weekday() == 4 and is_session(day):
                out.add(day)
            day += timedelta(days=1)
        if symbol in DAILY_EXPIRIES:
            out.update(d for d in sessions_between(today, today + timedelta(days=7)))
        return sorted(out)

    def _expirations(self, params: dict[str, str]) -> tuple[dict[str, Any], int]:
        symbol = params.get("symbol", "").upper()
        dates = self._limit(self.expiration_dates(symbol))
        if not dates:
            return {"expirations": None}, 200
        detailed = any(params.get(k) == "true" for k in ("strikes", "contractSize", "expirationType"))
        if not detailed:
            return {"expirations": {"date": _wrap([d.isoformat() for d in dates])}}, 200
        spot = price_at(symbol, self.now())
        entries = [{"date": d.isoformat(), "contract_size": 100,
                    "expiration_type": "standard" if _third_friday(d) else "weeklys",
                    "strikes": {"strike": _wrap(self._strikes(spot))}} for d in dates]
        return {"expirations": {"expiration": _wrap(entries)}}, 200

    @staticmethod
    def _strikes(spot: float) -> list[float]:
        center = round(spot)
        return [float(center + k) for k in range(-15, 16)]

    def _chains(self, params: dict[str, str]) -> tuple[dict[str, Any], int]:
        symbol = params.get("symbol", "").upper()
        try:
            expiry = date.fromisoformat(params.get("expiration", ""))
        except ValueError as exc:
            raise ValueError("Invalid Parameter: expiration") from exc
        if expiry not in self.expiration_dates(symbol):
            return {"options": None}, 200
        now = self.now()
        spot = price_at(symbol, now)
        expires_at = datetime.combine(expiry, datetime.min.time(), NY).replace(hour=16)
        years = max((expires_at - now).total_seconds() / (365 * 86400), 1 / (365 * 24))
        with_greeks = params.get("greeks") == "true"
        contracts = []
        for kind in ("put", "call"):
            for strike in sorted(self._strikes(spot), key=str):  # string order, like a real fixture
                contracts.append(self._contract(symbol, expiry, strike, kind, spot, years, now, with_greeks))
        if self.faults.missing_greeks_every:
            for i in range(0, len(contracts), self.faults.missing_greeks_every):
                contracts[i]["greeks"] = None
        contracts = self._limit(contracts)
        return {"options": {"option": _wrap(contracts)} if contracts else None}, 200

    def _contract(self, symbol: str, expiry: date, strike: float, kind: str, spot: float, years: float,
                  now: datetime, with_greeks: bool) -> dict[str, Any]:
        moneyness = (strike - spot) / spot
        iv = 0.16 + 0.8 * moneyness * moneyness - 0.1 * moneyness
        g = black_scholes(spot, strike, years, iv, kind)
        price = g["price"]
        occ = f"{symbol}{expiry:%y%m%d}{kind[0].upper()}{int(round(strike * 1000)):08d}"
        open_interest = int(2000 * math.exp(-(moneyness / 0.02) ** 2)) + (int(strike) * 37) % 300
        row: dict[str, Any] = {
            "symbol": occ, "description": f"{symbol} {expiry:%b %d %Y} ${strike:.2f} {kind.title()}",
            "exch": "Z", "type": "option", "last": None, "change": None, "volume": 0, "open": None,
            "high": None, "low": None, "close": None, "bid": round(max(price - 0.02, 0.0), 2),
            "ask": round(price + 0.02, 2), "underlying": symbol, "strike": strike, "change_percentage": None,
            "average_volume": 0, "last_volume": 0, "trade_date": 0, "prevclose": None,
            "week_52_high": 0.0, "week_52_low": 0.0, "bidsize": 10, "bidexch": "Z",
            "bid_date": int(now.timestamp() * 1000), "asksize": 10, "askexch": "Z",
            "ask_date": int(now.timestamp() * 1000), "open_interest": open_interest, "contract_size": 100,
            "expiration_date": expiry.isoformat(),
            "expiration_type": "standard" if _third_friday(expiry) else "weeklys",
            "option_type": kind, "root_symbol": symbol,
        }
        if with_greeks:
            deep = abs(g["delta"]) > 0.98
            updated = now.replace(minute=0, second=8, microsecond=0)
            row["greeks"] = {
                "delta": round(g["delta"], 6), "gamma": round(g["gamma"], 6), "theta": round(g["theta"], 6),
                "vega": round(g["vega"], 6), "rho": round(g["rho"], 6), "phi": round(g["phi"], 6),
                "bid_iv": 0.0 if deep else round(iv * 0.97, 6), "mid_iv": 0.0 if deep else round(iv, 6),
                "ask_iv": 0.0 if deep else round(iv * 1.03, 6), "smv_vol": round(iv, 6),
                "updated_at": updated.strftime("%Y-%m-%d %H:%M:%S"),
            }
        return row

    def _clock(self, params: dict[str, str]) -> tuple[dict[str, Any], int]:
        now = self.now()
        day = now.date()
        hhmm = now.strftime("%H:%M")
        state, next_change, next_state = "closed", "07:00", "premarket"
        if is_session(day):
            o, c = session_bounds(day)
            pre, post = o.replace(hour=7, minute=0), c.replace(hour=20, minute=0)
            if pre <= now < o:
                state, next_change, next_state = "premarket", o.strftime("%H:%M"), "open"
            elif o <= now < c:
                state, next_change, next_state = "open", c.strftime("%H:%M"), "postmarket"
            elif c <= now < post:
                state, next_change, next_state = "postmarket", "20:00", "closed"
        descriptions = {"open": "Market is open from 09:30 to 16:00",
                        "premarket": "Market is in premarket from 07:00 to 09:24",
                        "postmarket": "Market is in postmarket from 16:00 to 20:00",
                        "closed": f"Market is closed ({hhmm})"}
        return {"clock": {"date": day.isoformat(), "description": descriptions[state], "state": state,
                          "timestamp": int(now.timestamp()), "next_change": next_change,
                          "next_state": next_state}}, 200

    def _calendar(self, params: dict[str, str]) -> tuple[dict[str, Any], int]:
        now = self.now()
        try:
            month = int(params.get("month", now.month))
            year = int(params.get("year", now.year))
            first = date(year, month, 1)
        except ValueError as exc:
            raise ValueError("Invalid Parameter: month/year") from exc
        days = []
        day = first
        while day.month == month:
            if is_session(day):
                o, c = session_bounds(day)
                days.append({"date": day.isoformat(), "status": "open", "description": "Market is open",
                             "premarket": {"start": "07:00", "end": "09:24"},
                             "open": {"start": o.strftime("%H:%M"), "end": c.strftime("%H:%M")},
                             "postmarket": {"start": c.strftime("%H:%M"), "end": "20:00"}})
            else:
                days.append({"date": day.isoformat(), "status": "closed", "description": "Market is closed"})
            day += timedelta(days=1)
        days = self._limit(days)
        return {"calendar": {"month": month, "year": year, "days": {"day": _wrap(days)}}}, 200


@asynccontextmanager
async def run_fake_tradier(token: str = "test-token", now: datetime | None = None, *,
                           cancel_abandoned: bool = False) -> AsyncIterator[FakeTradier]:
    """Serve a FakeTradier on 127.0.0.1 (free port) for the duration of the block.

    cancel_abandoned: a request the client gave up on ends with it (a slow fault's handler is
    cancelled), so shutdown does not wait out a long injected delay."""
    fake = FakeTradier(token=token, now=now)
    options = {"shutdown_timeout": 0.2, "handler_cancellation": True} if cancel_abandoned else {}
    runner = web.AppRunner(fake.app, access_log=None, **options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.base_url = f"http://{host}:{port}/v1/"
    try:
        yield fake
    finally:
        await runner.cleanup()
