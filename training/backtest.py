"""Replay of out-of-sample predictions: what the alerts would have done, and how honest the
probabilities were. Always reports, also when there were no alerts or no edge."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from training.metrics import session_bootstrap_mean

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


def _select_alerts(times: pd.DatetimeIndex, candidate: np.ndarray, is_long: np.ndarray,
                   cooldown: pd.Timedelta | None) -> np.ndarray:
    """The live cooldown rule: after an alert, the same direction of the same session stays quiet for
    `cooldown`; the other direction, and the next session, are not held back."""
    if cooldown is None or cooldown <= pd.Timedelta(0):
        return candidate
    chosen = np.zeros_like(candidate)
    last: dict[tuple, pd.Timestamp] = {}
    for pos in np.flatnonzero(candidate):
        key = (bool(is_long[pos]), times[pos].date())
        if key not in last or times[pos] - last[key] >= cooldown:
            chosen[pos] = True
            last[key] = times[pos]
    return chosen


def run_backtest(oos: pd.DataFrame, labels: pd.DataFrame, threshold: float = 80,
                 cooldown: pd.Timedelta | None = None, *, cost_per_share: float = 0.0,
                 risk_per_share: pd.Series | None = None) -> dict:
    """Alerts fire where the better side's quality score (100 x probability) is >= threshold; each
    alert is scored with that side's realised outcome (target hit, R), entered at the signal bar's close
    as in the labels. `cooldown` thins repeated alerts per direction and session, as live. A round-trip
    `cost_per_share` (dollars) is charged in R: divided by `risk_per_share`, the dollar size of 1R
    (stop distance) at each bar; without it no cost can be converted and none is charged."""
    if cost_per_share < 0:
        raise BacktestError("cost_per_share must be >= 0")
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
    alert = _select_alerts(pred.index, score >= threshold, is_long, cooldown)
    win = np.where(is_long, truth["win_long"], truth["win_short"])[alert]
    gross = np.where(is_long, truth["outcome_r_long"], truth["outcome_r_short"])[alert].astype(float)
    cost = np.zeros_like(gross)
    if risk_per_share is not None and cost_per_share > 0:
        risk = risk_per_share.reindex(pred.index).to_numpy(dtype=float)[alert]
        cost = np.where(np.isfinite(risk) & (risk > 0), cost_per_share / np.where(risk > 0, risk, 1.0), 0.0)
    outcome = gross - cost
    times = pred.index[alert]
    sessions = np.asarray(pd.Index(times.date).astype(str))
    avg_r_ci95 = session_bootstrap_mean(outcome, sessions)
    equity = np.cumsum(outcome)
    drawdown = float((np.maximum.accumulate(np.r_[0.0, equity]) - np.r_[0.0, equity]).max())

    n = int(alert.sum())
    avg_r = float(outcome.mean()) if n else float("nan")
    ci_text = f", 95% interval [{avg_r_ci95[0]:+.2f}, {avg_r_ci95[1]:+.2f}]R" if avg_r_ci95 else ""
    n_sessions = len(set(sessions))
    if n == 0:
        verdict = f"no alerts at score >= {threshold:g} in {len(pred)} out-of-sample bars"
    elif avg_r <= 0:
        verdict = f"no edge: {n} alerts averaged {avg_r:+.2f}R after costs{ci_text}"
    elif avg_r_ci95 is None or avg_r_ci95[0] <= 0:
        verdict = (f"no demonstrated edge: {n} alerts over {n_sessions} sessions averaged {avg_r:+.2f}R after "
                   f"costs{ci_text or ' (too few sessions for an interval)'}")
    else:
        verdict = (f"{n} alerts over {n_sessions} sessions averaged {avg_r:+.2f}R after costs{ci_text} "
                   f"(hit rate {win.mean():.0%})")

    stacked_p = np.concatenate([pred["win_long"], pred["win_short"]])
    stacked_w = np.concatenate([truth["win_long"], truth["win_short"]])
    stacked_q = np.concatenate([pred["quality_long"], pred["quality_short"]])
    stacked_qy = np.concatenate([truth["quality_long"], truth["quality_short"]])
    return {
        "threshold": threshold,
        "bars": int(len(pred)),
        # the span replayed: the equity chart's axis covers it, also where no alert fired
        "window": {"start": pred.index[0].isoformat(), "end": pred.index[-1].isoformat()} if len(pred) else None,
        "alerts": n,
        "long_alerts": int((alert & is_long).sum()),
        "short_alerts": int((alert & ~is_long).sum()),
        "hit_rate": _r(float(win.mean())) if n else None,
        "avg_r": _r(avg_r),
        "avg_r_ci95": avg_r_ci95,
        "avg_gross_r": _r(float(gross.mean())) if n else None,
        "cost_per_share": cost_per_share,
        "avg_cost_r": _r(float(cost.mean())) if n else None,
        "alert_sessions": n_sessions,
        "total_r": _r(float(equity[-1])) if n else 0.0,
        "max_drawdown_r": _r(drawdown),
        "verdict": verdict,
        "calibration": {
            "win_probability": calibration_table(stacked_p, stacked_w),
            "quality": calibration_table(stacked_q, stacked_qy),
        },
        "equity_curve": [{"time": t.isoformat(), "cum_r": _r(float(v))} for t, v in zip(times, equity, strict=True)],
    }
