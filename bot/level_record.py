"""The record of drawn levels: the scheduled snapshot job, reading the history back, and gathering
snapshots and bars for the level scorecard (the scoring itself is core.options.level_scorecard)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from bot.services import Services
from bot.state import StateDB
from core import calendar
from core.options.level_scorecard import LevelScorecard, score_symbol, summarise
from core.options.snapshot import NO_OPTION_DATA, LevelsSnapshot, snapshot_from_report
from core.types import NY, MarketDataError, normalise_bars

log = logging.getLogger(__name__)
ATR_WARMUP_DAYS = 7  # calendar days of bars before the first snapshot: the 14-bar ATR and the prior day


@dataclass
class SnapshotRun:
    at: datetime
    taken: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # symbol -> why no snapshot
    archived: int = 0  # snapshots newly written to the model store

    def to_dict(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "taken": self.taken, "skipped": self.skipped, "archived": self.archived}


def has_option_data(services: Services) -> bool:
    return services.provider.source != "csv"


async def take_snapshots(services: Services, state: StateDB, now: datetime) -> SnapshotRun:
    """One snapshot per symbol at `now`, only while the session runs. Every snapshot goes in SQLite;
    live (Tradier) ones are also merged into the store archive, with the day's earlier ones, so a
    store outage at one snapshot heals at the next."""
    run = SnapshotRun(at=now)
    symbols = list(services.settings.symbols)
    if not calendar.is_open(now):
        run.skipped = {s: "market closed" for s in symbols}
        return run
    if not has_option_data(services):
        run.skipped = {s: NO_OPTION_DATA for s in symbols}
        return run
    for symbol in symbols:
        try:
            report = await services.predictor.levels(symbol, now=now)
        except MarketDataError as exc:
            run.skipped[symbol] = f"market data: {exc}"
            continue
        snapshot = snapshot_from_report(report, taken_at=now.replace(second=0, microsecond=0))
        if await asyncio.to_thread(state.record_level_snapshot, snapshot):
            run.taken.append(symbol)
        else:
            run.skipped[symbol] = "already recorded"
    if services.provider.source == "tradier" and services.level_archive is not None:
        day_start = datetime.combine(now.astimezone(NY).date(), datetime.min.time(), tzinfo=NY)
        today = [s for sym in symbols for s in await asyncio.to_thread(state.level_snapshots, sym, day_start, now)]
        try:
            run.archived = await asyncio.to_thread(services.level_archive.merge, today)
        except Exception as exc:  # SQLite holds them; the next run retries the store
            log.warning("levels snapshots not archived to the store (%s); retried at the next snapshot",
                        type(exc).__name__)
    return run


async def snapshot_history(services: Services, state: StateDB, symbol: str, start: datetime | None,
                           end: datetime | None) -> list[LevelsSnapshot]:
    """SQLite's snapshots, joined on live data with the store archive (a fresh deployment's SQLite is
    empty, the store keeps the history); one per taken_at, oldest first."""
    rows = {s.taken_at: s for s in await asyncio.to_thread(state.level_snapshots, symbol, start, end)}
    if services.provider.source == "tradier" and services.level_archive is not None:
        for s in await asyncio.to_thread(services.level_archive.load, symbol, start, end):
            rows.setdefault(s.taken_at, s)
    return [rows[t] for t in sorted(rows)]


async def _bars_for(services: Services, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Archived bars where there are any, the provider's for the rest."""
    tf = services.settings.timeframe
    archived = await asyncio.to_thread(services.archive.load, symbol, tf, start, end)
    fetch_from = start if archived.empty else archived.index[-1].to_pydatetime() + timedelta(seconds=1)
    fetched = await services.provider.get_bars(symbol, fetch_from, end, tf) if fetch_from < end else archived[:0]
    frames = [f for f in (archived, fetched) if not f.empty]
    return normalise_bars(pd.concat(frames)) if frames else archived


async def level_scorecard(services: Services, state: StateDB, now: datetime) -> LevelScorecard | None:
    """The scorecard over every recorded snapshot up to `now`; None when the data has no option chains."""
    if not has_option_data(services):
        return None
    s = services.settings
    results = []
    for symbol in s.symbols:
        snapshots = await snapshot_history(services, state, symbol, None, now)
        if not snapshots:
            continue
        start = snapshots[0].taken_at.astimezone(NY).replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            bars = await _bars_for(services, symbol, start - timedelta(days=ATR_WARMUP_DAYS), now)
        except MarketDataError as exc:
            log.warning("level scorecard: no %s bars (%s)", symbol, exc)
            continue
        results.append(await asyncio.to_thread(score_symbol, symbol, bars, snapshots,
                                               touch_atr=s.level_touch_atr, baseline_step=s.level_baseline_step))
    return summarise(results)
