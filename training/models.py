"""Fitting one symbol's four LightGBM models and their probability calibration.

Each classifier is calibrated on scores of the very booster that serves: it is fitted on the older 65 %
of the rows, and a binned isotonic map with shrinkage is fitted on its raw scores over the newest 35 %
(after a purge gap of the label horizon). The regressors are fitted on all rows. The fitted set is a
`core.model.ModelSet`, the format the bot loads.
"""

from __future__ import annotations

import functools
import math

import lightgbm as lgb
import numpy as np
import pandas as pd

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
CALIBRATION_FRACTION = 0.35
MIN_CALIBRATION_ROWS = 200
# ... and at least this many sessions where the head keeps as many (see _first_position_of_last_sessions).
MIN_CALIBRATION_SESSIONS = 15
MIN_TRAIN_ROWS = 200
# Every calibrated probability is backed by at least this many calibration rows ...
MIN_BUCKET_ROWS = 200
MAX_BUCKETS = 40
# ... and shrunk toward the base rate as if this many base-rate rows were added to its bucket: rows as
# counted at the floor design effect, so PRIOR_EFFECTIVE_ROWS independent ones.
PRIOR_ROWS = 20
# Neighbouring levels must differ by this many standard errors, with rows worth 1 / DESIGN_EFFECT each
# at least (fewer where the rows cluster by session).
MIN_STEP_Z = 2.5
DESIGN_EFFECT = 4.0
PRIOR_EFFECTIVE_ROWS = PRIOR_ROWS / DESIGN_EFFECT
CALIBRATION_METHOD = "binned-isotonic-shrunk/head-booster"

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


