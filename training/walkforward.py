"""Purged walk-forward evaluation: expanding training windows, each tested on the next block of time.

The bars are cut into n_folds + 1 consecutive blocks; fold i trains on blocks 0..i and is scored on
block i+1. Training rows within `purge` bars of the test block are dropped (purge = horizon + 1 bars),
so no training label window reaches a test row. Only complete-label rows are trained on or scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from core.model.model_set import CLASSIFIERS, REGRESSORS, LabelParams
from training.metrics import auc_with_interval, brier_skill, direction_metrics, rounded, uncertainty_metrics
from training.models import NUM_TREES, fit_model_set, usable_rows, weighted_median

MIN_FOLDS = 4
ALERT_PROBABILITY = 0.8
BASELINE_SESSIONS = 20


class WalkForwardError(ValueError):
    """Too little data for the requested folds."""


@dataclass
class Fold:
    train_positions: np.ndarray  # bar positions (0..n-1) in the feature frame
    test_positions: np.ndarray

    def describe(self, index: pd.DatetimeIndex) -> dict:
        return {
            "train_start": index[self.train_positions[0]].isoformat(),
            "train_end": index[self.train_positions[-1]].isoformat(),
            "test_start": index[self.test_positions[0]].isoformat(),
            "test_end": index[self.test_positions[-1]].isoformat(),
            "n_train": int(len(self.train_positions)),
            "n_test": int(len(self.test_positions)),
        }


@dataclass
class WalkForwardResult:
    metrics: dict  # JSON-serialisable
    oos: pd.DataFrame  # out-of-sample predictions (PREDICTION_COLUMNS + fold), index = bar time
    folds: list[Fold]


def purge_bars(params: LabelParams) -> int:
    return params.horizon_bars + 1


def make_folds(n_bars: int, usable: np.ndarray, n_folds: int, purge: int) -> list[Fold]:
    """Expanding folds over bar positions; `usable` marks rows with complete labels."""
    if n_folds < MIN_FOLDS:
        raise WalkForwardError(f"n_folds must be at least {MIN_FOLDS}")
    edges = np.linspace(0, n_bars, n_folds + 2).astype(int)
    positions = np.arange(n_bars)
    folds = []
    for i in range(n_folds):
        test_lo, test_hi = edges[i + 1], edges[i + 2]
        train = positions[(positions < test_lo - purge) & usable]
        test = positions[(positions >= test_lo) & (positions < test_hi) & usable]
        if len(train) == 0 or len(test) == 0:
            raise WalkForwardError(f"fold {i + 1} has no usable training or test rows")
        folds.append(Fold(train, test))
    return folds


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def classifier_metrics(prob: np.ndarray, outcome: np.ndarray, sessions: np.ndarray | None = None,
                       reference: np.ndarray | float | None = None) -> dict:
    """AUC, Brier, log loss, base rate, count/precision at 80; given each row's session and the
    training base rate (`reference`, one value or per row), also the uncertainty keys of
    training.metrics.uncertainty_metrics."""
    ok = np.isfinite(prob) & np.isfinite(outcome)
    if reference is not None:
        reference = np.broadcast_to(np.asarray(reference, dtype=float), prob.shape)[ok]
    prob, outcome = prob[ok], outcome[ok]
    two_classes = len(np.unique(outcome)) == 2
    alerts = prob >= ALERT_PROBABILITY
    out = {
        "auc": _finite(roc_auc_score(outcome, prob)) if two_classes else None,
        "brier": _finite(brier_score_loss(outcome, prob)) if len(prob) else None,
        "log_loss": _finite(log_loss(outcome, np.clip(prob, 1e-6, 1 - 1e-6), labels=[0, 1])) if len(prob) else None,
        "base_rate": _finite(outcome.mean()) if len(prob) else None,
        "count_at_80": int(alerts.sum()),
        "precision_at_80": _finite(outcome[alerts].mean()) if alerts.any() else None,
        "n": int(len(prob)),
    }
    if sessions is not None and reference is not None and len(prob):
        out.update(uncertainty_metrics(prob, outcome, np.asarray(sessions)[ok], reference))
    return out


def regressor_metrics(pred: np.ndarray, actual: np.ndarray, baseline: np.ndarray) -> dict:
    ok = np.isfinite(pred) & np.isfinite(actual) & np.isfinite(baseline)
    mae = float(np.abs(pred[ok] - actual[ok]).mean()) if ok.any() else float("nan")
    base = float(np.abs(baseline[ok] - actual[ok]).mean()) if ok.any() else float("nan")
    return {
        "mae": _finite(mae),
        "baseline_mae": _finite(base),
        "relative_mae": _finite(mae / base) if base > 0 else None,
        "n": int(ok.sum()),
    }


def volatility_baseline(train_features: pd.DataFrame, train_target: np.ndarray,
                        test_features: pd.DataFrame) -> np.ndarray:
    """scale x ATR% x time-of-day profile, fitted on training rows: the one-line volatility rule the band
    must beat. Per minute-of-session, the MAE-optimal multiple of ATR% (a median of target / ATR%
    weighted by ATR%) is the product of the overall scale and that slot's profile; a slot the training
    rows lack uses the overall scale."""
    x = train_features["atr_pct"].to_numpy(dtype=float)
    slot = train_features["minutes_since_open"].to_numpy(dtype=float)
    ok = np.isfinite(x) & (x > 0) & np.isfinite(train_target)
    x, y, slot = x[ok], train_target[ok], slot[ok]
    test_x = test_features["atr_pct"].to_numpy(dtype=float)
    if len(x) == 0:
        return np.full(len(test_x), np.nan)
    ratio = y / x
    overall = weighted_median(ratio, x)
    by_slot = {s: weighted_median(ratio[slot == s], x[slot == s]) for s in np.unique(slot)}
    test_slot = test_features["minutes_since_open"].to_numpy(dtype=float)
    multiple = np.array([by_slot.get(s, overall) for s in test_slot])
    return multiple * test_x


def volatility_metrics(pred: np.ndarray, actual: np.ndarray, vol_baseline: np.ndarray) -> dict:
    """relative_mae_vol = MAE / MAE of the volatility baseline, on rows where both are known."""
    ok = np.isfinite(pred) & np.isfinite(actual) & np.isfinite(vol_baseline)
    if not ok.any():
        return {"vol_baseline_mae": None, "relative_mae_vol": None}
    mae = float(np.abs(pred[ok] - actual[ok]).mean())
    base = float(np.abs(vol_baseline[ok] - actual[ok]).mean())
    return {"vol_baseline_mae": _finite(base), "relative_mae_vol": _finite(mae / base) if base > 0 else None}


def trailing_baseline(labels: pd.DataFrame, column: str, horizon: int, window: int) -> pd.Series:
    """Mean of `column` over the last `window` complete rows whose label windows had ended by bar t.

    Row s's label is known once bar s+h has closed, i.e. at row s+h; shifting the rolling mean by h rows
    means row t only averages rows <= t-h."""
    known = labels[column].where(labels["complete"].astype(bool))
    return known.rolling(window, min_periods=1).mean().shift(horizon)


def training_base_rate(labels: pd.DataFrame, stem: str) -> float:
    """Positive rate of a classifier's stacked (long + short) labels over complete rows."""
    rows = labels[labels["complete"].astype(bool)]
    values = np.concatenate([rows[f"{stem}_long"].to_numpy(dtype=float), rows[f"{stem}_short"].to_numpy(dtype=float)])
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


