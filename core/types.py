"""Plain data shared by every layer.

Bars travel as pandas DataFrames (see `BAR_COLUMNS`): index = tz-aware DatetimeIndex in
America/New_York holding each bar's START time, sorted and unique, named "time"; columns
open, high, low, close, volume and vix (the VIX level at that bar's close, NaN where unknown).
A bar with start t and length L closes at t + L.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import pandas as pd

NY = ZoneInfo("America/New_York")
BAR_COLUMNS = ["open", "high", "low", "close", "volume", "vix"]
DataSource = Literal["tradier", "simulated", "csv"]


class MarketDataError(Exception):
    """Market data could not be fetched or parsed. The message is short and safe to show."""


class UnknownSymbolError(MarketDataError):
    """The provider does not know the symbol."""


def empty_bars() -> pd.DataFrame:
    idx = pd.DatetimeIndex([], tz=NY, name="time")
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS}, index=idx)


def normalise_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Coerce a bar frame to the shared convention (columns, dtypes, tz, order, uniqueness)."""
    if df.empty:
        return empty_bars()
    out = df.copy()
    if "vix" not in out.columns:
        out["vix"] = float("nan")
    out = out[BAR_COLUMNS].astype("float64")
    idx = pd.DatetimeIndex(out.index)
    idx = idx.tz_localize(NY) if idx.tz is None else idx.tz_convert(NY)
    out.index = idx.rename("time")
    out = out[~out.index.duplicated(keep="last")].sort_index()
    return out


@dataclass(frozen=True)
class Quote:
    symbol: str
    last: float | None
    bid: float | None = None
    ask: float | None = None
    prevclose: float | None = None
    volume: int = 0
    timestamp: datetime | None = None


@dataclass(frozen=True)
class OptionContract:
    symbol: str  # OCC symbol
    underlying: str
    expiration: date
    strike: float
    option_type: Literal["call", "put"]
    bid: float | None
    ask: float | None
    last: float | None
    open_interest: int
    volume: int = 0
    mid_iv: float | None = None
    smv_vol: float | None = None
    delta: float | None = None
    gamma: float | None = None
    greeks_updated_at: datetime | None = None


@dataclass(frozen=True)
class MarketClock:
    now: datetime
    state: Literal["premarket", "open", "postmarket", "closed"]
    next_change: datetime | None = None
    description: str = ""


@dataclass(frozen=True)
class CalendarDay:
    day: date
    status: Literal["open", "closed"]
    open: datetime | None = None
    close: datetime | None = None


@dataclass
class Level:
    price: float
    strength: float  # 0..1

    def to_dict(self) -> dict[str, float]:
        return {"price": round(self.price, 2), "strength": round(self.strength, 3)}


@dataclass
class Prediction:
    """One prediction; `to_dict` gives exactly the JSON keys of `tradebot predict --json`."""

    symbol: str
    as_of: datetime  # close time of the last closed bar, New York time
    price: float
    vix: float | None
    direction: Literal["long", "short"]
    quality_score: float
    win_probability: float
    predicted_high: float
    predicted_low: float
    target: float
    stop: float
    vanna_support: list[Level]
    vanna_resistance: list[Level]
    call_wall: float | None
    put_wall: float | None
    zero_gamma: float | None
    model_version: str
    model_trained_at: str
    data_source: str
    warnings: list[str] = field(default_factory=list)
    # False: the model has not shown it can pick the side, or the two sides score alike
    side_favoured: bool = True
    # False: scans send no alerts for this symbol (no demonstrated edge and ALERTS_REQUIRE_EDGE)
    alerts_enabled: bool = True
    # walk-forward stats of the trade-quality bucket this score falls in ({"low", "high", "count", ...})
    score_history: dict | None = None

    def to_dict(self) -> dict[str, object]:
        def r(x: float | None, nd: int = 2) -> float | None:
            return None if x is None else round(float(x), nd)

        return {
            "symbol": self.symbol,
            "as_of": self.as_of.astimezone(NY).isoformat(),
            "price": r(self.price),
            "vix": r(self.vix),
            "direction": self.direction,
            "quality_score": r(self.quality_score, 1),
            "win_probability": r(self.win_probability, 4),
            "predicted_high": r(self.predicted_high),
            "predicted_low": r(self.predicted_low),
            "target": r(self.target),
            "stop": r(self.stop),
            "vanna_support": [lv.to_dict() for lv in self.vanna_support],
            "vanna_resistance": [lv.to_dict() for lv in self.vanna_resistance],
            "call_wall": r(self.call_wall),
            "put_wall": r(self.put_wall),
            "zero_gamma": r(self.zero_gamma),
            "model_version": self.model_version,
            "model_trained_at": self.model_trained_at,
            "data_source": self.data_source,
            "warnings": list(self.warnings),
            "side_favoured": self.side_favoured,
            "alerts_enabled": self.alerts_enabled,
            "score_history": self.score_history,
        }