def fit_calibrator(raw: np.ndarray, outcome: np.ndarray, base_rate: float | None = None,
                   sessions: np.ndarray | None = None) -> Calibrator:
    """Monotone map from raw score to probability that cannot invent certainty.

    Rows sorted by raw score are cut into buckets of at least MIN_BUCKET_ROWS; adjacent buckets that
    violate monotonicity are pooled (pool-adjacent-violators on buckets, so pools only grow); each pool's
    rate is shrunk toward the base rate and holds over the pool's raw-score range, so every output is the
    rate of >= MIN_BUCKET_ROWS rows (or, between two pools' ranges, a blend of two such rates), flat beyond
    the end pools, and never exactly 0 or 1. Too few rows, or no monotone signal: the (smoothed) base
    rate for every score. `base_rate` (default: the calibration rows' own) is that level and the
    shrinkage target: the rate over all training rows rests on more sessions than the tail's alone.

    Evidence is counted in effective rows (see _effective_rows): with each row's `sessions` given, a pool
    whose rows cluster in a few sessions counts for less, in the merge test and in the shrinkage."""
    ok = np.isfinite(raw) & np.isfinite(outcome)
    raw, outcome = raw[ok].astype(float), outcome[ok].astype(float)
    base = _smoothed_rate(outcome) if base_rate is None else float(base_rate)
    constant = Calibrator([0.0, 1.0], [base, base], "constant")
    if len(raw) < 2 * MIN_BUCKET_ROWS or len(np.unique(outcome)) < 2:
        return constant
    order = np.argsort(raw, kind="mergesort")
    raw, outcome = raw[order], outcome[order]
    groups = None if sessions is None else pd.factorize(np.asarray(sessions)[ok][order])[0]
    size = max(MIN_BUCKET_ROWS, len(raw) // MAX_BUCKETS)
    n_buckets = len(raw) // size  # the remainder joins the last bucket
    edges = [i * size for i in range(n_buckets)] + [len(raw)]
    # pools: [rows, positives, first row, last row]
    pools: list[list[int | float]] = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        pools.append([hi - lo, float(outcome[lo:hi].sum()), lo, hi - 1])
        while len(pools) > 1 and pools[-2][1] / pools[-2][0] >= pools[-1][1] / pools[-1][0]:
            last = pools.pop()
            pools[-1] = [pools[-1][0] + last[0], pools[-1][1] + last[1], pools[-1][2], last[3]]
    effective = _effective_rows(outcome, groups)
    pools = _merge_indistinct(pools, effective)
    if len(pools) == 1:  # no monotone signal: one flat level
        return constant
    # A step per pool, flat from its lowest to its highest raw score (as isotonic regression is), so a
    # score between two clusters is not given a rate interpolated from neither.
    x: list[float] = []
    y: list[float] = []
    for n, pos, first, last in pools:
        weight = effective((int(first), int(last)))
        level = (weight * pos / n + PRIOR_EFFECTIVE_ROWS * base) / (weight + PRIOR_EFFECTIVE_ROWS)
        x += [float(raw[int(first)]), float(raw[int(last)])]
        y += [float(level), float(level)]
    return Calibrator(x, y, "binned-isotonic")


def _effective_rows(outcome: np.ndarray, groups: np.ndarray | None):
    """A pool's evidence in independent rows: n / max(DESIGN_EFFECT, the design effect measured by
    session). Long and short rows of one bar, and bars whose label windows overlap, are far from
    independent (DESIGN_EFFECT is the floor); and a booster's skill varies from session to session, so
    the rows of a pool can rest on a few sessions that happened to suit it. The measured design effect is
    the session-clustered variance of the pool's rate over the binomial one. Returns a function of a
    pool's (first row, last row) in score order."""

    @functools.cache
    def effective(span: tuple[int, int]) -> float:
        first, last = span
        n = last - first + 1
        deff = DESIGN_EFFECT
        if groups is not None:
            y, g = outcome[first:last + 1], groups[first:last + 1]
            rate = y.mean()
            _, g = np.unique(g, return_inverse=True)
            n_s = np.bincount(g).astype(float)
            if len(n_s) < 2:
                return 1.0  # one session is one observation, whatever its row count
            resid = np.bincount(g, weights=y) - rate * n_s
            clustered = (resid ** 2).sum() / n ** 2 * len(n_s) / (len(n_s) - 1)
            binomial = rate * (1.0 - rate) / n
            if binomial > 0:
                deff = max(deff, clustered / binomial)
        return n / deff

    return effective


def _merge_indistinct(pools: list[list[int | float]], effective) -> list[list[int | float]]:
    """Merge the adjacent pools whose rates differ least until every neighbouring pair differs by at
    least MIN_STEP_Z standard errors, each pool's rows counted as its effective rows. On data without
    signal this leaves one level; a real step survives."""
    pools = [list(p) for p in pools]
    while len(pools) > 1:
        z = []
        for a, b in zip(pools, pools[1:], strict=False):
            pa, pb = a[1] / a[0], b[1] / b[0]
            pooled = (a[1] + b[1]) / (a[0] + b[0])
            n_a, n_b = effective((int(a[2]), int(a[3]))), effective((int(b[2]), int(b[3])))
            se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n_a + 1 / n_b))
            z.append((pb - pa) / se)
        i = int(np.argmin(z))
        if z[i] >= MIN_STEP_Z:
            break
        a, b = pools[i], pools.pop(i + 1)
        pools[i] = [a[0] + b[0], a[1] + b[1], a[2], b[3]]
    return pools


def _smoothed_rate(outcome: np.ndarray) -> float:
    """Laplace-smoothed positive rate: a single class never gives exactly 0 or 1."""
    return float((np.nansum(outcome) + 1.0) / (np.isfinite(outcome).sum() + 2.0))


