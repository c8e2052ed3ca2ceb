"""The four LightGBM models of one symbol and their probability calibration.

- future_high / future_low: regressors of the best high / worst low over the horizon, as returns.
- profit_target: P(target before stop); trade_quality: P(clean move), score = 100 x probability.
The two classifiers serve both sides: they are trained on rows stacked for long and short with a
`side` feature (+1 / -1), so one symbol has exactly four boosters.

Probabilities are calibrated out of sample: a copy of each classifier is fitted on the older part of the
data, and an isotonic map is fitted on its raw scores over the newest part (after a purge gap of the
label horizon). Files are LightGBM's own text format plus JSON; nothing is pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from training.features import FEATURE_NAMES
from training.labels import LabelParams

SIDE = "side"
CLASSIFIER_FEATURES = [*FEATURE_NAMES, SIDE]
REGRESSORS = {"future_high": "fut_high_ret", "future_low": "fut_low_ret"}
CLASSIFIERS = {"profit_target": "win", "trade_quality": "quality"}
MODEL_FILES = {name: f"{name}.txt" for name in (*REGRESSORS, *CLASSIFIERS)}
CALIBRATION_FILE = "calibration.json"
META_FILE = "model_meta.json"
PREDICTION_COLUMNS = ["fut_high_ret", "fut_low_ret", "win_long", "win_short", "quality_long", "quality_short"]
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


class ModelFormatError(ValueError):
    """Stored model files do not match this code (feature list, missing file, bad JSON)."""


class TrainingDataError(ValueError):
    """Too few usable rows, or a label with a single class, to fit a model."""


@dataclass
class Calibrator:
    """Piecewise-linear monotone map from raw to calibrated probability (isotonic knots)."""

    x: list[float] = field(default_factory=lambda: [0.0, 1.0])
    y: list[float] = field(default_factory=lambda: [0.0, 1.0])
    kind: str = "identity"

    @classmethod
    def fit(cls, raw: np.ndarray, outcome: np.ndarray) -> Calibrator:
        if len(raw) < MIN_CALIBRATION_ROWS or len(np.unique(outcome)) < 2:
            return cls()
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, outcome)
        return cls([float(v) for v in iso.X_thresholds_], [float(v) for v in iso.y_thresholds_], "isotonic")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(np.interp(raw, self.x, self.y), 0.0, 1.0)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "x": self.x, "y": self.y}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        x, y = [float(v) for v in data["x"]], [float(v) for v in data["y"]]
        if len(x) != len(y) or len(x) < 1 or any(b < a for a, b in zip(x, x[1:], strict=False)):
            raise ModelFormatError("calibration knots are malformed")
        return cls(x, y, str(data.get("kind", "isotonic")))


def _train(x: pd.DataFrame, y: np.ndarray, objective: str, seed: int, num_trees: int) -> lgb.Booster:
    params = {**LGB_PARAMS, **(REGRESSOR_PARAMS if objective == "regression" else {}),
              "objective": objective, "seed": seed}
    data = lgb.Dataset(x, label=y, feature_name=list(x.columns), free_raw_data=True)
    return lgb.train(params, data, num_boost_round=num_trees)


def _stack_sides(features: pd.DataFrame) -> pd.DataFrame:
    """Rows for long (side=+1) then the same rows for short (side=-1)."""
    long = features[FEATURE_NAMES].assign(**{SIDE: 1.0})
    short = features[FEATURE_NAMES].assign(**{SIDE: -1.0})
    return pd.concat([long, short], axis=0)


def _stacked_target(labels: pd.DataFrame, stem: str) -> np.ndarray:
    return np.concatenate([labels[f"{stem}_long"].to_numpy(), labels[f"{stem}_short"].to_numpy()])


def usable_rows(features: pd.DataFrame, labels: pd.DataFrame) -> pd.Index:
    """Rows with a complete label window (and every label finite): the only rows trained or scored."""
    cols = [*REGRESSORS.values(), "win_long", "win_short", "quality_long", "quality_short"]
    ok = labels["complete"].astype(bool) & labels[cols].notna().all(axis=1)
    return features.index[ok.reindex(features.index, fill_value=False).to_numpy()]


def check_feature_columns(features: pd.DataFrame) -> None:
    missing = [c for c in FEATURE_NAMES if c not in features.columns]
    if missing:
        raise ModelFormatError(f"feature frame lacks {len(missing)} model feature(s), e.g. {missing[0]!r}")


def features_out_of_range(ranges: dict, row: pd.Series) -> list[str]:
    """Names (in FEATURE_NAMES order) whose value in `row` lies outside its [lo, hi] training range.
    A missing value, or a range never seen in training (None bounds, e.g. no VIX), is not flagged."""
    bad = []
    for name in FEATURE_NAMES:
        bounds = ranges.get(name)
        if name not in row.index or not isinstance(bounds, list | tuple) or len(bounds) != 2:
            continue
        lo, hi = bounds
        v = row[name]
        if pd.notna(v) and lo is not None and hi is not None and not lo <= v <= hi:
            bad.append(name)
    return bad


@dataclass
class ModelSet:
    boosters: dict[str, lgb.Booster]
    calibrators: dict[str, Calibrator]
    params: LabelParams
    ranges: dict[str, list[float | None]]
    n_train_rows: int = 0

    # ---- training -----------------------------------------------------------------------------------
    @classmethod
    def fit(cls, features: pd.DataFrame, labels: pd.DataFrame, params: LabelParams, seed: int = 0,
            num_trees: int = NUM_TREES) -> ModelSet:
        check_feature_columns(features)
        rows = usable_rows(features, labels)
        if len(rows) < MIN_TRAIN_ROWS:
            raise TrainingDataError(f"only {len(rows)} complete labelled rows; need {MIN_TRAIN_ROWS}")
        x = features.loc[rows, FEATURE_NAMES]
        y = labels.loc[rows]
        boosters: dict[str, lgb.Booster] = {}
        for name, col in REGRESSORS.items():
            boosters[name] = _train(x, y[col].to_numpy(), "regression", seed, num_trees)
        stacked = _stack_sides(x)
        for name, stem in CLASSIFIERS.items():
            target = _stacked_target(y, stem)
            if len(np.unique(target)) < 2:
                raise TrainingDataError(f"{name} labels have a single class")
            boosters[name] = _train(stacked, target, "binary", seed, num_trees)
        calibrators = cls._fit_calibrators(features, labels, rows, params, seed, num_trees)
        return cls(boosters, calibrators, params, _quantile_ranges(x), len(rows))

    @staticmethod
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
            out[name] = Calibrator.fit(raw, _stacked_target(labels.loc[tail], stem))
        return out

    # ---- prediction ---------------------------------------------------------------------------------
    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Columns PREDICTION_COLUMNS; classifier columns are calibrated probabilities in 0..1."""
        check_feature_columns(features)
        x = features[FEATURE_NAMES].to_numpy(dtype=float)
        out = pd.DataFrame(index=features.index)
        if len(x) == 0:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in PREDICTION_COLUMNS}, index=features.index)
        for name, col in REGRESSORS.items():
            out[col] = self.boosters[name].predict(x)
        for name, stem in CLASSIFIERS.items():
            for side_name, side in (("long", 1.0), ("short", -1.0)):
                xs = np.column_stack([x, np.full(len(x), side)])
                raw = self.boosters[name].predict(xs)
                out[f"{stem}_{side_name}"] = self.calibrators[name].apply(raw)
        return out[PREDICTION_COLUMNS]

    def feature_ranges(self) -> dict[str, list[float | None]]:
        """Per feature, the 0.5% and 99.5% quantiles of the training rows (None if never seen)."""
        return {k: list(v) for k, v in self.ranges.items()}

    def out_of_range(self, features: pd.DataFrame) -> list[str]:
        """Names of features whose value in the LAST row lies outside the training range."""
        return features_out_of_range(self.ranges, features.iloc[-1])

    # ---- files --------------------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        files = {MODEL_FILES[name]: b.model_to_string().encode() for name, b in self.boosters.items()}
        files[CALIBRATION_FILE] = _json({k: c.to_dict() for k, c in self.calibrators.items()})
        files[META_FILE] = _json({
            "feature_names": list(FEATURE_NAMES),
            "classifier_feature_names": list(CLASSIFIER_FEATURES),
            "label_params": self.params.to_dict(),
            "feature_ranges": self.feature_ranges(),
            "n_train_rows": self.n_train_rows,
            "lgb_params": LGB_PARAMS,
            "lgb_regressor_params": REGRESSOR_PARAMS,
        })
        return files

    @classmethod
    def from_files(cls, files: dict[str, bytes], manifest: dict) -> ModelSet:
        listed = manifest.get("feature_names")
        if listed is not None and list(listed) != FEATURE_NAMES:
            raise ModelFormatError(_mismatch("manifest", list(listed), FEATURE_NAMES))
        meta = _load_json(files, META_FILE)
        if list(meta.get("feature_names", [])) != FEATURE_NAMES:
            raise ModelFormatError(_mismatch(META_FILE, list(meta.get("feature_names", [])), FEATURE_NAMES))
        boosters = {}
        for name, fname in MODEL_FILES.items():
            if fname not in files:
                raise ModelFormatError(f"model file {fname} is missing")
            try:
                booster = lgb.Booster(model_str=files[fname].decode())
            except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
                raise ModelFormatError(f"model file {fname} is unreadable: {str(exc)[:80]}") from None
            expected = FEATURE_NAMES if name in REGRESSORS else CLASSIFIER_FEATURES
            if booster.feature_name() != expected:
                raise ModelFormatError(_mismatch(fname, booster.feature_name(), expected))
            boosters[name] = booster
        cal = _load_json(files, CALIBRATION_FILE)
        try:
            calibrators = {name: Calibrator.from_dict(cal[name]) for name in CLASSIFIERS}
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{CALIBRATION_FILE} is malformed: {exc}") from None
        params = LabelParams.from_dict(manifest.get("label_params") or meta.get("label_params") or {})
        ranges = manifest.get("feature_ranges") or meta.get("feature_ranges") or {}
        return cls(boosters, calibrators, params, ranges, int(meta.get("n_train_rows", 0)))


def _quantile_ranges(x: pd.DataFrame) -> dict[str, list[float | None]]:
    q = x.quantile(list(RANGE_QUANTILES))
    out: dict[str, list[float | None]] = {}
    for name in FEATURE_NAMES:
        lo, hi = q[name].iloc[0], q[name].iloc[1]
        out[name] = [None if pd.isna(lo) else float(lo), None if pd.isna(hi) else float(hi)]
    return out


def _json(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, indent=1).encode()


def _load_json(files: dict[str, bytes], name: str) -> dict:
    if name not in files:
        raise ModelFormatError(f"model file {name} is missing")
    try:
        data = json.loads(files[name])
    except (ValueError, UnicodeDecodeError):
        raise ModelFormatError(f"model file {name} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"model file {name} is not a JSON object")
    return data


def _mismatch(where: str, got: list[str], expected: list[str]) -> str:
    for i, (g, e) in enumerate(zip(got, expected, strict=False)):
        if g != e:
            return f"{where}: feature #{i} is {g!r}, this code expects {e!r}; retrain the models"
    return f"{where}: {len(got)} features, this code expects {len(expected)}; retrain the models"