TIME_OF_DAY_PRIOR_ROWS = 20  # pseudo-rows pulling a thin time slot's rate toward the overall rate


def time_of_day_rate(train_features: pd.DataFrame, train_labels: pd.DataFrame, stem: str,
                     test_features: pd.DataFrame) -> np.ndarray:
    """A forecaster that knows only the time of day: each test row gets the training positive rate of its
    minute of the session (long and short pooled), shrunk toward the overall rate. Labels near the close
    are truncated, so the time of day alone predicts them; a model must beat this, not just a constant."""
    complete = train_labels["complete"].astype(bool).to_numpy()
    slot = train_features["minutes_since_open"].to_numpy()[complete]
    hits = np.concatenate([train_labels[f"{stem}_long"].to_numpy(dtype=float)[complete],
                           train_labels[f"{stem}_short"].to_numpy(dtype=float)[complete]])
    slots = np.concatenate([slot, slot])
    ok = np.isfinite(hits) & np.isfinite(slots)
    table = pd.DataFrame({"slot": slots[ok], "hit": hits[ok]}).groupby("slot")["hit"].agg(["sum", "count"])
    overall = float(hits[ok].mean()) if ok.any() else float("nan")
    rate = (table["sum"] + TIME_OF_DAY_PRIOR_ROWS * overall) / (table["count"] + TIME_OF_DAY_PRIOR_ROWS)
    return rate.reindex(test_features["minutes_since_open"].to_numpy()).fillna(overall).to_numpy()


