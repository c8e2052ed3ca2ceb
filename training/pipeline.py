"""`tradebot train`: bars -> features + labels -> walk-forward evaluation -> publish gate -> final fit
-> versioned model set in the store. One symbol at a time; every long step reports progress."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata

import pandas as pd

from config import Settings
from core import calendar
from core.marketdata import MarketDataProvider, make_provider
from core.marketdata.archive import BarArchive
from core.model.features import FEATURE_NAMES, atr, build_features
from core.model.model_set import CLASSIFIERS, LabelParams, ModelSet
from core.store import IntegrityError, ModelNotFound, ModelStore
from core.types import NY, MarketDataError
from training.gate import check_gate, edge_verdict, method_change
from training.labels import build_labels
from training.models import CALIBRATION_METHOD, TrainingDataError, fit_model_set
from training.walkforward import WalkForwardError, evaluate_walk_forward, training_base_rate

Progress = Callable[[str], None]
MIN_SESSIONS = 20  # below this a walk-forward with 4 purged folds says nothing useful
PACKAGES = ("lightgbm", "scikit-learn", "pandas", "numpy")


@dataclass
class TrainResult:
    symbol: str
    timeframe: str
    published: bool
    version: str | None
    metrics: dict
    window: dict
    data_source: str
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    edge: dict | None = None  # the manifest's edge verdict, once trained


def label_params(settings: Settings) -> LabelParams:
    return LabelParams(
        horizon_bars=settings.horizon_bars,
        target_atr=settings.target_atr,
        stop_atr=settings.stop_atr,
        quality_r=settings.quality_r,
        min_move_atr=settings.quality_min_move_atr,
    )


def _package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


async def load_training_bars(
    settings: Settings, provider: MarketDataProvider, archive: BarArchive, symbol: str,
    now: datetime, progress: Progress,
) -> pd.DataFrame:
    """Up to TRAIN_DAYS sessions of bars. Tradier's short history is extended through the archive;
    simulated and CSV data are read whole from the provider, and never archived, so a switch to live
    data later cannot mix made-up bars into the real history."""
    sessions = calendar.sessions_between((now - timedelta(days=int(settings.train_days * 1.6) + 10)).date(),
                                         now.astimezone(NY).date())
    wanted = sessions[-settings.train_days:] if sessions else []
    start = datetime.combine(wanted[0], datetime.min.time(), NY) if wanted else now - timedelta(days=1)
    if provider.source == "tradier":
        added = await archive.update(provider, symbol, settings.timeframe, now, settings.train_days,
                                     progress=progress)
        progress(f"{symbol}: archive +{added} new bars")
        return await asyncio.to_thread(archive.load, symbol, settings.timeframe, start, now)
    progress(f"{symbol}: reading {len(wanted)} sessions of {settings.timeframe} bars ({provider.source})")
    return await provider.get_bars(symbol, start, now, settings.timeframe)


def _window(bars: pd.DataFrame) -> dict:
    sessions = pd.Index(bars.index.date).unique()
    return {
        "start": bars.index[0].isoformat(),
        "end": bars.index[-1].isoformat(),
        "sessions": int(len(sessions)),
        "bars": int(len(bars)),
    }


def _published_manifest(store: ModelStore, symbol: str, timeframe: str) -> dict | None:
    try:
        return store.load(symbol, timeframe).manifest
    except ModelNotFound:
        return None


def train_on_bars(
    settings: Settings, bars: pd.DataFrame, symbol: str, data_source: str, progress: Progress
) -> tuple[ModelSet, dict, dict]:
    """CPU part, no I/O: returns the final model set, its walk-forward metrics and the manifest body."""
    params = label_params(settings)
    progress(f"{symbol}: building features and labels on {len(bars):,} bars")
    features = build_features(bars, settings.bar_minutes)
    labels = build_labels(bars, params, atr(bars))
    progress(f"{symbol}: purged walk-forward evaluation")
    wf = evaluate_walk_forward(features, labels, params)
    progress(f"{symbol}: final fit on all data")
    models = fit_model_set(features, labels, params)
    manifest = {
        "symbol": symbol,
        "timeframe": settings.timeframe,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_window": _window(bars),
        "data_source": data_source,
        "feature_names": list(FEATURE_NAMES),
        "label_params": params.to_dict(),
        "metrics": wf.metrics,
        "edge": edge_verdict(wf.metrics),
        "calibration_method": CALIBRATION_METHOD,
        # the constant forecast `tradebot evaluate` scores Brier skill against
        "base_rates": {name: training_base_rate(labels, stem) for name, stem in CLASSIFIERS.items()},
        "feature_ranges": models.feature_ranges(),
        "package_versions": _package_versions(),
    }
    return models, wf.metrics, manifest


async def train_symbols(
    settings: Settings,
    store: ModelStore,
    archive: BarArchive,
    *,
    symbols: list[str] | None = None,
    force: bool = False,
    progress: Progress = print,
    provider: MarketDataProvider | None = None,
    now: datetime | None = None,
) -> list[TrainResult]:
    own_provider = provider is None
    provider = provider or make_provider(settings)
    now = now or provider.now()
    results = []
    try:
        for symbol in symbols or settings.symbols:
            results.append(await _train_one(settings, store, archive, provider, symbol, force, now, progress))
    finally:
        if own_provider:
            await provider.close()
    return results


async def _train_one(
    settings: Settings, store: ModelStore, archive: BarArchive, provider: MarketDataProvider,
    symbol: str, force: bool, now: datetime, progress: Progress,
) -> TrainResult:
    tf = settings.timeframe
    warnings: list[str] = []
    # Read the store first: an unreachable store must fail in seconds, not after the whole fit.
    try:
        published = await asyncio.to_thread(_published_manifest, store, symbol, tf)
    except IntegrityError as exc:  # a broken set cannot serve anyway; a fresh one replaces it
        published = None
        warnings.append(f"published model unreadable ({exc}); the gate has nothing to compare with")
        progress(f"{symbol}: {warnings[-1]}")
    try:
        bars = await load_training_bars(settings, provider, archive, symbol, now, progress)
    except MarketDataError as exc:
        return TrainResult(symbol, tf, False, None, {}, {}, provider.source, [f"market data: {exc}"], warnings)
    window = _window(bars) if len(bars) else {"sessions": 0, "bars": 0}
    if window["sessions"] < settings.train_days:
        warnings.append(f"only {window['sessions']} of TRAIN_DAYS={settings.train_days} sessions available; "
                        "training on what there is")
        progress(f"{symbol}: {warnings[-1]}")
    if window["sessions"] < MIN_SESSIONS:
        return TrainResult(symbol, tf, False, None, {}, window, provider.source,
                           [f"too little data: {window['sessions']} sessions (need {MIN_SESSIONS})"], warnings)
    try:
        models, metrics, manifest = await asyncio.to_thread(
            train_on_bars, settings, bars, symbol, provider.source, progress
        )
    except (TrainingDataError, WalkForwardError) as exc:  # enough sessions, yet too few usable rows
        progress(f"{symbol}: not trained: {exc}")
        return TrainResult(symbol, tf, False, None, {}, window, provider.source,
                           [f"too little data: {exc}"], warnings)
    changed = method_change(manifest, published)
    if changed:
        # a set made under other labels or calibration is no yardstick: its numbers mean other things
        warnings.append(changed)
        progress(f"{symbol}: {changed}")
    manifest["warnings"] = warnings
    manifest["gate"] = {"compared": published is not None and changed is None, "note": changed}
    edge = manifest["edge"]
    progress(f"{symbol}: alerts {'enabled' if edge['alerts_enabled'] else 'DISABLED (no demonstrated edge)'}: "
             + "; ".join(edge["reasons"]))
    ok, reasons = check_gate(metrics, None if changed else (published or {}).get("metrics"),
                             settings.publish_margin)
    if not ok and not force:
        progress(f"{symbol}: not published: " + "; ".join(reasons))
        return TrainResult(symbol, tf, False, None, metrics, window, provider.source, reasons, warnings, edge)
    version = await asyncio.to_thread(store.publish, symbol, tf, models.to_files(), manifest)
    progress(f"{symbol}: published version {version}")
    return TrainResult(symbol, tf, True, version, metrics, window, provider.source,
                       reasons if not ok else [], warnings, edge)