@dataclass
class StrikeExposure:
    strike: float
    call_oi: int
    put_oi: int
    call_gex: float
    put_gex: float
    net_gex: float
    call_vex: float
    put_vex: float
    net_vex: float

    def to_dict(self) -> dict[str, float]:
        return {
            "strike": self.strike, "call_oi": self.call_oi, "put_oi": self.put_oi,
            "call_gex": round(self.call_gex, 2), "put_gex": round(self.put_gex, 2),
            "net_gex": round(self.net_gex, 2), "call_vex": round(self.call_vex, 2),
            "put_vex": round(self.put_vex, 2), "net_vex": round(self.net_vex, 2),
        }


@dataclass(frozen=True)
class ConventionView:
    """Zero gamma and the vanna levels under another dealer convention; the walls are repeated as they
    are (picked by the size of GEX, so no convention moves them)."""

    convention: str  # the convention's name, e.g. "short_calls_short_puts"
    call_wall: float | None
    put_wall: float | None
    zero_gamma: float | None
    vanna_support: list[Level]
    vanna_resistance: list[Level]

    def to_dict(self) -> dict[str, object]:
        return {
            "convention": self.convention,
            "call_wall": self.call_wall,
            "put_wall": self.put_wall,
            "zero_gamma": None if self.zero_gamma is None else round(self.zero_gamma, 2),
            "vanna_support": [lv.to_dict() for lv in self.vanna_support],
            "vanna_resistance": [lv.to_dict() for lv in self.vanna_resistance],
        }


@dataclass
class LevelsReport:
    """Dealer gamma/vanna exposure and the levels derived from it; `to_dict` gives exactly the JSON
    keys of `tradebot levels --json` (plus nothing else)."""

    symbol: str
    as_of: datetime
    spot: float
    convention: str  # e.g. "dealers long calls, short puts"
    expirations: list[date]
    strikes: list[StrikeExposure]
    call_wall: float | None
    put_wall: float | None
    zero_gamma: float | None
    vanna_support: list[Level]
    vanna_resistance: list[Level]
    skipped: dict[str, int]  # reason -> count of contracts left out
    data_source: str = "unknown"  # tradier, simulated or csv: set by whoever fetched the chain
    other_convention: ConventionView | None = None  # the same chain under the other convention

    def to_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "as_of": self.as_of.astimezone(NY).isoformat(),
            "spot": round(self.spot, 2),
            "convention": self.convention,
            "expirations": [d.isoformat() for d in self.expirations],
            "strikes": [s.to_dict() for s in self.strikes],
            "call_wall": self.call_wall,
            "put_wall": self.put_wall,
            "zero_gamma": None if self.zero_gamma is None else round(self.zero_gamma, 2),
            "vanna_support": [lv.to_dict() for lv in self.vanna_support],
            "vanna_resistance": [lv.to_dict() for lv in self.vanna_resistance],
            "skipped": dict(self.skipped),
            "data_source": self.data_source,
            "other_convention": None if self.other_convention is None else self.other_convention.to_dict(),
        }