def evaluate_walk_forward(features: pd.DataFrame, labels: pd.DataFrame, params: LabelParams,
                          n_folds: int = 5, seed: int = 0, num_trees: int = NUM_TREES) -> WalkForwardResult:
    if not features.index.equals(labels.index):
        raise WalkForwardError("features and labels must share one index")
    usable = features.index.isin(usable_rows(features, labels))
    purge = purge_bars(params)
    folds = make_folds(len(features), usable, n_folds, purge)

    parts = []
    vol_parts: dict[str, list[np.ndarray]] = {col: [] for col in REGRESSORS.values()}
    fold_info = []
    for i, fold in enumerate(folds):
        train_idx = features.index[fold.train_positions]
        test_idx = features.index[fold.test_positions]
        models = fit_model_set(features.loc[train_idx], labels.loc[train_idx], params, seed=seed,
                              num_trees=num_trees)
        pred = models.predict(features.loc[test_idx])
        pred["fold"] = i
        for stem in CLASSIFIERS.values():  # the constant a forecaster without features would give
            pred[f"{stem}_train_rate"] = training_base_rate(labels.loc[train_idx], stem)
            pred[f"{stem}_time_rate"] = time_of_day_rate(features.loc[train_idx], labels.loc[train_idx], stem,
                                                         features.loc[test_idx])
        parts.append(pred)
        for col, found in vol_parts.items():
            found.append(volatility_baseline(features.loc[train_idx], labels.loc[train_idx, col].to_numpy(),
                                             features.loc[test_idx]))
        fold_info.append(fold.describe(features.index))
    oos = pd.concat(parts)
    truth = labels.loc[oos.index]

    metrics: dict = {"n_folds": n_folds, "purge_bars": purge, "folds": fold_info, "n_oos": int(len(oos))}
    sessions = np.asarray(pd.Index(oos.index.date).astype(str))
    for name, stem in CLASSIFIERS.items():
        prob = np.concatenate([oos[f"{stem}_long"].to_numpy(), oos[f"{stem}_short"].to_numpy()])
        outcome = np.concatenate([truth[f"{stem}_long"].to_numpy(), truth[f"{stem}_short"].to_numpy()])
        reference = np.tile(oos[f"{stem}_train_rate"].to_numpy(), 2)
        m = classifier_metrics(prob, outcome, np.tile(sessions, 2), reference)
        time_rate = np.tile(oos[f"{stem}_time_rate"].to_numpy(), 2)
        ok = np.isfinite(prob) & np.isfinite(outcome) & np.isfinite(time_rate)
        m["brier_skill_time_of_day"] = rounded(brier_skill(prob[ok], outcome[ok], time_rate[ok]))
        # what the time of day alone ranks: the AUC a model must beat before it has shown any skill
        m["auc_time_of_day"] = rounded(auc_with_interval(time_rate[ok], outcome[ok], np.tile(sessions, 2)[ok],
                                                         resamples=0)[0])
        by_fold = []
        for i in range(n_folds):
            sel = (oos["fold"] == i).to_numpy()
            p = np.concatenate([oos.loc[sel, f"{stem}_long"], oos.loc[sel, f"{stem}_short"]])
            o = np.concatenate([truth.loc[sel, f"{stem}_long"], truth.loc[sel, f"{stem}_short"]])
            by_fold.append(classifier_metrics(p, o)["auc"])
        m["auc_by_fold"] = by_fold
        metrics[name] = m
    metrics["direction"] = direction_metrics(
        oos["quality_long"].to_numpy(), oos["quality_short"].to_numpy(),
        truth["quality_long"].to_numpy(dtype=float), truth["quality_short"].to_numpy(dtype=float), sessions)
    oos = oos.drop(columns=[f"{stem}_{kind}" for stem in CLASSIFIERS.values() for kind in ("train_rate", "time_rate")])

    rows_per_session = max(1, int(pd.Series(features.index.date).value_counts().median()))
    for name, col in REGRESSORS.items():
        baseline = trailing_baseline(labels, col, params.horizon_bars, BASELINE_SESSIONS * rows_per_session)
        metrics[name] = regressor_metrics(oos[col].to_numpy(), truth[col].to_numpy(),
                                          baseline.loc[oos.index].to_numpy())
        metrics[name].update(volatility_metrics(oos[col].to_numpy(), truth[col].to_numpy(),
                                                np.concatenate(vol_parts[col])))
    return WalkForwardResult(metrics, oos, folds)
