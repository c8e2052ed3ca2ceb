"""Backtest replay on hand-made predictions and labels, and on a real walk-forward."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.model.features import atr, build_features
from core.model.model_set import LabelParams
from tests.fakes.synthetic_bars import planted_pattern_bars
from training.backtest import BacktestError, calibration_table, run_backtest
from training.labels import build_labels
from training.walkforward import evaluate_walk_forward


def frames(n: int = 6):
    idx = pd.date_range("2024-03-04 10:00", periods=n, freq="5min", tz="America/New_York", name="time")
    oos = pd.DataFrame({
        "fut_high_ret": 0.001, "fut_low_ret": -0.001,
        "win_long": [0.9, 0.2, 0.5, 0.85, 0.1, 0.3][:n],
        "win_short": [0.1, 0.8, 0.5, 0.1, 0.2, 0.3][:n],
        "quality_long": [0.90, 0.10, 0.50, 0.85, 0.10, 0.79][:n],
        "quality_short": [0.05, 0.82, 0.40, 0.10, 0.20, 0.30][:n],
    }, index=idx)
    labels = pd.DataFrame({
        "win_long": [1, 0, 1, 0, 0, 1.0][:n], "win_short": [0, 1, 0, 1, 0, 0.0][:n],
        "quality_long": [1, 0, 1, 0, 0, 1.0][:n], "quality_short": [0, 1, 0, 1, 0, 0.0][:n],
        "outcome_r_long": [1.0, -1, 1, -1, -1, 1][:n], "outcome_r_short": [-1, 1.0, -1, 1, 0.2, -1][:n],
        "complete": True,
    }, index=idx)
    return oos, labels


def test_alerts_hit_rate_and_equity() -> None:
    oos, labels = frames()
    report = run_backtest(oos, labels, threshold=80)
    # alerts: row 0 long (90), row 1 short (82), row 3 long (85); row 5 is 79 -> no alert
    assert report["alerts"] == 3 and report["long_alerts"] == 2 and report["short_alerts"] == 1
    assert report["hit_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["avg_r"] == pytest.approx(1 / 3, abs=1e-4)
    assert [p["cum_r"] for p in report["equity_curve"]] == [1.0, 2.0, 1.0]
    assert report["max_drawdown_r"] == 1.0
    assert report["equity_curve"][1]["time"].startswith("2024-03-04T10:05:00")
    json.dumps(report)


def test_cooldown_is_per_direction_and_session_as_live() -> None:
    oos, labels = frames()
    # 10:00 long, 10:05 short (the other direction: not held back), 10:15 long (15 min after 10:00)
    assert run_backtest(oos, labels, threshold=80, cooldown=pd.Timedelta(minutes=10))["alerts"] == 3
    # 20 min: the 10:15 long is inside the 10:00 long's cooldown; the short still fires
    report = run_backtest(oos, labels, threshold=80, cooldown=pd.Timedelta(minutes=20))
    assert report["alerts"] == 2 and report["long_alerts"] == 1 and report["short_alerts"] == 1


def test_cooldown_restarts_each_session() -> None:
    oos, labels = frames()
    shifted = oos.index.where(oos.index < oos.index[3], oos.index + pd.Timedelta(days=1))
    oos.index = labels.index = pd.DatetimeIndex(shifted, name="time")
    # the 10:15 long moved to the next session: a full day's cooldown does not reach it
    assert run_backtest(oos, labels, threshold=80, cooldown=pd.Timedelta(hours=23))["long_alerts"] == 2


def test_costs_are_charged_in_r_and_the_mean_has_a_session_interval() -> None:
    oos, labels = frames()
    risk = pd.Series(0.5, index=oos.index)  # 1R = $0.50 a share, so $0.05 round trip costs 0.1R
    report = run_backtest(oos, labels, threshold=80, cost_per_share=0.05, risk_per_share=risk)
    assert report["avg_gross_r"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["avg_cost_r"] == pytest.approx(0.1, abs=1e-4)
    assert report["avg_r"] == pytest.approx(1 / 3 - 0.1, abs=1e-4)
    assert report["avg_r_ci95"] is None  # one session: no interval can be resampled
    idx = pd.date_range("2024-03-04 10:00", periods=40, freq="1D", tz="America/New_York", name="time")
    many = pd.concat([oos.iloc[[0]]] * 40).set_axis(idx)
    outcomes = labels.iloc[[0]].copy()
    lab = pd.concat([outcomes] * 40).set_axis(idx)
    lab["outcome_r_long"] = np.tile([1.0, -1.0], 20)
    ci = run_backtest(many, lab, threshold=80)["avg_r_ci95"]
    assert ci[0] < 0 < ci[1]
    # +1, -1, +1: a positive mean whose interval reaches below zero is no demonstrated edge
    assert run_backtest(many.iloc[:3], lab.iloc[:3], threshold=80)["verdict"].startswith("no demonstrated edge")


def test_zero_alerts_still_reports() -> None:
    oos, labels = frames()
    report = run_backtest(oos, labels, threshold=95)
    assert report["alerts"] == 0 and report["hit_rate"] is None and report["equity_curve"] == []
    assert report["verdict"].startswith("no alerts")
    assert sum(r["count"] for r in report["calibration"]["win_probability"]) == 12


def test_losing_alerts_say_no_edge() -> None:
    oos, labels = frames()
    labels["outcome_r_long"] = -1.0
    labels["outcome_r_short"] = -1.0
    assert run_backtest(oos, labels)["verdict"].startswith("no edge")


def test_incomplete_rows_are_skipped_and_bad_input_refused() -> None:
    oos, labels = frames()
    labels.loc[labels.index[0], "complete"] = False
    assert run_backtest(oos, labels)["alerts"] == 2
    with pytest.raises(BacktestError, match="quality_long"):
        run_backtest(oos.drop(columns=["quality_long"]), labels)
    with pytest.raises(BacktestError, match="label"):
        run_backtest(oos, labels.iloc[:3])


def test_calibration_table_by_decile() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 2000)
    y = (rng.uniform(0, 1, 2000) < p).astype(float)
    table = calibration_table(p, y)
    assert len(table) == 10 and sum(r["count"] for r in table) == 2000
    predicted = [r["predicted"] for r in table]
    assert predicted == sorted(predicted)
    for r in table:
        assert abs(r["predicted"] - r["realised"]) < 0.1


def test_backtest_on_a_planted_pattern_walk_forward() -> None:
    bars = planted_pattern_bars(n_sessions=60, bar_minutes=5, seed=31)
    params = LabelParams()
    features, labels = build_features(bars, 5), build_labels(bars, params, atr(bars))
    wf = evaluate_walk_forward(features, labels, params, n_folds=4, num_trees=40)
    # 60 sessions are too few for the honest calibration to go past ~0.7: alert at 60.
    report = run_backtest(wf.oos, labels, threshold=60)
    assert report["bars"] == len(wf.oos)
    assert report["alerts"] > 0 and report["avg_r"] > 0
    high = [r for r in report["calibration"]["win_probability"] if r["decile"] == 10][0]
    low = [r for r in report["calibration"]["win_probability"] if r["decile"] == 1][0]
    assert high["realised"] > low["realised"]
