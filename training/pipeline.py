"""`tradebot train`: bars -> features + labels -> walk-forward evaluation -> publish gate -> final fit
-> versioned model set in the store. Bars are fetched here; fits run on the TRAIN_EXECUTOR
(training/executors.py); every long step reports progress."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import metadata

import pandas as pd

from config import Settings
from core import calendar
from core.daily_history import DailyHistorySource
from core.marketdata import MarketDataProvider, make_provider
from core.marketdata.archive import BarArchive
from core.model.features import FEATURE_NAMES, DailyHistory, atr, build_features
from core.model.model_set import CLASSIFIERS, LabelParams, ModelSet
from core.store import IntegrityError, ModelNotFound, ModelStore
from core.types import NY, MarketDataError
from training.executors import FitExecutor, FitJob, FitOutcome, open_executor
from training.gate import check_gate, edge_verdict, method_change
from training.labels import build_labels
from training.models import CALIBRATION_METHOD, fit_model_set
from training.walkforward import evaluate_walk_forward, training_base_rate

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


def completed_sessions(now: datetime, n: int) -> list[date]:
    """The last `n` sessions that had closed by `now`."""
    today = now.astimezone(NY).date()
    sessions = calendar.sessions_between(today - timedelta(days=int(n * 1.6) + 10), today)
    if sessions and sessions[-1] == today and now < calendar.session_bounds(today)[1]:
        sessions.pop()
    return sessions[-n:] if n > 0 else []


async def load_training_bars(
    settings: Settings, provider: MarketDataProvider, archive: BarArchive, symbol: str,
    now: datetime, progress: Progress,
) -> pd.DataFrame:
    """Up to TRAIN_DAYS sessions of bars. Tradier's short history is extended through the archive;
    simulated and CSV data are read whole from the provider, and never archived, so a switch to live
    data later cannot mix made-up bars into the real history."""
    if provider.source == "csv":
        return await _file_window_bars(settings, provider, symbol, now, progress)
    wanted = completed_sessions(now, settings.train_days)
    start = datetime.combine(wanted[0], datetime.min.time(), NY) if wanted else now - timedelta(days=1)
    # The window ends at the last completed session: before the open today has no bars yet, and
    # during the session only some, so counting today would leave one session short.
    end = calendar.session_bounds(wanted[-1])[1] if wanted else now
    if provider.source == "tradier":
        added = await archive.update(provider, symbol, settings.timeframe, now,
                                     archive_days(settings.train_days), progress=progress)
        progress(f"{symbol}: archive +{added} new bars")
        return await asyncio.to_thread(archive.load, symbol, settings.timeframe, start, end)
    progress(f"{symbol}: reading {len(wanted)} sessions of {settings.timeframe} bars ({provider.source})")
    return await provider.get_bars(symbol, start, end, settings.timeframe)


def archive_days(train_days: int) -> int:
    """Calendar days that hold TRAIN_DAYS sessions. The archive's look-back is in calendar days; passing
    the session count made TRAIN_DAYS=30 fetch 30 calendar days (21 sessions) of the 40 on offer."""
    return int(train_days * 1.6) + 10


async def _file_window_bars(settings: Settings, provider: MarketDataProvider, symbol: str, now: datetime,
                            progress: Progress) -> pd.DataFrame:
    """A file's own last TRAIN_DAYS sessions, ending at its last bar (not at the wall clock: a historical
    file would otherwise train on nothing)."""
    bars = await provider.get_bars(symbol, datetime(1900, 1, 1, tzinfo=NY), now, settings.timeframe)
    # A file that runs into today's session trains, like live data, up to the last completed session.
    open_day = now.astimezone(NY).date()
    if calendar.is_session(open_day) and calendar.session_bounds(open_day)[1] > now:
        bars = bars[bars.index.date < open_day]
    if bars.empty:
        return bars
    days = pd.Index(bars.index.date).unique()
    first = days[max(0, len(days) - settings.train_days)]
    progress(f"{symbol}: reading {min(len(days), settings.train_days)} sessions of {settings.timeframe} bars "
             f"({provider.source}, {first} .. {days[-1]}, the file's last sessions)")
    return bars[bars.index.date >= first]


async def load_daily_history(source: DailyHistorySource, symbol: str, bars: pd.DataFrame,
                             progress: Progress) -> tuple[DailyHistory | None, str | None]:
    """The daily rows the features of `bars` can use (its first session's prior day, a year of VIX
    closes), and a warning when the provider serves daily history but did not this time."""
    if not source.enabled or bars.empty:
        return None, None
    days = bars.index.date
    daily = await source.get(symbol, days[0], days[-1], with_symbol=True) or DailyHistory()
    lacking = [name for name, rows in (("VIX", daily.vix), (symbol, daily.symbol)) if rows is None]
    if not lacking:
        progress(f"{symbol}: daily history: {len(daily.symbol)} {symbol} and {len(daily.vix)} VIX sessions")
        return daily, None
    return daily, (f"daily history of {' and '.join(lacking)} unavailable: prior-day levels and the VIX "
                   "percentile come from the intraday bars (shorter warm-up)")


def vix_warning(bars: pd.DataFrame) -> str | None:
    """A sentence when the bars carry no VIX (its features would be empty), else None."""
    vix = bars["vix"] if "vix" in bars.columns else None
    if vix is None or not vix.notna().any():
        return "no VIX in the data (no vix column or all empty): the 5 VIX features are empty; trained without VIX"
    if vix.isna().mean() > 0.5:
        return f"VIX missing on {vix.isna().mean():.0%} of bars: the VIX features are mostly empty"
    return None


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


def make_fit_job(settings: Settings, bars: pd.DataFrame, symbol: str, data_source: str,
                 trained_at: datetime, daily: DailyHistory | None = None) -> FitJob:
    """What a worker needs to fit one symbol, and nothing more: no Settings (they carry secrets)."""
    return FitJob(symbol=symbol, timeframe=settings.timeframe, bar_minutes=settings.bar_minutes,
                  label_params=label_params(settings), data_source=data_source, trained_at=trained_at,
                  num_trees=settings.train_num_trees, bars=bars, daily=daily)


def fit_on_bars(job: FitJob, progress: Progress) -> tuple[ModelSet, dict, dict]:
    """CPU part, no I/O: returns the final model set, its walk-forward metrics and the manifest body."""
    params, bars, symbol = job.label_params, job.bars, job.symbol
    progress(f"{symbol}: building features and labels on {len(bars):,} bars")
    features = build_features(bars, job.bar_minutes, job.daily)
    labels = build_labels(bars, params, atr(bars))
    progress(f"{symbol}: purged walk-forward evaluation")
    wf = evaluate_walk_forward(features, labels, params, num_trees=job.num_trees)
    progress(f"{symbol}: final fit on all data")
    models = fit_model_set(features, labels, params, num_trees=job.num_trees)
    manifest = {
        "symbol": symbol,
        "timeframe": job.timeframe,
        "trained_at": job.trained_at.astimezone(UTC).isoformat(timespec="seconds"),
        "data_window": _window(bars),
        "data_source": job.data_source,
        "feature_names": list(FEATURE_NAMES),
        # which features read daily rows (see docs/models.md): serving reads VIX daily the same way
        "daily_history": {"symbol": job.daily is not None and job.daily.symbol is not None,
                          "vix": job.daily is not None and job.daily.vix is not None},
        "label_params": params.to_dict(),
        "metrics": wf.metrics,
        "edge": edge_verdict(wf.metrics),
        "calibration_method": CALIBRATION_METHOD,
        # the constant forecast `tradebot evaluate` scores Brier skill against
        "base_rates": {name: training_base_rate(labels, stem) for name, stem in CLASSIFIERS.items()},
        "feature_ranges": models.feature_ranges(),
        "package_versions": _package_versions(),
    }
    manifest["trained_with_vix"] = vix_warning(bars) is None
    return models, wf.metrics, manifest


@dataclass
class _Prepared:
    """A symbol whose bars are in hand and whose fit is submitted; the parent finishes it."""
    symbol: str
    published: dict | None
    window: dict
    source: str
    warnings: list[str]
    fit: Awaitable[FitOutcome]


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
    default_workers: int = 1,
) -> list[TrainResult]:
    """Fetch each symbol's bars here, through this process's one provider and pacer, fit them on the
    TRAIN_EXECUTOR (TRAIN_WORKERS at a time, else `default_workers`), and gate and publish here."""
    executor = await open_executor(settings, default_workers)  # first: an unreachable cluster leaks nothing
    own_provider = provider is None
    provider = provider or make_provider(settings)
    daily = DailyHistorySource(provider)  # VIX daily is fetched once for all symbols
    now = now or provider.now()
    wanted = list(symbols or settings.symbols)
    results: dict[str, TrainResult] = {}
    progress(f"training {len(wanted)} symbol(s): {executor.name} executor, {executor.workers} worker(s)")
    # Bars wait in memory only for a few fits ahead: 500 symbols must not all be loaded at once.
    ahead = asyncio.Semaphore(2 * executor.workers)
    publishing = asyncio.Lock()
    finishing: list[asyncio.Task[None]] = []

    async def finish(prep: _Prepared) -> None:
        try:
            result = await _finish_one(settings, store, prep, force, progress, publishing)
        finally:
            ahead.release()
        results[prep.symbol] = result
        verdict = f"published {result.version}" if result.published else "not published"
        progress(f"[{len(results)}/{len(wanted)}] {prep.symbol}: {verdict}")

    try:
        for symbol in wanted:
            await ahead.acquire()
            prep = await _prepare_one(settings, store, archive, provider, daily, executor, symbol, now,
                                      progress)
            if isinstance(prep, TrainResult):
                ahead.release()
                results[symbol] = prep
                progress(f"[{len(results)}/{len(wanted)}] {symbol}: not trained: " + "; ".join(prep.reasons))
            else:
                finishing.append(asyncio.create_task(finish(prep)))
        await asyncio.gather(*finishing)
    finally:
        for task in finishing:
            task.cancel()
        await executor.close()
        if own_provider:
            await provider.close()
    return [results[symbol] for symbol in wanted]


async def _prepare_one(
    settings: Settings, store: ModelStore, archive: BarArchive, provider: MarketDataProvider,
    daily_source: DailyHistorySource, executor: FitExecutor, symbol: str, now: datetime, progress: Progress,
) -> TrainResult | _Prepared:
    """Everything before the fit that needs I/O, then the fit's submission; a TrainResult when the
    symbol cannot be trained at all."""
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
    if len(bars) and (no_vix := vix_warning(bars)) is not None:
        warnings.append(no_vix)
        progress(f"{symbol}: warning: {no_vix}")
    if window["sessions"] < MIN_SESSIONS:
        return TrainResult(symbol, tf, False, None, {}, window, provider.source,
                           [f"too little data: {window['sessions']} sessions (need {MIN_SESSIONS})"], warnings)
    daily, no_daily = await load_daily_history(daily_source, symbol, bars, progress)
    if no_daily is not None:
        warnings.append(no_daily)
        progress(f"{symbol}: warning: {no_daily}")
    progress(f"{symbol}: fitting ({executor.name})")
    job = make_fit_job(settings, bars, symbol, provider.source, now, daily)
    return _Prepared(symbol, published, window, provider.source, warnings, executor.submit(job))


async def _finish_one(
    settings: Settings, store: ModelStore, prep: _Prepared, force: bool, progress: Progress,
    publishing: asyncio.Lock,
) -> TrainResult:
    symbol, tf, window, source, warnings = prep.symbol, settings.timeframe, prep.window, prep.source, prep.warnings
    try:
        outcome = await prep.fit
    except Exception as exc:  # a worker that died or a lost cluster fails this symbol, not the run
        progress(f"{symbol}: fit failed: {type(exc).__name__}: {exc}")
        return TrainResult(symbol, tf, False, None, {}, window, source,
                           [f"fit failed: {type(exc).__name__}: {exc}"], warnings)
    for line in outcome.log:
        progress(line)
    if outcome.error is not None:  # enough sessions, yet too few usable rows
        progress(f"{symbol}: not trained: {outcome.error}")
        return TrainResult(symbol, tf, False, None, {}, window, source, [f"too little data: {outcome.error}"],
                           warnings)
    metrics, manifest, published = outcome.metrics, outcome.manifest, prep.published
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
        return TrainResult(symbol, tf, False, None, metrics, window, source, reasons, warnings, edge)
    async with publishing:  # one publish at a time: the store's version numbering is not concurrent
        version = await asyncio.to_thread(store.publish, symbol, tf, outcome.files, manifest)
    progress(f"{symbol}: published version {version}")
    return TrainResult(symbol, tf, True, version, metrics, window, source, reasons if not ok else [], warnings, edge)
