"""What each feature family adds to the predicted high/low band, out of sample.

For each data set, the two regressors (future_high, future_low) are fitted fold by fold exactly as in
the walk-forward (same folds, purge, rows, LightGBM settings): the recipe in use, its structural part
alone, other objectives, the recipe before, and the booster with one feature family blanked out (set to
NaN, which LightGBM cannot split on; the HAR scale itself is kept). Each is scored by
relative_mae_vol = MAE / MAE of the volatility baseline (scale x ATR% x time-of-day profile, fitted on
each fold's training rows). Below 1.0 the band beats that one-line rule.

    .venv/bin/python bench/band_ablation.py [--sessions 180] [--trees 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.honesty import sim_bars  # noqa: E402
from config import load_settings  # noqa: E402
from core.model.features import FEATURE_NAMES, REGRESSOR_FEATURES, atr, band_scale, build_features  # noqa: E402
from core.model.model_set import REGRESSORS, profile_values  # noqa: E402
from tests.fakes.synthetic_bars import random_walk_bars  # noqa: E402
from training.labels import build_labels  # noqa: E402
from training.models import REGRESSOR_OBJECTIVE, _train, train_regressor, usable_rows  # noqa: E402
from training.pipeline import label_params  # noqa: E402
from training.walkforward import make_folds, purge_bars, volatility_baseline  # noqa: E402

FAMILIES: dict[str, list[str]] = {
    "short vol (rvol, ATR)": ["rvol_12", "rvol_48", "atr_14", "atr_pct"],
    "HAR realised vol": ["rv_session", "rv_prev_1", "rv_prev_5", "rv_prev_20"],
    "range profile": ["tr_profile", "tr_profile_ahead"],
    "time of day": ["minutes_since_open", "minutes_to_close"],
    "volume": ["rel_volume", "rel_volume_sessions"],
    "VIX": ["vix", "vix_chg_1", "vix_chg_12", "vix_chg_prev_close", "vix_pct", "vix_bar_vol"],
}
ORIGINAL = FEATURE_NAMES[:21]  # the feature set before this bench existed


def _fit_predict(kind: str, features: pd.DataFrame, y: np.ndarray, test: pd.DataFrame, keep: list[str],
                 objective: str, trees: int) -> np.ndarray:
    if kind == "structural":  # HAR scale x time-of-day profile, no booster
        _, profile = train_regressor(features, y, 0, 1, objective, keep)
        return profile_values(profile, test["minutes_since_open"].to_numpy()) * band_scale(test)
    if kind == "raw":  # the recipe before: a booster on the raw excursion, every feature it is given
        x = features[FEATURE_NAMES].assign(**{c: np.nan for c in FEATURE_NAMES if c not in keep})
        return _train(x, y, objective, 0, trees).predict(test[FEATURE_NAMES].to_numpy())
    booster, profile = train_regressor(features, y, 0, trees, objective, keep)
    base = profile_values(profile, test["minutes_since_open"].to_numpy())
    return (base + booster.predict(test[REGRESSOR_FEATURES].to_numpy())) * band_scale(test)


def _run(features: pd.DataFrame, labels: pd.DataFrame, folds: list, kind: str, keep: list[str],
         objective: str, trees: int) -> dict[str, float]:
    out = {}
    for name, col in REGRESSORS.items():
        pred, vol, truth = [], [], []
        for fold in folds:
            tr, te = features.index[fold.train_positions], features.index[fold.test_positions]
            y = labels.loc[tr, col].to_numpy()
            pred.append(_fit_predict(kind, features.loc[tr], y, features.loc[te], keep, objective, trees))
            vol.append(volatility_baseline(features.loc[tr], y, features.loc[te]))
            truth.append(labels.loc[te, col].to_numpy())
        p, v, t = (np.concatenate(a) for a in (pred, vol, truth))
        ok = np.isfinite(v) & np.isfinite(t) & np.isfinite(p)
        out[name] = float(np.abs(p[ok] - t[ok]).mean() / np.abs(v[ok] - t[ok]).mean())
    return out


def ablate(name: str, bars: pd.DataFrame, settings, trees: int) -> list[tuple]:  # type: ignore[no-untyped-def]
    params = label_params(settings)
    features = build_features(bars, settings.bar_minutes)
    labels = build_labels(bars, params, atr(bars))
    usable = features.index.isin(usable_rows(features, labels))
    folds = make_folds(len(features), usable, 5, purge_bars(params))
    variants: list[tuple[str, str, list[str], str]] = [
        ("now: HAR x profile + L1 booster", "full", REGRESSOR_FEATURES, REGRESSOR_OBJECTIVE),
        ("HAR x profile alone (no booster)", "structural", REGRESSOR_FEATURES, REGRESSOR_OBJECTIVE),
        ("HAR x profile + L2 booster", "full", REGRESSOR_FEATURES, "regression"),
        ("raw excursion, all features, L1", "raw", FEATURE_NAMES, "l1"),
        ("before: raw, original 21, L2", "raw", ORIGINAL, "regression"),
    ]
    variants += [(f"booster without {fam}", "full", [c for c in REGRESSOR_FEATURES if c not in cols],
                  REGRESSOR_OBJECTIVE) for fam, cols in FAMILIES.items()]
    rows = []
    for label, kind, keep, objective in variants:
        r = _run(features, labels, folds, kind, keep, objective, trees)
        rows.append((name, label, r["future_high"], r["future_low"]))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=180)
    ap.add_argument("--trees", type=int, default=200)
    args = ap.parse_args()
    settings = load_settings(_env_file=None, market_data="simulated")
    t0 = time.perf_counter()
    data = [
        ("random walk", random_walk_bars(args.sessions, 5, seed=3)),
        ("sim, planted_edge=0", asyncio.run(sim_bars(0.0, args.sessions))),
        ("sim, default edge", asyncio.run(sim_bars(0.35, args.sessions))),
    ]
    print("relative_mae_vol (MAE / MAE of scale x ATR% x time-of-day profile); < 1 beats volatility")
    print(f"{'data':22} {'variant':38} {'high':>7} {'low':>7}")
    for name, bars in data:
        for row in ablate(name, bars, settings, args.trees):
            print(f"{row[0]:22} {row[1]:38} {row[2]:>7.3f} {row[3]:>7.3f}", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
