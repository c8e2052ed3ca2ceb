"""The composition root: settings -> provider, store, archive, registry, predictor, chart rendering.

The CLI and the bot build their objects here, so there is one place that says what uses what.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.memory import trim_heap
from charts.levels_chart import render_levels_chart
from charts.prediction_chart import render_prediction_chart
from config import Settings
from core.marketdata import MarketDataProvider, make_provider
from core.marketdata.archive import BarArchive
from core.model_registry import ModelRegistry
from core.options.snapshot_archive import SnapshotArchive
from core.predictor import PredictionBundle, Predictor
from core.store import ModelStore
from core.stores import open_level_archive, open_store
from core.types import NY, LevelsReport


@dataclass
class Services:
    settings: Settings
    provider: MarketDataProvider
    store: ModelStore
    archive: BarArchive
    registry: ModelRegistry
    predictor: Predictor
    level_archive: SnapshotArchive | None = None  # options-levels snapshots from live data

    async def close(self) -> None:
        await self.provider.close()

    async def prediction_png(self, bundle: PredictionBundle, *, for_alert: bool = False) -> bytes:
        """/predict charts mark the global ALERT_THRESHOLD; an alert's one chart serves recipients
        with different thresholds, so it marks none (each caption names its recipient's)."""
        s = self.settings
        return await asyncio.to_thread(
            _then_trim, render_prediction_chart, bundle.prediction, bundle.bars, prev_close=bundle.prev_close,
            horizon_bars=s.horizon_bars, bar_minutes=s.bar_minutes,
            threshold=None if for_alert else s.alert_threshold,
        )

    async def levels_png(self, report: LevelsReport) -> bytes:
        return await asyncio.to_thread(_then_trim, render_levels_chart, report, data_source=self.provider.source)

    def chart_path(self, kind: str, symbol: str, when: datetime) -> Path:
        """Where a chart goes by default; the writer creates the folder."""
        return self.settings.state_dir / "charts" / f"{symbol}_{kind}_{when.astimezone(NY):%Y%m%d_%H%M}.png"


def _then_trim(render: Callable[..., bytes], *args: Any, **kwargs: Any) -> bytes:
    """Render in this worker thread, then give its arena's freed pages back (see bot.memory)."""
    try:
        return render(*args, **kwargs)
    finally:
        trim_heap()


def build_services(settings: Settings, provider: MarketDataProvider | None = None) -> Services:
    provider = provider or make_provider(settings)
    store, archive = open_store(settings)
    registry = ModelRegistry(store, settings.symbols, settings.timeframe)
    predictor = Predictor(settings, provider, registry)
    return Services(settings, provider, store, archive, registry, predictor, open_level_archive(settings))
