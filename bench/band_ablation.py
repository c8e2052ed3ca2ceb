"""What each feature family adds to the predicted high/low band, out of sample.

For each data set, the two regressors (future_high, future_low) are fitted fold by fold exactly as in
the walk-forward (same folds, purge, rows, LightGBM settings) with one feature family blanked out (set
to NaN, which LightGBM cannot split on) or with the objective switched, and scored by
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
from core.model.features import FEATURE_NAMES, atr, build_features  # noqa: E402
from core.model.model_set import REGRESSORS  # noqa: E402
from tests.fakes.synthetic_bars import random_walk_bars  # noqa: E402
from training.labels import build_labels  # noqa: E402
from core.model.model_set import REGRESSOR_SCALE  # noqa: E402
from training.models import REGRESSOR_OBJECTIVE, _train, train_regressor, usable_rows  # noqa: E402
from training.pipeline import label_params  # noqa: E402
from training.walkforward import make_folds, purge_bars, volatility_baseline  # noqa: E402

FAMILIES: dict[str, list[str]] = {
    "returns/momentum": ["ret_1", "ret_3", "ret_6", "ret_12", "rsi_14", "vwap_dist_atr", "or_pos",
                         "prev_high_dist_atr", "prev_low_dist_atr", "gap"],
    "short vol (rvol, ATR)": ["rvol_12", "rvol_48", "atr_14", "atr_pct"],
    "HAR realised vol": ["rv_session", "rv_prev_1", "rv_prev_5", "rv_prev_20"],
    "range profile": ["tr_profile", "tr_profile_ahead"],
    "time of day": ["minutes_since_open", "minutes_to_close"],
    "volume": ["rel_volume", "rel_volume_sessions"],
    "VIX": ["vix", "vix_chg_1", "vix_chg_12", "vix_chg_prev_close", "vix_pct"],
}
ORIGINAL = FEATURE_NAMES[:21]  # the feature set before this bench existed


def _run(features: pd.DataFrame, labels: pd.DataFrame, folds: list, keep: list[str], objective: str,
         scaled: bool, trees: int) -> dict[str, float]:
    x = features[FEATURE_NAMES].copy()
    x.loc[:, [c for c in FEATURE_NAMES if c not in keep]] = np.nan
    out = {}
    for name, col in REGRESSORS.items():
        pred, vol, truth = [], [], []
        for fold in folds:
            tr, te = features.index[fold.train_positions], features.index[fold.test_positions]
            y = labels.loc[tr, col].to_numpy()
            if scaled:  # as the pipeline fits: excursion in ATR% units, weighted by ATR%
                scale = features.loc[tr, REGRESSOR_SCALE].to_numpy()
                booster = train_regressor(x.loc[tr], y, scale, 0, trees, objective)
                pred.append(booster.predict(x.loc[te].to_numpy()) * features.loc[te, REGRESSOR_SCALE].to_numpy())
            else:  # the recipe before: raw excursion
                pred.append(_train(x.loc[tr], y, objective, 0, trees).predict(x.loc[te].to_numpy()))
            vol.append(volatility_baseline(features.loc[tr], y, features.loc[te]))
            truth.append(labels.loc[te, col].to_numpy())
        p, v, t = (np.concatenate(a) for a in (pred, vol, truth))
        ok = np.isfinite(v) & np.isfinite(t)
        out[name] = float(np.abs(p[ok] - t[ok]).mean() / np.abs(v[ok] - t[ok]).mean())
    return out


def ablate(name: str, bars: pd.DataFrame, settings, trees: int) -> list[tuple]:  # type: ignore[no-untyped-def]
    params = label_params(settings)
    features = build_features(bars, settings.bar_minutes)
    labels = build_labels(bars, params, atr(bars))
    usable = features.index.isin(usable_rows(features, labels))
    folds = make_folds(len(features), usable, 5, purge_bars(params))
    variants: list[tuple[str, list[str], str, bool]] = [
        ("all features, L1, ATR% units (now)", FEATURE_NAMES, REGRESSOR_OBJECTIVE, True),
        ("all features, L2, ATR% units", FEATURE_NAMES, "regression", True),
        ("all features, L1, raw excursion", FEATURE_NAMES, REGRESSOR_OBJECTIVE, False),
        ("original 21 features, L1, ATR% units", ORIGINAL, REGRESSOR_OBJECTIVE, True),
        ("original 21, L2, raw (before)", ORIGINAL, "regression", False),
    ]
    variants += [(f"without {fam}", [c for c in FEATURE_NAMES if c not in cols], REGRESSOR_OBJECTIVE, True)
                 for fam, cols in FAMILIES.items()]
    rows = []
    for label, keep, objective, scaled in variants:
        r = _run(features, labels, folds, keep, objective, scaled, trees)
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
    print(f"{'data':22} {'variant':36} {'high':>7} {'low':>7}")
    for name, bars in data:
        for row in ablate(name, bars, settings, args.trees):
            print(f"{row[0]:22} {row[1]:36} {row[2]:>7.3f} {row[3]:>7.3f}", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
