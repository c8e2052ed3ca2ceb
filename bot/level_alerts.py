"""Which options levels the latest closed bar closed across, for the alert scan (bot.alerts)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from bot.services import Services
from bot.state import StateDB
from core import calendar
from core.options.level_cross import LevelCross, bar_crossings
from core.predictor import bar_close_time, closed_by
from core.types import NY


def level_setup_key(cross: LevelCross) -> str:
    """Once per symbol, level kind, direction and session, however the snapshots move the level."""
    return f"level|{cross.symbol}|{cross.kind}|{cross.direction}|{cross.bar_start.astimezone(NY).date()}"


async def latest_bar_crossings(services: Services, state: StateDB, symbol: str, at: datetime) -> list[LevelCross]:
    """Crossings by the last bar of today's session closed by `at`, against the latest snapshot of the
    session taken by that bar's close (never a later one: no look-ahead). None before the first
    snapshot of the session."""
    day = at.astimezone(NY).date()
    if not calendar.is_session(day):
        return []
    bar_minutes = services.settings.bar_minutes
    bars = closed_by(await services.predictor.bars.get(symbol, at), at, bar_minutes)
    if bars.empty or bars.index[-1].date() != day:
        return []
    start = bars.index[-1].to_pydatetime()
    close_at = bar_close_time(bars.index[-1], bar_minutes)
    session_open = calendar.session_bounds(day)[0]
    snapshots = await asyncio.to_thread(state.level_snapshots, symbol, session_open, close_at)
    if not snapshots:
        return []
    last = bars.iloc[-1]
    return bar_crossings(snapshots[-1], start, close_at, float(last["open"]), float(last["close"]))
