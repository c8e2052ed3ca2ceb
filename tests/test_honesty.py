"""Evaluation honesty: nothing to learn gives AUC ~0.5, a planted pattern is found, the purge holds,
and the regressor baseline only uses labels already known."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from core.marketdata.simulated import SimulatedProvider
from core.model.features import atr, build_features
from core.model.model_set import LabelParams
from core.types import NY
from tests.fakes.synthetic_bars import planted_pattern_bars, random_walk_bars
from training.backtest import calibration_table
from training.gate import edge_verdict
from training.labels import build_labels
from training.models import NUM_TREES
from training.walkforward import (
    WalkForwardError,
    evaluate_walk_forward,
    make_folds,
    purge_bars,
    trailing_baseline,
)

PARAMS = LabelParams()
TREES = 60  # fewer than the pipeline's 200 to keep the suite fast; the signal is the same
SIM_NOW = datetime(2026, 11, 24, 16, 30, tzinfo=NY)


def walk_forward(bars: pd.DataFrame):
    features = build_features(bars, 5)
    labels = build_labels(bars, PARAMS, atr(bars))
    return evaluate_walk_forward(features, labels, PARAMS, n_folds=5, seed=0, num_trees=TREES), labels


@pytest.fixture(scope="module")
def random_walk():
    return walk_forward(random_walk_bars(n_sessions=180, bar_minutes=5, seed=21))


@pytest.fixture(scope="module")
def planted():
    return walk_forward(planted_pattern_bars(n_sessions=180, bar_minutes=5, seed=22))


def test_random_walk_has_no_edge(random_walk) -> None:
    wf, _ = random_walk
    for name in ("profit_target", "trade_quality"):
        assert abs(wf.metrics[name]["auc"] - 0.5) <= 0.05, (name, wf.metrics[name])
    for name in ("future_high", "future_low"):
        assert wf.metrics[name]["relative_mae"] > 0.9  # no model beats the trailing mean by much


def test_random_walk_cannot_alert_and_is_no_worse_than_the_base_rate(random_walk) -> None:
    wf, _ = random_walk
    for name in ("profit_target", "trade_quality"):
        m = wf.metrics[name]
        assert m["max_probability"] < 0.8 and m["min_probability"] > 0.0, (name, m["max_probability"])
        assert m["brier_skill"] >= -0.002, (name, m["brier_skill"])
        # Labels cut at the close make the time of day informative even here; beyond it there is nothing.
        assert m["brier_skill_time_of_day"] <= 0.002, (name, m["brier_skill_time_of_day"])
        # any AUC above 0.5 here is what the time of day alone ranks, not skill
        assert m["auc"] <= m["auc_time_of_day"] + 0.01, (name, m["auc"], m["auc_time_of_day"])
    assert edge_verdict(wf.metrics)["alerts_enabled"] is False


@pytest.fixture(scope="module")
def simulated_market():
    """The simulated market with its default planted edge, 180 sessions, the full training recipe."""
    provider = SimulatedProvider(seed=7, clock=lambda: SIM_NOW)
    bars = asyncio.run(provider.get_bars("SPY", datetime(2024, 1, 1, tzinfo=NY), SIM_NOW, "5min"))
    days = sorted(set(bars.index.date))[-180:]
    bars = bars[bars.index.date >= days[0]]
    features = build_features(bars, 5)
    labels = build_labels(bars, PARAMS, atr(bars))
    return evaluate_walk_forward(features, labels, PARAMS, n_folds=5, seed=0, num_trees=NUM_TREES), labels


def assert_deciles_on_the_diagonal(wf, labels, stem: str) -> None:
    truth = labels.loc[wf.oos.index]
    prob = np.concatenate([wf.oos[f"{stem}_long"], wf.oos[f"{stem}_short"]])
    outcome = np.concatenate([truth[f"{stem}_long"], truth[f"{stem}_short"]])
    for row in calibration_table(prob, outcome):
        if row["count"] >= 200:
            assert abs(row["predicted"] - row["realised"]) <= 0.05, (stem, row)


def test_simulated_win_probability_deciles_on_the_diagonal(simulated_market) -> None:
    wf, labels = simulated_market
    assert_deciles_on_the_diagonal(wf, labels, "win")


def test_simulated_edge_is_found_and_honestly_calibrated(simulated_market) -> None:
    wf, labels = simulated_market
    assert edge_verdict(wf.metrics)["alerts_enabled"] is True
    for name in ("profit_target", "trade_quality"):
        assert wf.metrics[name]["auc"] >= 0.6
    direction = wf.metrics["direction"]
    assert direction["auc"] > 0.5 and direction["auc_ci95"][0] > 0.5
    assert_deciles_on_the_diagonal(wf, labels, "quality")
    # the demo lives: honest scores reach 80 a few times per session
    at80 = next(r for r in wf.metrics["trade_quality"]["thresholds"] if r["threshold"] == 80)
    assert at80["per_session"] >= 1 and at80["precision_ci95"][0] > 0.7


def test_uncertainty_keys_are_complete(random_walk) -> None:
    wf, _ = random_walk
    for name in ("profit_target", "trade_quality"):
        m = wf.metrics[name]
        assert len(m["auc_ci95"]) == 2 and m["auc_ci95"][0] <= m["auc"] <= m["auc_ci95"][1]
        assert [r["threshold"] for r in m["thresholds"]] == [50, 60, 70, 80, 90]
        assert all(set(r) == {"threshold", "count", "per_session", "precision", "precision_ci95"}
                   for r in m["thresholds"])
        assert [(r["low"], r["high"]) for r in m["buckets"]] == [(lo, lo + 10) for lo in range(0, 100, 10)]
        assert sum(r["count"] for r in m["buckets"]) == m["n"]
    assert set(wf.metrics["direction"]) >= {"auc", "auc_ci95"}


def test_planted_pattern_is_found(planted) -> None:
    wf, _ = planted
    for name in ("profit_target", "trade_quality"):
        assert wf.metrics[name]["auc"] >= 0.6, (name, wf.metrics[name])
        assert all(a >= 0.55 for a in wf.metrics[name]["auc_by_fold"])


def test_metrics_are_json_and_complete(random_walk) -> None:
    wf, _ = random_walk
    back = json.loads(json.dumps(wf.metrics))
    assert back["n_folds"] == 5 and len(back["folds"]) == 5
    for name in ("profit_target", "trade_quality"):
        assert {"auc", "brier", "log_loss", "base_rate", "precision_at_80", "count_at_80"} <= set(back[name])
    for name in ("future_high", "future_low"):
        assert {"mae", "baseline_mae", "relative_mae"} <= set(back[name])


def test_oos_covers_only_complete_test_rows(random_walk) -> None:
    wf, labels = random_walk
    assert labels.loc[wf.oos.index, "complete"].all()
    assert wf.oos.index.is_monotonic_increasing and wf.oos.index.is_unique
    assert sorted(wf.oos["fold"].unique()) == [0, 1, 2, 3, 4]


def test_purge_separates_every_test_row_from_every_train_row(random_walk) -> None:
    wf, _ = random_walk
    h = PARAMS.horizon_bars
    assert len(wf.folds) >= 4
    previous_test_end = -1
    for fold in wf.folds:
        assert fold.test_positions.min() - fold.train_positions.max() > h
        assert fold.test_positions.min() > previous_test_end  # time order, no reuse
        previous_test_end = fold.test_positions.max()


def test_make_folds_purges_and_expands() -> None:
    usable = np.ones(1000, dtype=bool)
    folds = make_folds(1000, usable, 4, purge=13)
    sizes = [len(f.train_positions) for f in folds]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    for f in folds:
        assert f.test_positions.min() - f.train_positions.max() >= 14
    assert purge_bars(PARAMS) == PARAMS.horizon_bars + 1
    with pytest.raises(WalkForwardError):
        make_folds(1000, usable, 3, purge=13)
    with pytest.raises(WalkForwardError):
        make_folds(1000, np.zeros(1000, dtype=bool), 4, purge=13)


def test_baseline_uses_only_labels_known_at_t() -> None:
    bars = random_walk_bars(n_sessions=5, bar_minutes=5, seed=3)
    labels = build_labels(bars, PARAMS, atr(bars))
    h = PARAMS.horizon_bars
    base = trailing_baseline(labels, "fut_high_ret", h, 100)
    t = 250
    changed = labels.copy()
    changed.iloc[t - h + 1:, changed.columns.get_loc("fut_high_ret")] = 9.0  # labels not yet known at t
    after = trailing_baseline(changed, "fut_high_ret", h, 100)
    pd.testing.assert_series_equal(after.iloc[: t + 1], base.iloc[: t + 1])
    assert after.iloc[t + 1] != base.iloc[t + 1]
