"""`tradebot evaluate`: score the latest published model, unchanged, on every bar after its training
window. A model trained through last month is checked on this month without retraining; the metric
keys are the walk-forward's, plus `window`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd

from config import Settings
from core.daily_history import DailyHistorySource, as_trained
from core.marketdata import MarketDataProvider, make_provider
from core.marketdata.archive import BarArchive
from core.model.features import DailyHistory, atr, build_features
from core.model.model_set import CLASSIFIERS, REGRESSORS, ModelSet
from core.store import ModelStore
from training.labels import build_labels
from training.metrics import direction_metrics
from training.models import usable_rows
from training.walkforward import (
    BASELINE_SESSIONS,
    classifier_metrics,
    regressor_metrics,
    trailing_baseline,
    volatility_baseline,
    volatility_metrics,
)


class NothingToEvaluate(ValueError):
    """No complete bar lies after the model's training window (the message says so)."""


def evaluate_after_window(models: ModelSet, manifest: dict, bars: pd.DataFrame, bar_minutes: int,
                          daily: DailyHistory | None = None) -> dict:
    """Metrics of `models` on the complete-label rows of `bars` that start after the manifest's
    training window. Features use the earlier bars (and `daily`, as trained) as warm-up only."""
    end_text = (manifest.get("data_window") or {}).get("end")
    if not end_text:
        raise NothingToEvaluate("the manifest records no training window")
    trained_end = pd.Timestamp(datetime.fromisoformat(end_text))
    params = models.params
    features = build_features(bars, bar_minutes, as_trained(daily, manifest))
    labels = build_labels(bars, params, atr(bars))
    usable = usable_rows(features, labels)
    rows = usable[usable > trained_end]
    before = usable[usable <= trained_end]  # the volatility baseline is fitted on these, as in a fold
    if len(rows) == 0:
        after = int((bars.index > trained_end).sum())
        raise NothingToEvaluate(
            f"no bar after the training window (ends {trained_end:%Y-%m-%d %H:%M}) to evaluate on"
            if after == 0 else f"only {after} bar(s) after the training window, none with a complete label")
    pred = models.predict(features.loc[rows])
    truth = labels.loc[rows]
    sessions = np.asarray(pd.Index(rows.date).astype(str))
    base_rates = manifest.get("base_rates") or {}
    metrics: dict = {"n_oos": int(len(rows))}
    for name, stem in CLASSIFIERS.items():
        prob = np.concatenate([pred[f"{stem}_long"].to_numpy(), pred[f"{stem}_short"].to_numpy()])
        outcome = np.concatenate([truth[f"{stem}_long"].to_numpy(float), truth[f"{stem}_short"].to_numpy(float)])
        reference = base_rates.get(name)
        if not isinstance(reference, int | float):  # older manifest: the walk-forward's base rate
            reference = ((manifest.get("metrics") or {}).get(name) or {}).get("base_rate")
        metrics[name] = classifier_metrics(prob, outcome, np.tile(sessions, 2),
                                           float(reference) if isinstance(reference, int | float) else None)
    metrics["direction"] = direction_metrics(
        pred["quality_long"].to_numpy(), pred["quality_short"].to_numpy(),
        truth["quality_long"].to_numpy(float), truth["quality_short"].to_numpy(float), sessions)
    rows_per_session = max(1, int(pd.Series(features.index.date).value_counts().median()))
    for name, col in REGRESSORS.items():
        baseline = trailing_baseline(labels, col, params.horizon_bars, BASELINE_SESSIONS * rows_per_session)
        metrics[name] = regressor_metrics(pred[col].to_numpy(), truth[col].to_numpy(),
                                          baseline.loc[rows].to_numpy())
        vol = volatility_baseline(features.loc[before], labels.loc[before, col].to_numpy(), features.loc[rows])
        metrics[name].update(volatility_metrics(pred[col].to_numpy(), truth[col].to_numpy(), vol))
    metrics["window"] = {
        "start": rows[0].isoformat(), "end": rows[-1].isoformat(),
        "sessions": int(len(set(sessions))), "bars": int(len(rows)), "trained_through": trained_end.isoformat(),
    }
    return metrics


async def evaluate_symbol(settings: Settings, store: ModelStore, archive: BarArchive, symbol: str, *,
                          provider: MarketDataProvider | None = None, now: datetime | None = None,
                          progress: Callable[[str], None] = lambda _m: None) -> dict:
    """{"symbol", "version", "metrics"} for the latest published model of `symbol`."""
    from training.pipeline import load_daily_history, load_training_bars

    loaded = await asyncio.to_thread(store.load, symbol, settings.timeframe)
    models = ModelSet.from_files(loaded.files, loaded.manifest)
    own = provider is None
    provider = provider or make_provider(settings)
    try:
        bars = await load_training_bars(settings, provider, archive, symbol, now or provider.now(), progress)
        daily, no_daily = await load_daily_history(DailyHistorySource(provider), symbol, bars, progress)
    finally:
        if own:
            await provider.close()
    if no_daily is not None:
        progress(f"{symbol}: warning: {no_daily}")
    metrics = await asyncio.to_thread(evaluate_after_window, models, loaded.manifest, bars, settings.bar_minutes,
                                      daily)
    # the window also at the top, beside the model it judges, for readers who do not open `metrics`
    return {"symbol": symbol, "version": loaded.version, "data_source": provider.source,
            "window": metrics["window"], "metrics": metrics}
