"""Deterministic inputs for chart tests and the chart benchmark: bars, predictions, levels, backtests."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from core.types import NY, Level, LevelsReport, Prediction, StrikeExposure


def session_bars(day: date = date(2026, 11, 27), n: int = 78, *, start: float = 600.0, seed: int = 7,
                 bar_minutes: int = 5, vix: float | None = 17.0) -> pd.DataFrame:
    """`n` bars from 09:30 New York on `day`, a seeded random walk; vix None gives an all-NaN column."""
    rng = np.random.default_rng(seed)
    opens_at = pd.Timestamp(datetime(day.year, day.month, day.day, 9, 30), tz=NY)
    idx = pd.DatetimeIndex([opens_at + pd.Timedelta(minutes=bar_minutes * i) for i in range(n)], name="time")
    close = start + np.cumsum(rng.normal(0, start * 0.0008, n))
    open_ = np.concatenate([[start], close[:-1]])
    spread = np.abs(rng.normal(0, start * 0.0006, n))
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.integers(200_000, 900_000, n).astype("float64")
    vix_col = np.full(n, np.nan) if vix is None else vix + np.cumsum(rng.normal(0, 0.05, n))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume,
                         "vix": vix_col}, index=idx)


def two_sessions(n_today: int = 78, **kw: object) -> pd.DataFrame:
    """Yesterday's full session followed by `n_today` bars of today."""
    yesterday = session_bars(date(2026, 11, 25), 78, seed=3, start=597.0)  # type: ignore[arg-type]
    today = session_bars(date(2026, 11, 27), n_today, **kw)  # type: ignore[arg-type]
    return pd.concat([yesterday, today])


def prediction(bars: pd.DataFrame, *, levels: bool = True, data_source: str = "tradier",
               direction: str = "long", quality: float = 84.0, vix: float | None = 17.3,
               bar_minutes: int = 5, warnings: list[str] | None = None) -> Prediction:
    last = float(bars["close"].iloc[-1])
    sign = 1 if direction == "long" else -1
    as_of = bars.index[-1].to_pydatetime() + timedelta(minutes=bar_minutes)
    return Prediction(
        symbol="SPY", as_of=as_of, price=last, vix=vix, direction=direction,  # type: ignore[arg-type]
        quality_score=quality, win_probability=0.63,
        predicted_high=last * 1.0025, predicted_low=last * 0.9982,
        target=last * (1 + sign * 0.002), stop=last * (1 - sign * 0.0012),
        vanna_support=[Level(last * 0.996, 0.9), Level(last * 0.992, 0.4)] if levels else [],
        vanna_resistance=[Level(last * 1.004, 0.7), Level(last * 1.03, 0.5)] if levels else [],
        call_wall=round(last * 1.006) if levels else None,
        put_wall=round(last * 0.99) if levels else None,
        zero_gamma=last * 0.998 if levels else None,
        model_version="spy-5m-20261126-0201", model_trained_at="2026-11-26T02:01:00+00:00",
        data_source=data_source, warnings=list(warnings or []),
    )


def levels_report(spot: float = 600.0, *, empty: bool = False, step: float = 1.0,
                  n_strikes: int = 120) -> LevelsReport:
    strikes: list[StrikeExposure] = []
    if not empty:
        rng = np.random.default_rng(11)
        first = round(spot - step * n_strikes / 2)
        for i in range(n_strikes):
            k = first + i * step
            dist = (k - spot) / spot
            call_oi = int(20_000 * np.exp(-((dist - 0.01) / 0.02) ** 2) + rng.integers(0, 800))
            put_oi = int(24_000 * np.exp(-((dist + 0.012) / 0.025) ** 2) + rng.integers(0, 800))
            call_gex = call_oi * 2.0e3 * np.exp(-(dist / 0.03) ** 2)
            put_gex = -put_oi * 2.2e3 * np.exp(-(dist / 0.03) ** 2)
            call_vex = call_oi * 900.0 * dist * 10
            put_vex = -put_oi * 800.0 * dist * 10
            strikes.append(StrikeExposure(k, call_oi, put_oi, call_gex, put_gex, call_gex + put_gex,
                                          call_vex, put_vex, call_vex + put_vex))
    return LevelsReport(
        symbol="SPY", as_of=datetime(2026, 11, 27, 12, 55, tzinfo=NY), spot=spot,
        convention="dealers long calls, short puts; GEX in $ per 1% move",
        expirations=[] if empty else [date(2026, 11, 27), date(2026, 12, 4)],
        strikes=strikes,
        call_wall=None if empty else round(spot * 1.01),
        put_wall=None if empty else round(spot * 0.985),
        zero_gamma=None if empty else spot * 0.997,
        vanna_support=[] if empty else [Level(spot * 0.995, 0.8)],
        vanna_resistance=[] if empty else [Level(spot * 1.006, 0.6)],
        skipped={"no greeks": 14, "zero open interest": 3} if empty else {"no greeks": 2},
    )


def calibration_rows() -> list[dict]:
    return [
        {"bucket": "60-70", "predicted": 0.65, "realised": 0.58, "count": 41},
        {"bucket": "70-80", "predicted": 0.75, "realised": 0.71, "count": 33},
        {"bucket": "80-90", "predicted": 0.85, "realised": 0.80, "count": 19},
        {"bucket": "90-100", "predicted": 0.93, "realised": 0.89, "count": 6},
    ]


def equity_points(n: int = 60) -> list[tuple[datetime, float]]:
    rng = np.random.default_rng(5)
    r = np.where(rng.random(n) < 0.58, 1.5, -1.0)
    cum = np.cumsum(r)
    t0 = datetime(2026, 8, 3, 10, 0, tzinfo=NY)
    return [(t0 + timedelta(days=int(i * 1.4), minutes=int(i * 7 % 300)), float(v)) for i, v in enumerate(cum)]
