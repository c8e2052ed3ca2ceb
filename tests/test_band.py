"""The band: the volatility baseline it is scored against, and the structural band model's file round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.model.features import atr, band_scale, build_features
from core.model.model_set import LabelParams, ModelFormatError, ModelSet
from tests.fakes.synthetic_bars import random_walk_bars
from training.labels import build_labels
from training.models import fit_model_set
from training.walkforward import volatility_baseline, volatility_metrics


def test_volatility_baseline_recovers_scale_times_atr_times_profile() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    slot = rng.choice([5.0, 10.0, 15.0], n)
    atr_pct = rng.uniform(0.001, 0.003, n)
    profile = {5.0: 1.8, 10.0: 1.2, 15.0: 0.9}
    target = 2.0 * atr_pct * np.array([profile[s] for s in slot])
    train = pd.DataFrame({"atr_pct": atr_pct, "minutes_since_open": slot})
    test = pd.DataFrame({"atr_pct": [0.002, 0.002, 0.002], "minutes_since_open": [5.0, 15.0, 20.0]})
    got = volatility_baseline(train, target, test)
    overall = np.median(target / atr_pct)  # an unseen minute gets the overall multiple
    np.testing.assert_allclose(got[:2], [2.0 * 0.002 * 1.8, 2.0 * 0.002 * 0.9])
    assert got[2] == pytest.approx(0.002 * overall, rel=0.05)


def test_volatility_metrics_ratio() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    m = volatility_metrics(actual + 0.5, actual, actual + 1.0)
    assert m == {"vol_baseline_mae": 1.0, "relative_mae_vol": 0.5}
    assert volatility_metrics(actual, actual, np.full(4, np.nan))["relative_mae_vol"] is None


def test_band_is_scale_times_profile_plus_booster_and_survives_the_file_round_trip() -> None:
    bars = random_walk_bars(n_sessions=25, bar_minutes=5, seed=9)
    params = LabelParams()
    features = build_features(bars, 5)
    labels = build_labels(bars, params, atr(bars))
    models = fit_model_set(features, labels, params, num_trees=10)
    files = models.to_files()
    loaded = ModelSet.from_files(files, {})
    tail = features.iloc[-200:]
    pd.testing.assert_frame_equal(models.predict(tail), loaded.predict(tail))
    pred = models.predict(tail)
    # Highs above, lows below the entry, and on the order of the volatility forecast.
    ratio = pred["fut_high_ret"] / band_scale(tail)
    assert (pred["fut_high_ret"] > 0).all() and (pred["fut_low_ret"] < 0).all()
    assert ratio.between(0.2, 10).all()
    assert set(models.band_profiles) == {"future_high", "future_low"}

    meta = json.loads(files["model_meta.json"])
    del meta["band_profiles"]
    files["model_meta.json"] = json.dumps(meta).encode()
    with pytest.raises(ModelFormatError, match="retrain"):
        ModelSet.from_files(files, {})
