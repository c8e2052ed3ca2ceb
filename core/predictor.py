"""Published models + live data -> one Prediction (and the options levels beside it).

Features of the last CLOSED bar are built by `core.model.features.build_features`, the same function
training uses, so live and training features cannot drift apart. Every guard that makes a number
less trustworthy becomes a sentence in `Prediction.warnings` rather than a silent number.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from config import Settings
from core import calendar
from core.bar_cache import BarCache
from core.chain_cache import ChainCache
from core.daily_history import DailyHistorySource, as_trained
from core.edge import edge_status, score_bucket, side_favoured
from core.marketdata import MarketDataProvider
from core.model.features import FEATURE_NAMES, DailyHistory, atr, build_features
from core.model.model_set import features_out_of_range
from core.model_registry import LoadedModel, ModelRegistry
from core.options import compute_levels
from core.types import NY, LevelsReport, MarketDataError, Prediction, Quote

log = logging.getLogger(__name__)
MAX_MODEL_AGE_SESSIONS = 3
LEVELS_TTL_SECONDS = 60.0
FEATURE_LABELS = {"vix": "VIX", "vix_level": "VIX"}


class PredictionError(Exception):
    """A prediction cannot be made; the message is one short line for the user."""


class UnknownSymbol(PredictionError):
    pass


@dataclass
class PredictionBundle:
    prediction: Prediction
    bars: pd.DataFrame  # recent closed bars, today's session last
    prev_close: float | None
    levels: LevelsReport | None


def bar_close_time(start: pd.Timestamp, bar_minutes: int) -> datetime:
    """A bar closes bar_minutes after it starts, or at the session close on an early-close day."""
    close = start.to_pydatetime() + timedelta(minutes=bar_minutes)
    day = start.date()
    if calendar.is_session(day):
        session_close = calendar.session_bounds(day)[1]
        close = min(close, session_close)
    return close


def closed_by(bars: pd.DataFrame, now: datetime, bar_minutes: int) -> pd.DataFrame:
    """The bars that have closed by `now` (a bar closing exactly at `now` counts)."""
    end = len(bars)
    while end and bar_close_time(bars.index[end - 1], bar_minutes) > now:
        end -= 1
    return bars if end == len(bars) else bars.iloc[:end]


class Predictor:
    def __init__(self, settings: Settings, provider: MarketDataProvider, registry: ModelRegistry):
        self.settings = settings
        self.provider = provider
        self.registry = registry
        self.bars = BarCache(provider, settings.timeframe)
        self.daily = DailyHistorySource(provider)  # VIX daily: one request per new session, all symbols
        self.chains = ChainCache(provider, refresh=timedelta(minutes=settings.chain_refresh_minutes),
                                 max_dte=settings.levels_max_dte, symbols=settings.symbols)
        self._primed_quotes: tuple[datetime, dict[str, Quote]] | None = None
        self._levels_cache: dict[str, tuple[float, datetime, LevelsReport]] = {}
        # symbol -> (key of the bars and model scored, (last feature row, model outputs, ATR))
        self._scored: dict[str, tuple[tuple, tuple[pd.DataFrame, pd.Series, float]]] = {}
        self._levels_locks: dict[str, asyncio.Lock] = {}

    def check_symbol(self, symbol: str) -> str:
        sym = symbol.strip().upper()
        if sym not in self.settings.symbols:
            raise UnknownSymbol(f"unknown symbol {symbol[:12]!r}; available: {', '.join(self.settings.symbols)}")
        return sym

    def _model(self, symbol: str) -> LoadedModel:
        model = self.registry.get(symbol)
        if model is None:
            raise PredictionError(f"no published model for {symbol} {self.settings.timeframe}: run `tradebot train`")
        return model

    async def levels(self, symbol: str, *, now: datetime | None = None) -> LevelsReport:
        """Gamma/vanna levels from the live chain, cached briefly because chains are many requests."""
        symbol = self.check_symbol(symbol)
        # many chats asking at once wait for one chain download and share its cached report
        async with self._levels_locks.setdefault(symbol, asyncio.Lock()):
            return await self._levels(symbol, now)

    async def _levels(self, symbol: str, now: datetime | None) -> LevelsReport:
        now = (now or self.provider.now()).replace(microsecond=0)
        cached = self._levels_cache.get(symbol)
        if cached and time.monotonic() - cached[0] < LEVELS_TTL_SECONDS and cached[1] == now.replace(
                second=0, microsecond=0):
            return cached[2]
        quote = await self._quote(symbol, now)
        if quote is None or quote.last is None or not math.isfinite(quote.last):
            raise MarketDataError(f"no quote for {symbol}")
        # IVs and open interest from a chain up to CHAIN_REFRESH_MINUTES old, greeks at the live spot
        contracts = await self.chains.get(symbol, now)
        report = await asyncio.to_thread(
            compute_levels, symbol, float(quote.last), contracts, now,
            convention=self.settings.dealer_convention, max_dte=self.settings.levels_max_dte,
            with_other_convention=True,
        )
        report.data_source = self.provider.source
        self._levels_cache[symbol] = (time.monotonic(), now.replace(second=0, microsecond=0), report)
        return report

    async def prime_quotes(self, symbols: list[str], now: datetime) -> None:
        """One batched quotes request for a scan's symbols; their levels within `now`'s minute use it
        instead of one request each. A failure only means each symbol asks for its own."""
        if not symbols:
            return
        try:
            quotes = await self.provider.get_quotes(symbols)
        except MarketDataError as exc:
            log.warning("batched quotes unavailable (%s); symbols ask one by one", exc)
            return
        self._primed_quotes = (now.replace(second=0, microsecond=0), quotes)

    async def _quote(self, symbol: str, now: datetime) -> Quote | None:
        primed = self._primed_quotes
        if primed is not None and primed[0] == now.replace(second=0, microsecond=0) and symbol in primed[1]:
            return primed[1][symbol]
        return (await self.provider.get_quotes([symbol])).get(symbol)

    async def predict(self, symbol: str, *, now: datetime | None = None,
                      with_levels: bool = True) -> PredictionBundle:
        symbol = self.check_symbol(symbol)
        model = self._model(symbol)
        now = now or self.provider.now()
        warnings: list[str] = []
        now = self._data_now(symbol, now, warnings)
        # Only bars closed by `now`, whatever the provider returns: it keeps bars closed by ITS clock,
        # so a what-if at 09:30 would otherwise score the 09:30 bar that closes at 09:35.
        bars = _in_session(closed_by(await self.bars.get(symbol, now), now, self.settings.bar_minutes),
                           self.settings.bar_minutes)
        if bars.empty:
            raise MarketDataError(f"no bars for {symbol} closed by {now.astimezone(NY):%Y-%m-%d %H:%M}")
        daily = await self._daily(symbol, model, bars, warnings)
        levels: LevelsReport | None = None
        if with_levels:
            try:
                levels = await self.levels(symbol, now=now)
            except MarketDataError as exc:
                warnings.append(f"option chain unavailable ({exc}): levels missing")
            except Exception as exc:  # levels are extras: scores must still be given
                log.exception("levels failed for %s", symbol)
                warnings.append(f"options levels failed ({type(exc).__name__}): levels missing")
        prediction = await asyncio.to_thread(self._score, symbol, model, bars, daily, now, levels, warnings)
        return PredictionBundle(prediction, bars, _prev_close(bars), levels)

    async def _daily(self, symbol: str, model: LoadedModel, bars: pd.DataFrame,
                     warnings: list[str]) -> DailyHistory | None:
        """The daily rows the model was trained with. The cached bars hold the prior session of every
        session but their first, so the symbol's own daily is asked for only when they hold one session."""
        trained = model.manifest.get("daily_history") or {}
        if not self.daily.enabled or not (trained.get("vix") or trained.get("symbol")):
            return None
        days = bars.index.date
        daily = as_trained(await self.daily.get(symbol, days[0], days[-1], with_symbol=days[0] == days[-1]),
                           model.manifest)
        if trained.get("vix") and (daily is None or daily.vix is None):
            warnings.append("VIX daily history unavailable: the VIX percentile comes from the intraday bars, "
                            "not from daily closes as in training")
        return daily

    def _data_now(self, symbol: str, now: datetime, warnings: list[str]) -> datetime:
        """A file that ends before the latest session close is historical: predict as of its last bar,
        and say so, instead of finding no bars near the wall clock."""
        data_end = getattr(self.provider, "data_end", None)
        end = data_end(symbol) if callable(data_end) else None
        latest_close = _latest_close(now)
        if end is None or latest_close is None or end >= latest_close:
            return now
        warnings.append(f"historical data: the {self.provider.source} data ends "
                        f"{end.astimezone(NY):%Y-%m-%d %H:%M} ET; prediction as of its last bar, not now")
        return end

    def _score(self, symbol: str, model: LoadedModel, bars: pd.DataFrame, daily: DailyHistory | None,
               now: datetime, levels: LevelsReport | None, warnings: list[str]) -> Prediction:
        s = self.settings
        last, out, atr_now = self._model_outputs(symbol, model, bars, daily)
        price = float(bars["close"].iloc[-1])
        if not math.isfinite(atr_now) or atr_now <= 0:
            atr_now = float((bars["high"] - bars["low"]).tail(14).mean())
        long_better = (out["quality_long"], out["win_long"]) >= (out["quality_short"], out["win_short"])
        direction = "long" if long_better else "short"
        side = 1.0 if long_better else -1.0
        quality = float(out["quality_long"] if long_better else out["quality_short"])
        win = float(out["win_long"] if long_better else out["win_short"])
        as_of = bar_close_time(bars.index[-1], s.bar_minutes)
        vix = float(bars["vix"].iloc[-1]) if math.isfinite(bars["vix"].iloc[-1]) else None

        warnings = list(warnings) + self._guards(model, last, now, as_of)
        edge = edge_status(model.manifest, s.alerts_require_edge)
        if edge.warning:
            warnings.insert(0, edge.warning)
        quality_score = round(100.0 * min(max(quality, 0.0), 1.0), 1)
        support = levels.vanna_support if levels else []
        resistance = levels.vanna_resistance if levels else []
        return Prediction(
            symbol=symbol, as_of=as_of, price=price, vix=vix, direction=direction,
            quality_score=quality_score,
            win_probability=min(max(win, 0.0), 1.0),
            predicted_high=price * (1.0 + max(float(out["fut_high_ret"]), 0.0)),
            predicted_low=price * (1.0 + min(float(out["fut_low_ret"]), 0.0)),
            target=price + side * s.target_atr * atr_now,
            stop=price - side * s.stop_atr * atr_now,
            vanna_support=support, vanna_resistance=resistance,
            call_wall=levels.call_wall if levels else None,
            put_wall=levels.put_wall if levels else None,
            zero_gamma=levels.zero_gamma if levels else None,
            model_version=model.version,
            model_trained_at=model.manifest.get("trained_at", ""),
            data_source=self.provider.source,
            warnings=warnings,
            side_favoured=side_favoured(model.manifest, float(out["quality_long"]), float(out["quality_short"])),
            alerts_enabled=edge.alerts_enabled,
            score_history=score_bucket(model.manifest, quality_score),
        )

    def _model_outputs(self, symbol: str, model: LoadedModel, bars: pd.DataFrame,
                       daily: DailyHistory | None) -> tuple[pd.DataFrame, pd.Series, float]:
        """Features (~30 ms on 26 sessions of bars) and model outputs, reused while neither the bars,
        the daily rows nor the model changed: every /predict and scan within one bar scores the same
        last bar. The bar cache only appends or revises the last bar, so length, ends and last row
        identify the frame (a NaN in the last row only makes it miss); daily rows change per session."""
        key = (model.version, len(bars), bars.index[0], bars.index[-1], tuple(bars.iloc[-1].tolist()),
               _daily_key(daily))
        hit = self._scored.get(symbol)
        if hit is not None and hit[0] == key:
            return hit[1]
        features = build_features(bars, self.settings.bar_minutes, daily)
        last = features.iloc[[-1]][FEATURE_NAMES]
        value = (last, model.models.predict(last).iloc[0], float(atr(bars).iloc[-1]))
        self._scored[symbol] = (key, value)
        return value

    def _guards(self, model: LoadedModel, last: pd.DataFrame, now: datetime, as_of: datetime) -> list[str]:
        s = self.settings
        out: list[str] = []
        age = calendar.trading_days_between(model.trained_at, now)
        if age > MAX_MODEL_AGE_SESSIONS:
            out.append(f"model is {age} trading days old (trained {model.trained_at:%Y-%m-%d}); retrain")
        if calendar.is_open(now):
            lag = (now - as_of).total_seconds() / 60.0
            if lag > 2 * s.bar_minutes:
                out.append(f"last bar is {lag:.0f} minutes old: data may be delayed")
        else:
            out.append(f"market closed: last in-session prediction, made {as_of.astimezone(NY):%a %d %b %H:%M} ET; "
                       "its band ends at the close")
        out.extend(_vix_warnings(model.manifest, last))
        out.extend(_range_warnings(model.manifest.get("feature_ranges") or {}, last))
        return out


