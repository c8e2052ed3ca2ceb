"""`tradebot evaluate`: the published model, unchanged, scored on the bars after its training window."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.cli_text import format_evaluation
from core.stores import open_store
from core.types import NY
from tests.fakes.bot_stack import OPEN_TIME, make_settings, sim_provider
from training.evaluate import NothingToEvaluate, evaluate_symbol

LATER = datetime(2026, 12, 1, 16, 30, tzinfo=NY)  # five sessions after the models were trained


async def test_scores_only_bars_after_the_training_window(tmp_path, trained_store) -> None:
    settings = make_settings(tmp_path)
    store, archive = open_store(settings)
    provider, _ = sim_provider(settings, LATER)
    result = await evaluate_symbol(settings, store, archive, "SPY", provider=provider, now=LATER)
    m = result["metrics"]
    manifest = store.load("SPY", settings.timeframe).manifest
    trained_end = datetime.fromisoformat(manifest["data_window"]["end"])
    window = m["window"]
    assert result["window"] == window
    assert datetime.fromisoformat(window["start"]) > trained_end
    assert window["trained_through"] == trained_end.isoformat()
    assert 4 <= window["sessions"] <= 6 and window["bars"] == m["n_oos"]
    for name in ("profit_target", "trade_quality"):
        assert {"auc", "auc_ci95", "brier_skill", "max_probability", "min_probability", "thresholds",
                "buckets"} <= set(m[name])
    assert {"auc", "auc_ci95"} <= set(m["direction"])
    for name in ("future_high", "future_low"):
        assert {"mae", "relative_mae", "relative_mae_vol"} <= set(m[name])
        assert m[name]["relative_mae_vol"] > 0
    text = format_evaluation(result)
    assert "SPY model" in text and "scored out of time on" in text and "trade_quality" in text


async def test_no_bar_after_the_window_says_so(tmp_path, trained_store) -> None:
    settings = make_settings(tmp_path)
    store, archive = open_store(settings)
    provider, _ = sim_provider(settings, OPEN_TIME)
    with pytest.raises(NothingToEvaluate, match="after the training window"):
        await evaluate_symbol(settings, store, archive, "SPY", provider=provider, now=OPEN_TIME)
