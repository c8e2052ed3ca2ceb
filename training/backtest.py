"""Replay of out-of-sample predictions: what the alerts would have done, and how honest the
probabilities were. Always reports, also when there were no alerts or no edge."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

N_BINS = 10


class BacktestError(ValueError):
    """The predictions and labels cannot be replayed together."""


def _r(x: float, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def calibration_table(predicted: np.ndarray, realised: np.ndarray, n_bins: int = N_BINS) -> list[dict]:
    """Rows by predicted-probability decile: mean predicted vs realised rate, and count."""
    ok = np.isfinite(predicted) & np.isfinite(realised)
    predicted, realised = predicted[ok], realised[ok]
    if len(predicted) == 0:
        return []
    ranks = pd.Series(predicted).rank(method="first").to_numpy()
    bins = np.minimum((ranks - 1) * n_bins // len(predicted), n_bins - 1).astype(int)
    rows = []
    for b in range(n_bins):
        sel = bins == b
        if not sel.any():
            continue
        rows.append({
            "decile": b + 1,
            "lo": _r(predicted[sel].min()),
            "hi": _r(predicted[sel].max()),
            "predicted": _r(predicted[sel].mean()),
            "realised": _r(realised[sel].mean()),
            "count": int(sel.sum()),
        })
    return rows


def _select_alerts(times: pd.DatetimeIndex, candidate: np.ndarray, cooldown: pd.Timedelta | None) -> np.ndarray:
    if cooldown is None or cooldown <= pd.Timedelta(0):
        return candidate
    chosen = np.zeros_like(candidate)
    last: pd.Timestamp | None = None
    for pos in np.flatnonzero(candidate):
        if last is None or times[pos] - last >= cooldown:
            chosen[pos] = True
            last = times[pos]
    return chosen


def run_backtest(oos: pd.DataFrame, labels: pd.DataFrame, threshold: float = 80,
                 cooldown: pd.Timedelta | None = None) -> dict:
    """Alerts fire where the better side's quality score (100 x probability) is >= threshold; each
    alert is scored with that side's realised outcome (target hit, R). `cooldown` thins repeated alerts."""
    need = ["win_long", "win_short", "quality_long", "quality_short"]
    missing = [c for c in need if c not in oos.columns]
    if missing:
        raise BacktestError(f"predictions lack column {missing[0]!r}")
    if not oos.index.isin(labels.index).all():
        raise BacktestError("some predictions have no label row")
    truth = labels.loc[oos.index]
    keep = truth["complete"].astype(bool).to_numpy()
    pred, truth = oos[keep], truth[keep]

    score_long = 100 * pred["quality_long"].to_numpy()
    score_short = 100 * pred["quality_short"].to_numpy()
    is_long = score_long >= score_short
    score = np.where(is_long, score_long, score_short)
    alert = _select_alerts(pred.index, score >= threshold, cooldown)
    win = np.where(is_long, truth["win_long"], truth["win_short"])[alert]
    outcome = np.where(is_long, truth["outcome_r_long"], truth["outcome_r_short"])[alert]
    times = pred.index[alert]
    equity = np.cumsum(outcome)
    drawdown = float((np.maximum.accumulate(np.r_[0.0, equity]) - np.r_[0.0, equity]).max())

    n = int(alert.sum())
    avg_r = float(outcome.mean()) if n else float("nan")
    if n == 0:
        verdict = f"no alerts at score >= {threshold:g} in {len(pred)} out-of-sample bars"
    elif avg_r <= 0:
        verdict = f"no edge: {n} alerts averaged {avg_r:+.2f}R"
    else:
        verdict = f"{n} alerts averaged {avg_r:+.2f}R (hit rate {win.mean():.0%})"

    stacked_p = np.concatenate([pred["win_long"], pred["win_short"]])
    stacked_w = np.concatenate([truth["win_long"], truth["win_short"]])
    stacked_q = np.concatenate([pred["quality_long"], pred["quality_short"]])
    stacked_qy = np.concatenate([truth["quality_long"], truth["quality_short"]])
    return {
        "threshold": threshold,
        "bars": int(len(pred)),
        "alerts": n,
        "long_alerts": int((alert & is_long).sum()),
        "short_alerts": int((alert & ~is_long).sum()),
        "hit_rate": _r(float(win.mean())) if n else None,
        "avg_r": _r(avg_r),
        "total_r": _r(float(equity[-1])) if n else 0.0,
        "max_drawdown_r": _r(drawdown),
        "verdict": verdict,
        "calibration": {
            "win_probability": calibration_table(stacked_p, stacked_w),
            "quality": calibration_table(stacked_q, stacked_qy),
        },
        "equity_curve": [{"time": t.isoformat(), "cum_r": _r(float(v))} for t, v in zip(times, equity, strict=True)],
    }
