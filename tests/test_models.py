"""ModelSet: fit, calibrated predictions, file round trip without pickle, feature-list checks; the
publish gate."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.model.features import FEATURE_NAMES, atr, build_features
from core.model.model_set import (
    CALIBRATION_FILE,
    MODEL_FILES,
    PREDICTION_COLUMNS,
    Calibrator,
    LabelParams,
    ModelFormatError,
    ModelSet,
    features_out_of_range,
)
from tests.fakes.synthetic_bars import planted_pattern_bars
from training.gate import check_gate, edge_verdict, method_change
from training.labels import build_labels
from training.models import TrainingDataError, fit_calibrator, fit_model_set

PARAMS = LabelParams()


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    bars = planted_pattern_bars(n_sessions=60, bar_minutes=5, seed=8)
    return build_features(bars, 5), build_labels(bars, PARAMS, atr(bars))


@pytest.fixture(scope="module")
def models(data: tuple[pd.DataFrame, pd.DataFrame]) -> ModelSet:
    features, labels = data
    return fit_model_set(features, labels, PARAMS, seed=0, num_trees=40)


def manifest_for(m: ModelSet) -> dict:
    return {"feature_names": list(FEATURE_NAMES), "label_params": PARAMS.to_dict(),
            "feature_ranges": m.feature_ranges()}


def test_predictions_are_calibrated_probabilities(models: ModelSet, data) -> None:
    features, labels = data
    pred = models.predict(features)
    assert list(pred.columns) == PREDICTION_COLUMNS
    assert pred.index.equals(features.index)
    probs = pred[["win_long", "win_short", "quality_long", "quality_short"]].to_numpy()
    assert np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()
    assert set(models.boosters) == {"future_high", "future_low", "profit_target", "trade_quality"}
    assert all(c.kind == "binned-isotonic" for c in models.calibrators.values())
    # the regressors know which way the excursions point
    assert (pred["fut_high_ret"].median() > 0) and (pred["fut_low_ret"].median() < 0)


def test_round_trip_gives_identical_predictions(models: ModelSet, data) -> None:
    features, _ = data
    files = models.to_files()
    assert set(files) >= set(MODEL_FILES.values()) | {CALIBRATION_FILE}
    json.loads(files[CALIBRATION_FILE])
    loaded = ModelSet.from_files(dict(files), manifest_for(models))
    pd.testing.assert_frame_equal(loaded.predict(features), models.predict(features), check_exact=True)
    assert loaded.feature_ranges() == models.feature_ranges()
    assert loaded.params == PARAMS


def test_feature_list_mismatch_is_refused(models: ModelSet) -> None:
    files = models.to_files()
    swapped = list(FEATURE_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ModelFormatError, match="feature #0"):
        ModelSet.from_files(files, {"feature_names": swapped})
    with pytest.raises(ModelFormatError, match="features"):
        ModelSet.from_files(files, {"feature_names": FEATURE_NAMES[:-1]})
    renamed = dict(files)
    name = MODEL_FILES["trade_quality"]
    renamed[name] = files[name].decode().replace("rsi_14", "rsi_15").encode()
    with pytest.raises(ModelFormatError, match="rsi_15"):
        ModelSet.from_files(renamed, {"feature_names": FEATURE_NAMES})
    missing = {k: v for k, v in files.items() if k != MODEL_FILES["future_low"]}
    with pytest.raises(ModelFormatError, match="missing"):
        ModelSet.from_files(missing, {"feature_names": FEATURE_NAMES})
    broken = dict(files)
    broken[CALIBRATION_FILE] = b"{not json"
    with pytest.raises(ModelFormatError, match="JSON"):
        ModelSet.from_files(broken, {"feature_names": FEATURE_NAMES})


def test_predict_refuses_a_frame_without_the_features(models: ModelSet, data) -> None:
    features, _ = data
    with pytest.raises(ModelFormatError, match="vix"):
        models.predict(features.drop(columns=["vix"]))


def test_feature_ranges_flag_outliers(models: ModelSet, data) -> None:
    features, _ = data
    ranges = models.feature_ranges()
    assert list(ranges) == FEATURE_NAMES
    assert all(lo <= hi for lo, hi in ranges.values())
    row = features.iloc[-1].copy()
    assert "vix" not in features_out_of_range(ranges, row)
    row["vix"] = 1e6
    assert "vix" in features_out_of_range(ranges, row)


def test_calibrator_is_monotone_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 5000)
    outcome = (rng.uniform(0, 1, 5000) < raw**2).astype(float)
    cal = fit_calibrator(raw, outcome)
    grid = np.linspace(0, 1, 101)
    out = cal.apply(grid)
    assert np.all(np.diff(out) >= 0)
    assert out[50] == pytest.approx(0.25, abs=0.06)
    again = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert np.array_equal(again.apply(grid), out)
    assert fit_calibrator(raw[:10], outcome[:10]).kind == "constant"
    assert fit_calibrator(raw[:10], outcome[:10], base_rate=0.3).apply(np.array([0.9]))[0] == 0.3


def test_calibration_with_few_extreme_rows_never_gives_0_or_1() -> None:
    # 12,000 noise rows plus a handful of extreme raw scores that all came true (or all failed): a
    # plain isotonic map puts probability 1.0 (0.0) on those 4 rows; this one may not.
    rng = np.random.default_rng(1)
    raw = np.r_[rng.uniform(0.3, 0.7, 12000), [0.99] * 4, [0.01] * 4]
    outcome = np.r_[(rng.uniform(0, 1, 12000) < 0.5).astype(float), [1.0] * 4, [0.0] * 4]
    cal = fit_calibrator(raw, outcome)
    out = cal.apply(np.r_[np.linspace(0, 1, 101), 0.99, 1.0])
    assert 0.0 < out.min() and out.max() < 1.0
    assert out.max() < 0.6  # the 4 lucky rows do not lift the top: every level rests on >= 200 rows
    # even a single class, or no rows, gives a smoothed rate strictly inside (0, 1)
    for y in (np.ones(500), np.zeros(500), np.array([])):
        level = fit_calibrator(np.linspace(0, 1, len(y)), y).apply(np.array([0.0, 1.0]))
        assert ((0 < level) & (level < 1)).all()


def test_every_calibration_level_rests_on_the_minimum_bucket() -> None:
    from training.models import MIN_BUCKET_ROWS

    rng = np.random.default_rng(2)
    raw = rng.uniform(0, 1, 3000)
    outcome = (rng.uniform(0, 1, 3000) < raw).astype(float)
    cal = fit_calibrator(raw, outcome)
    assert cal.kind == "binned-isotonic" and len(cal.x) >= 4  # a real signal keeps several levels
    # knots come in (first, last) raw-score pairs, one flat level per pool of >= MIN_BUCKET_ROWS rows
    for lo, hi, y_lo, y_hi in zip(cal.x[::2], cal.x[1::2], cal.y[::2], cal.y[1::2], strict=True):
        assert y_lo == y_hi and ((raw >= lo) & (raw <= hi)).sum() >= MIN_BUCKET_ROWS


def test_a_step_resting_on_few_sessions_counts_as_few_observations() -> None:
    # 40 sessions of noise at 0.3, and 400 top-scoring rows from four sessions that came true at 1.0,
    # 0.95, 0.3 and 0.2 (a booster whose skill held on two days). Counted as rows, the top is a clear
    # step to ~0.6; counted by session, its rate is too uncertain to be told apart from the rest.
    rng = np.random.default_rng(3)
    raw = np.r_[rng.uniform(0.0, 0.6, 4000), rng.uniform(0.8, 1.0, 400)]
    top = np.repeat([1.0, 0.95, 0.3, 0.2], 100)
    outcome = np.r_[rng.uniform(0, 1, 4000) < 0.3, rng.uniform(0, 1, 400) < top].astype(float)
    sessions = np.r_[np.repeat(np.arange(40), 100), np.repeat([40, 41, 42, 43], 100)]
    as_rows = fit_calibrator(raw, outcome).apply(np.array([0.9]))[0]
    by_session = fit_calibrator(raw, outcome, sessions=sessions).apply(np.array([0.9]))[0]
    assert as_rows > 0.55
    assert by_session < 0.4
    # spread over many sessions, the same step stands
    spread = rng.permutation(np.repeat(np.arange(40), 110))
    assert fit_calibrator(raw, outcome, sessions=spread).apply(np.array([0.9]))[0] > 0.55


def test_served_classifier_is_the_one_its_map_was_fitted_on(data) -> None:
    # The map must describe the booster it is applied to: refitting it on the SERVED booster's raw
    # scores over the calibration tail gives the stored map exactly (a booster refitted on all rows
    # after the map was made would give other scores, and another map).
    from training.models import (
        CALIBRATION_FRACTION,
        _smoothed_rate,
        _stack_sides,
        _stacked_target,
        usable_rows,
    )

    features, labels = data
    m = fit_model_set(features, labels, PARAMS, seed=0, num_trees=40)
    rows = usable_rows(features, labels)
    tail = rows[-int(len(rows) * CALIBRATION_FRACTION):]
    for name, stem in (("profit_target", "win"), ("trade_quality", "quality")):
        raw = m.boosters[name].predict(_stack_sides(features.loc[tail]).to_numpy())
        again = fit_calibrator(raw, _stacked_target(labels.loc[tail], stem),
                               base_rate=_smoothed_rate(_stacked_target(labels.loc[rows], stem)),
                               sessions=np.tile(np.asarray(tail.date), 2))
        assert again.to_dict() == m.calibrators[name].to_dict(), name
    assert m.training_params["calibration_method"].endswith("head-booster")


def test_too_little_data_is_a_clear_error(data) -> None:
    features, labels = data
    with pytest.raises(TrainingDataError, match="rows"):
        fit_model_set(features.iloc[:150], labels.iloc[:150], PARAMS, num_trees=5)


def test_training_code_never_imports_pickle() -> None:
    root = Path(__file__).resolve().parents[1] / "training"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"pickle", "joblib", "cloudpickle", "dill"}, path


# ---- publish gate ---------------------------------------------------------------------------------

def metrics(auc: float = 0.6, brier: float = 0.24, rel: float = 0.95) -> dict:
    return {
        "profit_target": {"auc": auc, "brier": brier},
        "trade_quality": {"auc": auc, "brier": brier},
        "future_high": {"relative_mae": rel},
        "future_low": {"relative_mae": rel},
    }


def test_gate_passes_without_a_published_set_or_within_margin() -> None:
    assert check_gate(metrics(), None, 0.02) == (True, [])
    assert check_gate(metrics(auc=0.59, brier=0.25, rel=0.96), metrics(), 0.02) == (True, [])


def test_gate_refuses_clearly_worse_metrics_and_names_them() -> None:
    new = metrics()
    new["trade_quality"]["auc"] = 0.541
    new["profit_target"]["brier"] = 0.30
    new["future_low"]["relative_mae"] = 1.2
    old = metrics()
    old["trade_quality"]["auc"] = 0.602
    ok, reasons = check_gate(new, old, 0.02)
    assert not ok
    assert "trade_quality AUC 0.541 < published 0.602 - 0.02" in reasons
    assert any(r.startswith("profit_target Brier 0.300 > published 0.240") for r in reasons)
    assert any(r.startswith("future_low relative MAE") for r in reasons)
    assert len(reasons) == 3


def test_gate_refuses_a_metric_that_could_not_be_computed() -> None:
    new = metrics()
    new["profit_target"]["auc"] = None
    ok, reasons = check_gate(new, metrics(), 0.02)
    assert not ok and "profit_target AUC could not be computed" in reasons[0]



def test_edge_verdict_needs_the_whole_auc_interval_above_half_and_positive_skill() -> None:
    good = {"trade_quality": {"auc": 0.62, "auc_ci95": [0.58, 0.66], "brier_skill": 0.03}}
    assert edge_verdict(good)["alerts_enabled"] is True
    straddles = {"trade_quality": {"auc": 0.52, "auc_ci95": [0.49, 0.55], "brier_skill": 0.01}}
    verdict = edge_verdict(straddles)
    assert verdict["alerts_enabled"] is False and "not above 0.5" in verdict["reasons"][0]
    no_skill = {"trade_quality": {"auc": 0.62, "auc_ci95": [0.58, 0.66], "brier_skill": -0.001}}
    assert edge_verdict(no_skill)["alerts_enabled"] is False
    assert edge_verdict({})["alerts_enabled"] is False


def test_gate_comparison_is_skipped_across_a_change_of_method() -> None:
    new = {"calibration_method": "binned-isotonic-shrunk/head-booster", "label_params": PARAMS.to_dict()}
    assert method_change(new, None) is None
    assert method_change(new, dict(new)) is None
    assert "calibration changed" in method_change(new, {"label_params": PARAMS.to_dict()})
    other = {**new, "label_params": {**PARAMS.to_dict(), "horizon_bars": 6}}
    assert "label parameters changed" in method_change(new, other)
