"""`tradebot backtest`: replay the walk-forward out-of-sample predictions over the available bars and
report what following the alerts would have done. Always reports, even when the answer is no edge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pandas as pd

from config import Settings
from core.daily_history import DailyHistorySource
from core.marketdata import make_provider
from core.marketdata.archive import BarArchive
from core.model.features import atr, build_features
from training.labels import build_labels
from training.pipeline import label_params, load_daily_history, load_training_bars
from training.walkforward import evaluate_walk_forward


async def backtest_symbol(settings: Settings, archive: BarArchive, symbol: str,
                          progress: Callable[[str], None]) -> tuple[dict, str]:
    """The walk-forward backtest of one symbol on its training window: (report, data source)."""
    from training.backtest import run_backtest

    provider = make_provider(settings)
    try:
        bars = await load_training_bars(settings, provider, archive, symbol, provider.now(), progress)
        daily, no_daily = await load_daily_history(DailyHistorySource(provider), symbol, bars, progress)
    finally:
        await provider.close()
    if no_daily is not None:
        progress(f"{symbol}: warning: {no_daily}")
    params = label_params(settings)

    def compute() -> dict:
        features = build_features(bars, settings.bar_minutes, daily)  # as training computes them
        labels = build_labels(bars, params, atr(bars))
        wf = evaluate_walk_forward(features, labels, params)
        return run_backtest(wf.oos, labels, threshold=settings.alert_threshold,
                            cooldown=pd.Timedelta(minutes=settings.alert_cooldown_minutes),
                            cost_per_share=settings.backtest_cost_per_share,
                            risk_per_share=params.stop_atr * atr(bars))

    return await asyncio.to_thread(compute), provider.source
