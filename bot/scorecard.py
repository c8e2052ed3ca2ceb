"""The live scorecard: how past predictions turned out, so users can judge the model honestly.

`score_outcome` decides what happened after one prediction (from the bars that followed it);
`compute_scorecard` aggregates the logged outcomes (bot/formatting.py turns it into text).

Hit = the target was touched before the stop. R unit = |price - stop|: target first ->
|target - price| / R, stop first -> -1, neither by the end of the horizon -> the close-out
return / R. A bar touching both levels counts as a stop (we cannot know the order inside a bar,
so assume the worse one). A gap through the stop still counts as -1R (slippage is not modelled).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from bot.state import PredictionRow
from core.calendar import session_bounds, sessions_between
from core.types import NY

CALIBRATION_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MIN_SCORED = 10  # below this many scored predictions the rates are mostly noise; say so


class ScoringError(ValueError):
    """A prediction cannot be scored (e.g. its stop is on the wrong side of the price)."""


def _as_time(value: Any, name: str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ScoringError(f"{name} must be a timezone-aware time")
    return value.astimezone(NY)


# --------------------------------------------------------------------------- one outcome

def score_outcome(pred_row: PredictionRow, bars_after: pd.DataFrame, bar_minutes: int = 5) -> dict[str, Any]:
    """What happened after a prediction: realised high/low, which level was hit first, R.

    Reads the row's price, stop, target, direction, as_of and horizon_end. Bars (the core.types frame, index = bar start) count when they start at or
    after as_of (the close of the prediction's last bar), close by horizon_end, and close by the
    end of as_of's session. Returns realised_high, realised_low, first_hit ("target" | "stop" |
    "none"), outcome_r, bars (how many counted), exit_price. With no bar in the window (e.g. a
    prediction made at the close) bars is 0, first_hit "none", R 0 and the realised range is
    the price: the scorecard leaves such rows out.
    """
    price, stop, target = (float(pred_row.price), float(pred_row.stop), float(pred_row.target))
    direction = pred_row.direction
    as_of = _as_time(pred_row.as_of, "as_of")
    horizon_end = _as_time(pred_row.horizon_end, "horizon_end")
    if direction not in ("long", "short"):
        raise ScoringError(f"direction {direction!r} is not long or short")
    sign = 1.0 if direction == "long" else -1.0
    risk = sign * (price - stop)
    if not risk > 0:
        raise ScoringError(f"stop {stop} is not on the losing side of price {price} for a {direction}")

    window = _window(bars_after, as_of, horizon_end, timedelta(minutes=bar_minutes))
    if window.empty:
        return {"realised_high": price, "realised_low": price, "first_hit": "none", "outcome_r": 0.0,
                "bars": 0, "exit_price": price}

    first_hit, exit_price = "none", float(window["close"].iloc[-1])
    for high, low in zip(window["high"].to_numpy(), window["low"].to_numpy(), strict=True):
        stop_hit = low <= stop if direction == "long" else high >= stop
        target_hit = high >= target if direction == "long" else low <= target
        if stop_hit:  # checked first: a bar touching both is a stop
            first_hit, exit_price = "stop", stop
            break
        if target_hit:
            first_hit, exit_price = "target", target
            break
    outcome_r = -1.0 if first_hit == "stop" else sign * (exit_price - price) / risk
    return {
        "realised_high": float(window["high"].max()), "realised_low": float(window["low"].min()),
        "first_hit": first_hit, "outcome_r": float(outcome_r), "bars": len(window),
        "exit_price": float(exit_price),
    }


def _window(bars: pd.DataFrame, as_of: datetime, horizon_end: datetime, bar_len: timedelta) -> pd.DataFrame:
    if bars is None or bars.empty:
        return pd.DataFrame(columns=["high", "low", "close"])
    idx = pd.DatetimeIndex(bars.index)
    idx = idx.tz_localize(NY) if idx.tz is None else idx.tz_convert(NY)
    day = as_of.date()
    end = horizon_end
    try:
        end = min(end, session_bounds(day)[1])
    except ValueError:
        pass  # not an exchange session (test data, or CSV from elsewhere): the same-day rule below holds
    closes = idx + bar_len
    keep = (idx >= as_of) & (closes <= end) & (idx.date == day)
    out = bars.loc[keep, ["high", "low", "close"]].copy()
    out.index = idx[keep]
    return out.sort_index()


# --------------------------------------------------------------------------- aggregation

@dataclass
class _Rec:
    symbol: str
    as_of: datetime
    horizon_end: datetime
    price: float
    quality: float
    win_p: float
    pred_high: float
    pred_low: float
    alerted: bool
    scored: bool
    usable: bool  # scored with at least one bar in the window
    hit: bool
    r: float | None
    real_high: float | None
    real_low: float | None
    naive_high: float | None = None
    naive_low: float | None = None


def _records(rows: Sequence[PredictionRow]) -> list[_Rec]:
    """Typed rows, one per distinct prediction: the same symbol/as_of/direction/model asked by
    several users counts once (alerted if any copy was)."""
    by_key: dict[tuple[Any, ...], _Rec] = {}
    for row in rows:
        as_of = _as_time(row.as_of, "as_of")
        key = (row.symbol, as_of, row.direction, row.model_version)
        scored = row.scored_at is not None
        bars = row.bars
        rec = _Rec(
            symbol=row.symbol, as_of=as_of, horizon_end=_as_time(row.horizon_end, "horizon_end"),
            price=float(row.price), quality=float(row.quality_score),
            win_p=float(row.win_probability), pred_high=float(row.predicted_high),
            pred_low=float(row.predicted_low), alerted=bool(row.alerted), scored=scored,
            usable=scored and (bars is None or int(bars) > 0), hit=row.first_hit == "target",
            r=None if row.outcome_r is None else float(row.outcome_r),
            real_high=_opt_float(row.realised_high), real_low=_opt_float(row.realised_low),
        )
        seen = by_key.get(key)
        if seen is None or (rec.scored and not seen.scored):
            if seen is not None:
                rec.alerted = rec.alerted or seen.alerted
            by_key[key] = rec
        else:
            seen.alerted = seen.alerted or rec.alerted
    recs = sorted(by_key.values(), key=lambda r: r.as_of)
    _attach_naive_baseline(recs)
    return recs


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _attach_naive_baseline(recs: list[_Rec]) -> None:
    """Naive high/low = price x (1 + mean relative excursion of the same symbol's earlier
    predictions whose horizon had ended by this one's as_of) - no look-ahead."""
    by_symbol: dict[str, list[_Rec]] = {}
    for rec in recs:
        if rec.usable and rec.real_high is not None and rec.real_low is not None:
            by_symbol.setdefault(rec.symbol, []).append(rec)
    for symbol_recs in by_symbol.values():
        done = sorted(symbol_recs, key=lambda r: r.horizon_end)
        ends = [r.horizon_end for r in done]
        up_sum, dn_sum = [0.0], [0.0]
        for r in done:
            up_sum.append(up_sum[-1] + r.real_high / r.price - 1)  # type: ignore[operator]
            dn_sum.append(dn_sum[-1] + 1 - r.real_low / r.price)  # type: ignore[operator]
        for rec in symbol_recs:
            k = bisect.bisect_right(ends, rec.as_of)
            if k:
                rec.naive_high = rec.price * (1 + up_sum[k] / k)
                rec.naive_low = rec.price * (1 - dn_sum[k] / k)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _rate(recs: Sequence[_Rec]) -> float | None:
    return sum(r.hit for r in recs) / len(recs) if recs else None


def _cumulative(recs: Sequence[_Rec]) -> list[dict[str, Any]]:
    out, total = [], 0.0
    for r in recs:
        total += r.r or 0.0
        out.append({"as_of": r.as_of.isoformat(), "symbol": r.symbol, "r": round(r.r or 0.0, 4),
                    "cum_r": round(total, 4)})
    return out


def _calibration(recs: Sequence[_Rec]) -> list[dict[str, Any]]:
    out = []
    for lo, hi in zip(CALIBRATION_EDGES, CALIBRATION_EDGES[1:], strict=False):
        last = hi == CALIBRATION_EDGES[-1]
        inside = [r for r in recs if lo <= r.win_p < hi or (last and r.win_p == hi)]
        out.append({
            "bucket": f"{lo:.1f}-{hi:.1f}", "lo": lo, "hi": hi, "count": len(inside),
            "predicted": _mean([r.win_p for r in inside]), "realised": _rate(inside),
        })
    return out


def _window_stats(recs: list[_Rec], threshold: float) -> dict[str, Any]:
    usable = [r for r in recs if r.usable]
    alerts = [r for r in usable if r.alerted]
    strong = [r for r in usable if r.quality >= threshold]
    compared = [r for r in usable if r.naive_high is not None]
    mae = {
        "n": len(compared),
        "model_high": _mean([abs(r.pred_high - r.real_high) for r in compared]),  # type: ignore[operator]
        "model_low": _mean([abs(r.pred_low - r.real_low) for r in compared]),  # type: ignore[operator]
        "naive_high": _mean([abs(r.naive_high - r.real_high) for r in compared]),  # type: ignore[operator]
        "naive_low": _mean([abs(r.naive_low - r.real_low) for r in compared]),  # type: ignore[operator]
    }
    mae["beats_naive"] = (
        None if not compared
        else mae["model_high"] + mae["model_low"] < mae["naive_high"] + mae["naive_low"]
    )
    return {
        "predictions": len(recs),
        "scored": len(usable),
        "unscorable": sum(r.scored and not r.usable for r in recs),
        "alerts": sum(r.alerted for r in recs),
        "alerts_scored": len(alerts),
        "alert_hit_rate": _rate(alerts),
        "alert_avg_r": _mean([r.r or 0.0 for r in alerts]),
        "high_quality_scored": len(strong),
        "high_quality_hit_rate": _rate(strong),
        "high_quality_avg_r": _mean([r.r or 0.0 for r in strong]),
        "hit_rate": _rate(usable),
        "avg_r": _mean([r.r or 0.0 for r in usable]),
        "brier": _mean([(r.win_p - (1.0 if r.hit else 0.0)) ** 2 for r in usable]),
        "calibration": _calibration(usable),
        "mae": mae,
        "cumulative_r_alerts": _cumulative(alerts),
        "cumulative_r_high_quality": _cumulative(strong),
    }


def _recent_sessions(today: date, n: int) -> list[date]:
    return sessions_between(today - timedelta(days=2 * n + 14), today)[-n:]


def compute_scorecard(
    rows: Sequence[PredictionRow], now: datetime, threshold: float = 80, last_sessions: int = 20,
) -> dict[str, Any]:
    """Scorecard for the last `last_sessions` NYSE sessions and for all time.

    rows: e.g. StateDB.all_predictions().
    Keys: recent / all_time (window stats: counts, hit rates, avg R, brier, calibration buckets,
    mae vs the naive baseline, cumulative_r_alerts / cumulative_r_high_quality point lists),
    cumulative_r (floats, all-time alerts). Rates are None where nothing qualifies. Predictions
    after `now` are ignored; the same prediction logged twice (two users asked) counts once."""
    now = _as_time(now, "now")
    recs = [r for r in _records(rows) if r.as_of <= now]
    sessions = _recent_sessions(now.date(), max(1, int(last_sessions)))
    since = sessions[0] if sessions else now.date()
    recent = [r for r in recs if r.as_of.date() >= since]
    all_time = _window_stats(recs, threshold)
    return {
        "generated_at": now.isoformat(),
        "threshold": float(threshold),
        "last_sessions": int(last_sessions),
        "since": since.isoformat(),
        "recent": _window_stats(recent, threshold),
        "all_time": all_time,
        # running total in R after each scored alert, all time: what the performance chart plots
        "cumulative_r": [p["cum_r"] for p in all_time["cumulative_r_alerts"]],
    }


# --------------------------------------------------------------------------- text