def base_rate_calibrator(outcome: np.ndarray) -> Calibrator:
    """Every score maps to the (smoothed) base rate: what is known without a usable map."""
    base = _smoothed_rate(np.asarray(outcome, dtype=float))
    return Calibrator([0.0, 1.0], [base, base], "constant")


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
    for name, stem in CLASSIFIERS.items():
        if len(np.unique(_stacked_target(y, stem))) < 2:
            raise TrainingDataError(f"{name} labels have a single class")
    classifiers, calibrators = _fit_calibrators(features, labels, rows, params, seed, num_trees)
    boosters.update(classifiers)
    recipe = {"lgb_params": LGB_PARAMS,
              "lgb_regressor_params": {**REGRESSOR_PARAMS, "objective": REGRESSOR_OBJECTIVE,
                                       "num_trees": min(num_trees, REGRESSOR_TREES),
                                       "target": "excursion / band_scale, from the time-of-day profile"},
              "calibration_method": CALIBRATION_METHOD}
    return ModelSet(boosters, calibrators, params, _quantile_ranges(x), len(rows), recipe, profiles)


def _fit_calibrators(features: pd.DataFrame, labels: pd.DataFrame, rows: pd.Index, params: LabelParams,
                     seed: int, num_trees: int) -> tuple[dict[str, lgb.Booster], dict[str, Calibrator]]:
    """The served classifiers and their maps: each booster is fitted on the older rows (the head) and its
    map on that same booster's raw scores over the newest rows (the tail), purged by the horizon.

    Serving the head booster costs the classifiers the newest 35 % of the rows, but the map then
    describes the model it is applied to; a map fitted on one booster and applied to another (refitted
    on all rows) would describe neither. Too short a tail: all rows train, and the map is the base rate."""
    positions = features.index.get_indexer(rows)
    n_cal = int(len(rows) * CALIBRATION_FRACTION)
    head, tail = rows, rows[:0]
    if n_cal >= MIN_CALIBRATION_ROWS:
        cal_start = min(positions[-n_cal], _first_position_of_last_sessions(rows, positions))
        # Positions in the frame given: if the caller already dropped rows, a gap of h positions spans
        # at least h bars, so the purge only gets wider.
        candidate = rows[positions < cal_start - params.horizon_bars]
        if len(candidate) >= MIN_TRAIN_ROWS:
            head, tail = candidate, rows[positions >= cal_start]
    boosters, calibrators = {}, {}
    for name, stem in CLASSIFIERS.items():
        fit_rows, cal_rows = head, tail
        target = _stacked_target(labels.loc[fit_rows], stem)
        if len(np.unique(target)) < 2:  # the head alone has one class: learn from all rows instead
            fit_rows, cal_rows = rows, rows[:0]
            target = _stacked_target(labels.loc[fit_rows], stem)
        boosters[name] = _train(_stack_sides(features.loc[fit_rows]), target, "binary", seed, num_trees)
        if len(cal_rows):
            raw = boosters[name].predict(_stack_sides(features.loc[cal_rows]).to_numpy())
            calibrators[name] = fit_calibrator(raw, _stacked_target(labels.loc[cal_rows], stem),
                                               base_rate=_smoothed_rate(_stacked_target(labels.loc[rows], stem)),
                                               sessions=np.tile(np.asarray(cal_rows.date), 2))
        else:
            calibrators[name] = base_rate_calibrator(target)
    return boosters, calibrators


def _first_position_of_last_sessions(rows: pd.Index, positions: np.ndarray) -> int:
    """Where a tail of MIN_CALIBRATION_SESSIONS sessions (at most half of them) would start: a booster's
    skill varies from session to session, so a map resting on a few sessions is off out of sample."""
    dates = np.asarray(rows.date)
    days = np.unique(dates)
    k = min(MIN_CALIBRATION_SESSIONS, len(days) // 2)
    return int(positions[dates >= days[-k]][0]) if k > 0 else int(positions[-1])


def _quantile_ranges(x: pd.DataFrame) -> dict[str, list[float | None]]:
    q = x.quantile(list(RANGE_QUANTILES))
    out: dict[str, list[float | None]] = {}
    for name in FEATURE_NAMES:
        lo, hi = q[name].iloc[0], q[name].iloc[1]
        out[name] = [None if pd.isna(lo) else float(lo), None if pd.isna(hi) else float(hi)]
    return out
