"""Which options levels the bars of today's session closed across, for the alert scan (bot.alerts)."""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from datetime import datetime

import pandas as pd

from bot.services import Services
from bot.state import StateDB
from core import calendar
from core.options.level_cross import LevelCross, bar_crossings
from core.predictor import bar_close_time, closed_by
from core.types import NY


def level_setup_key(cross: LevelCross) -> str:
    """Once per symbol, level kind, direction and session, however the snapshots move the level."""
    return f"level|{cross.symbol}|{cross.kind}|{cross.direction}|{cross.bar_start.astimezone(NY).date()}"


async def session_crossings(services: Services, state: StateDB, symbol: str, at: datetime) -> list[LevelCross]:
    """The first crossing of each setup (level_setup_key) by the bars of today's session closed by `at`,
    oldest first. Every bar is checked, not only the last, so a scan that was late, skipped or lost to a
    restart still finds what closed across a level since the last one; the outbox's setup key keeps each
    alert to once. Each bar is judged against the latest snapshot taken by ITS close (never a later one:
    no look-ahead), so a bar that closed before the session's first snapshot crosses nothing."""
    day = at.astimezone(NY).date()
    if not calendar.is_session(day):
        return []
    session_open = calendar.session_bounds(day)[0]
    snapshots = await asyncio.to_thread(state.level_snapshots, symbol, session_open, at)
    if not snapshots:
        return []
    taken = [s.taken_at for s in snapshots]
    bar_minutes = services.settings.bar_minutes
    bars = closed_by(await services.predictor.bars.get(symbol, at), at, bar_minutes)
    today = bars[bars.index >= pd.Timestamp(session_open)]
    first: dict[str, LevelCross] = {}
    for start, open_, close in zip(today.index, today["open"], today["close"], strict=True):
        close_at = bar_close_time(start, bar_minutes)
        latest = bisect_right(taken, close_at) - 1
        if latest < 0:
            continue
        for cross in bar_crossings(snapshots[latest], start.to_pydatetime(), close_at, float(open_), float(close)):
            first.setdefault(level_setup_key(cross), cross)
    return list(first.values())