def _daily_key(daily: DailyHistory | None) -> tuple:
    if daily is None:
        return ()
    return tuple((len(rows), rows.index[0], rows.index[-1]) if rows is not None and len(rows) else None
                 for rows in (daily.symbol, daily.vix))


def _range_warnings(ranges: dict, last: pd.DataFrame, limit: int = 3) -> list[str]:
    out = []
    for name in features_out_of_range(ranges, last.iloc[0])[:limit]:
        value = float(last[name].iloc[0])
        lo, hi = (float(b) for b in ranges[name])
        label = FEATURE_LABELS.get(name, name)
        where = "above" if value > hi else "below"
        out.append(f"low confidence: {label} {value:.3g} {where} its training range [{lo:.3g}, {hi:.3g}]")
    return out


def _vix_warnings(manifest: dict, last: pd.DataFrame) -> list[str]:
    trained = manifest.get("trained_with_vix")
    served = math.isfinite(float(last["vix"].iloc[0]))
    if trained is True and not served:
        return ["no VIX in the data now, but the model was trained with VIX: its VIX features are empty"]
    if trained is False and served:
        return ["the model was trained without VIX (its data had none): retrain to use the VIX now available"]
    return []


def _in_session(bars: pd.DataFrame, bar_minutes: int) -> pd.DataFrame:
    """Bars up to the last one whose forecast window is still in its session. A bar closing at the
    session close has no window (nothing to forecast before the close): after the close, the prediction
    shown is the last one made in the session."""
    if len(bars) < 2:
        return bars
    start = bars.index[-1]
    day = start.date()
    if calendar.is_session(day) and bar_close_time(start, bar_minutes) >= calendar.session_bounds(day)[1]:
        return bars.iloc[:-1]
    return bars


def _latest_close(now: datetime) -> datetime | None:
    """The most recent session close at or before now."""
    day = now.astimezone(NY).date()
    for back in range(15):
        d = day - timedelta(days=back)
        if calendar.is_session(d):
            close = calendar.session_bounds(d)[1]
            if close <= now:
                return close
    return None


def _prev_close(bars: pd.DataFrame) -> float | None:
    days = bars.index.date
    last_day: date = days[-1]
    earlier = bars[days < last_day]
    return None if earlier.empty else float(earlier["close"].iloc[-1])
