"""Fitting one symbol's four LightGBM models and their probability calibration.

Probabilities are calibrated out of sample: a copy of each classifier is fitted on the older part of the
data, and an isotonic map is fitted on its raw scores over the newest part (after a purge gap of the
label horizon). The fitted set is a `core.model.ModelSet`, the format the bot loads.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from core.model.features import CLASSIFIER_INPUTS, FEATURE_NAMES, REGRESSOR_FEATURES, band_scale
from core.model.model_set import (
    CLASSIFIERS,
    REGRESSORS,
    SIDE,
    Calibrator,
    LabelParams,
    ModelSet,
    check_feature_columns,
    profile_values,
)

RANGE_QUANTILES = (0.005, 0.995)
CALIBRATION_FRACTION = 0.2
MIN_CALIBRATION_ROWS = 200
MIN_TRAIN_ROWS = 200

LGB_PARAMS: dict[str, object] = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    # One thread: measured 4-5x faster than two on this data size (~25k rows) when the 2 cores are
    # shared with the bot; OpenMP barriers dominate such small trees.
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}
NUM_TREES = 200
# Excursion sizes are mostly noise around the volatility level: smaller, smoother trees beat the
# trailing-mean baseline where the classifier settings overfit it (measured on synthetic data).
REGRESSOR_PARAMS: dict[str, object] = {"num_leaves": 7, "min_data_in_leaf": 300, "lambda_l2": 10.0,
                                       "learning_rate": 0.03}
# The band is scored by MAE, which the median minimises; excursions are skewed, so a mean-fitting L2
# objective sits above the median. L1 fits the median directly.
REGRESSOR_OBJECTIVE = "l1"
# The band booster only corrects the structural forecast (HAR scale x time-of-day profile): with more
# trees it fitted noise and lost to the volatility baseline (bench/band_ablation.py).
REGRESSOR_TREES = 50


class TrainingDataError(ValueError):
    """Too few usable rows, or a label with a single class, to fit a model."""


def fit_calibrator(raw: np.ndarray, outcome: np.ndarray) -> Calibrator:
    if len(raw) < MIN_CALIBRATION_ROWS or len(np.unique(outcome)) < 2:
        return Calibrator()
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, outcome)
    return Calibrator([float(v) for v in iso.X_thresholds_], [float(v) for v in iso.y_thresholds_], "isotonic")


def _train(x: pd.DataFrame, y: np.ndarray, objective: str, seed: int, num_trees: int) -> lgb.Booster:
    params = {**LGB_PARAMS, **(REGRESSOR_PARAMS if objective == "regression" else {}),
              "objective": objective, "seed": seed}
    data = lgb.Dataset(x, label=y, feature_name=list(x.columns), free_raw_data=True)
    return lgb.train(params, data, num_boost_round=num_trees)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def fit_band_profile(ratio: np.ndarray, weight: np.ndarray, minutes_since_open: np.ndarray) -> dict:
    """Per minute of session, the MAE-optimal multiple of the scale (a weighted median)."""
    slots = {f"{m:g}": weighted_median(ratio[minutes_since_open == m], weight[minutes_since_open == m])
             for m in np.unique(minutes_since_open[np.isfinite(minutes_since_open)])}
    return {"overall": weighted_median(ratio, weight), "slots": slots}


def train_regressor(features: pd.DataFrame, excursion: np.ndarray, seed: int, num_trees: int,
                    objective: str = REGRESSOR_OBJECTIVE,
                    columns: list[str] | None = None) -> tuple[lgb.Booster, dict]:
    """One band model: the structural forecast band_scale x time-of-day profile, and a booster that
    corrects it. Both work in units of the scale, weighted by it, so the L1 loss is the MAE of the
    excursion itself: |y - p*s| = s * |y/s - p|. `columns` blanks all other regressor features (the
    ablation bench)."""
    scale = band_scale(features)
    slot = features["minutes_since_open"].to_numpy(dtype=float)
    ok = np.isfinite(scale) & (scale > 0) & np.isfinite(excursion)
    ratio = np.where(ok, excursion / np.where(ok, scale, 1.0), np.nan)
    profile = fit_band_profile(ratio[ok], scale[ok], slot[ok])
    x = features[REGRESSOR_FEATURES]
    if columns is not None:
        x = x.assign(**{c: np.nan for c in REGRESSOR_FEATURES if c not in columns})
    params = {**LGB_PARAMS, **REGRESSOR_PARAMS, "objective": objective, "seed": seed}
    data = lgb.Dataset(x[ok], label=ratio[ok], weight=scale[ok], init_score=profile_values(profile, slot[ok]),
                       feature_name=list(x.columns), free_raw_data=True)
    return lgb.train(params, data, num_boost_round=min(num_trees, REGRESSOR_TREES)), profile


def _stack_sides(features: pd.DataFrame) -> pd.DataFrame:
    """Rows for long (side=+1) then the same rows for short (side=-1)."""
    long = features[CLASSIFIER_INPUTS].assign(**{SIDE: 1.0})
    short = features[CLASSIFIER_INPUTS].assign(**{SIDE: -1.0})
    return pd.concat([long, short], axis=0)


def _stacked_target(labels: pd.DataFrame, stem: str) -> np.ndarray:
    return np.concatenate([labels[f"{stem}_long"].to_numpy(), labels[f"{stem}_short"].to_numpy()])


def usable_rows(features: pd.DataFrame, labels: pd.DataFrame) -> pd.Index:
    """Rows with a complete label window (and every label finite): the only rows trained or scored."""
    cols = [*REGRESSORS.values(), "win_long", "win_short", "quality_long", "quality_short"]
    ok = labels["complete"].astype(bool) & labels[cols].notna().all(axis=1)
    return features.index[ok.reindex(features.index, fill_value=False).to_numpy()]


def fit_model_set(features: pd.DataFrame, labels: pd.DataFrame, params: LabelParams, seed: int = 0,
                  num_trees: int = NUM_TREES) -> ModelSet:
    check_feature_columns(features)
    rows = usable_rows(features, labels)
    if len(rows) < MIN_TRAIN_ROWS:
        raise TrainingDataError(f"only {len(rows)} complete labelled rows; need {MIN_TRAIN_ROWS}")
    x = features.loc[rows, FEATURE_NAMES]
    y = labels.loc[rows]
    boosters: dict[str, lgb.Booster] = {}
    profiles: dict[str, dict] = {}
    for name, col in REGRESSORS.items():
        boosters[name], profiles[name] = train_regressor(x, y[col].to_numpy(), seed, num_trees)
    stacked = _stack_sides(x)
    for name, stem in CLASSIFIERS.items():
        target = _stacked_target(y, stem)
        if len(np.unique(target)) < 2:
            raise TrainingDataError(f"{name} labels have a single class")
        boosters[name] = _train(stacked, target, "binary", seed, num_trees)
    calibrators = _fit_calibrators(features, labels, rows, params, seed, num_trees)
    recipe = {"lgb_params": LGB_PARAMS,
              "lgb_regressor_params": {**REGRESSOR_PARAMS, "objective": REGRESSOR_OBJECTIVE,
                                       "num_trees": min(num_trees, REGRESSOR_TREES),
                                       "target": "excursion / band_scale, from the time-of-day profile"}}
    return ModelSet(boosters, calibrators, params, _quantile_ranges(x), len(rows), recipe, profiles)


def _fit_calibrators(features: pd.DataFrame, labels: pd.DataFrame, rows: pd.Index, params: LabelParams,
                     seed: int, num_trees: int) -> dict[str, Calibrator]:
    """Isotonic maps fitted on the newest rows, scored by models that never saw them (purged)."""
    positions = features.index.get_indexer(rows)
    n_cal = int(len(rows) * CALIBRATION_FRACTION)
    if n_cal < MIN_CALIBRATION_ROWS:
        return {name: Calibrator() for name in CLASSIFIERS}
    cal_start = positions[-n_cal]
    # Positions in the frame given: if the caller already dropped rows, a gap of h positions spans at
    # least h bars, so the purge only gets wider.
    head = rows[positions < cal_start - params.horizon_bars]
    tail = rows[positions >= cal_start]
    out = {}
    for name, stem in CLASSIFIERS.items():
        target = _stacked_target(labels.loc[head], stem)
        if len(head) < MIN_TRAIN_ROWS or len(np.unique(target)) < 2:
            out[name] = Calibrator()
            continue
        booster = _train(_stack_sides(features.loc[head]), target, "binary", seed, num_trees)
        raw = booster.predict(_stack_sides(features.loc[tail]).to_numpy())
        out[name] = fit_calibrator(raw, _stacked_target(labels.loc[tail], stem))
    return out


def _quantile_ranges(x: pd.DataFrame) -> dict[str, list[float | None]]:
    q = x.quantile(list(RANGE_QUANTILES))
    out: dict[str, list[float | None]] = {}
    for name in FEATURE_NAMES:
        lo, hi = q[name].iloc[0], q[name].iloc[1]
        out[name] = [None if pd.isna(lo) else float(lo), None if pd.isna(hi) else float(hi)]
    return out
