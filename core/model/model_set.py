"""One symbol's four models as the bot loads and serves them: file format, calibration map, prediction.

- future_high / future_low: regressors of the best high / worst low over the horizon, as returns.
- profit_target: P(target before stop); trade_quality: P(clean move), score = 100 x probability.
The two classifiers serve both sides: they are trained on rows stacked for long and short with a
`side` feature (+1 / -1), so one symbol has exactly four boosters.

Files are LightGBM's own text format plus JSON; nothing is pickled. Fitting lives in `training/`; this
module is the contract both sides agree on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from core.model.features import CLASSIFIER_INPUTS, FEATURE_NAMES, REGRESSOR_FEATURES, band_scale

SIDE = "side"
CLASSIFIER_FEATURES = [*CLASSIFIER_INPUTS, SIDE]
REGRESSORS = {"future_high": "fut_high_ret", "future_low": "fut_low_ret"}
# The band: excursion = band_scale (a HAR volatility forecast) x (time-of-day profile + booster).
CLASSIFIERS = {"profit_target": "win", "trade_quality": "quality"}
MODEL_FILES = {name: f"{name}.txt" for name in (*REGRESSORS, *CLASSIFIERS)}
CALIBRATION_FILE = "calibration.json"
META_FILE = "model_meta.json"
PREDICTION_COLUMNS = ["fut_high_ret", "fut_low_ret", "win_long", "win_short", "quality_long", "quality_short"]


class ModelFormatError(ValueError):
    """Stored model files do not match this code (feature list, missing file, bad JSON)."""


class LabelError(ValueError):
    """Label parameters or inputs are unusable."""


@dataclass(frozen=True)
class LabelParams:
    horizon_bars: int = 12
    target_atr: float = 1.0  # k: profit target distance in ATRs
    stop_atr: float = 1.0  # m: stop distance in ATRs (1R)
    quality_r: float = 2.0  # favourable excursion must be >= this many times the adverse one
    min_move_atr: float = 0.5  # ... and at least this many ATRs

    def __post_init__(self) -> None:
        if self.horizon_bars < 1:
            raise LabelError("horizon_bars must be >= 1")
        if self.target_atr <= 0 or self.stop_atr <= 0 or self.quality_r <= 0 or self.min_move_atr < 0:
            raise LabelError("target_atr, stop_atr and quality_r must be > 0 and min_move_atr >= 0")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LabelParams:
        return cls(**{k: data[k] for k in asdict(cls()) if k in data})


@dataclass
class Calibrator:
    """Piecewise-linear monotone map from raw to calibrated probability (its knots, as JSON)."""

    x: list[float] = field(default_factory=lambda: [0.0, 1.0])
    y: list[float] = field(default_factory=lambda: [0.0, 1.0])
    kind: str = "identity"

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
    # The fitting recipe, recorded in the meta file so a set says how it was made.
    training_params: dict[str, object] = field(default_factory=dict)
    # Per regressor, the excursion in band_scale units by minute of session: {"overall": m, "slots": {..}}.
    band_profiles: dict[str, dict] = field(default_factory=dict)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Columns PREDICTION_COLUMNS; classifier columns are calibrated probabilities in 0..1."""
        check_feature_columns(features)
        x = features[CLASSIFIER_INPUTS].to_numpy(dtype=float)
        out = pd.DataFrame(index=features.index)
        if len(x) == 0:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in PREDICTION_COLUMNS}, index=features.index)
        scale = band_scale(features)
        xr = features[REGRESSOR_FEATURES].to_numpy(dtype=float)
        for name, col in REGRESSORS.items():
            base = profile_values(self.band_profiles.get(name, {}), features["minutes_since_open"].to_numpy())
            out[col] = (base + self.boosters[name].predict(xr)) * scale
        for name, stem in CLASSIFIERS.items():
            for side_name, side in (("long", 1.0), ("short", -1.0)):
                xs = np.column_stack([x, np.full(len(x), side)])
                raw = self.boosters[name].predict(xs)
                out[f"{stem}_{side_name}"] = self.calibrators[name].apply(raw)
        return out[PREDICTION_COLUMNS]

    def feature_ranges(self) -> dict[str, list[float | None]]:
        """Per feature, the 0.5% and 99.5% quantiles of the training rows (None if never seen)."""
        return {k: list(v) for k, v in self.ranges.items()}

    def to_files(self) -> dict[str, bytes]:
        files = {MODEL_FILES[name]: b.model_to_string().encode() for name, b in self.boosters.items()}
        files[CALIBRATION_FILE] = _json({k: c.to_dict() for k, c in self.calibrators.items()})
        files[META_FILE] = _json({
            "feature_names": list(FEATURE_NAMES),
            "classifier_feature_names": list(CLASSIFIER_FEATURES),
            "label_params": self.params.to_dict(),
            "feature_ranges": self.feature_ranges(),
            "n_train_rows": self.n_train_rows,
            "regressor_feature_names": list(REGRESSOR_FEATURES),
            "band_profiles": self.band_profiles,
            **self.training_params,
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
            expected = REGRESSOR_FEATURES if name in REGRESSORS else CLASSIFIER_FEATURES
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
        recipe = {k: v for k, v in meta.items() if k.startswith("lgb_")}
        profiles = meta.get("band_profiles")
        if not isinstance(profiles, dict) or set(profiles) != set(REGRESSORS):
            raise ModelFormatError(f"{META_FILE} has no band profiles: retrain")
        return cls(boosters, calibrators, params, ranges, int(meta.get("n_train_rows", 0)), recipe, profiles)


def profile_values(profile: dict, minutes_since_open: np.ndarray) -> np.ndarray:
    """The profile's multiple for each row's minute of session; the overall one for a slot not seen."""
    slots = profile.get("slots", {})
    overall = float(profile.get("overall", 0.0))
    return np.array([float(slots.get(f"{m:g}", overall)) if np.isfinite(m) else overall
                     for m in minutes_since_open], dtype=float)


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
