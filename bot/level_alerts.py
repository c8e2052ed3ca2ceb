"""The level half of an alert scan (bot.alerts runs both halves): who wants level alerts, which options
levels the bars of today's session closed across, and one outbox row per new crossing and recipient."""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from datetime import datetime

import pandas as pd

from bot.formatting import level_alert_text, level_alert_title
from bot.level_record import has_option_data
from bot.reply import Reply
from bot.services import Services
from bot.state import StateDB
from core import calendar
from core.edge import edge_status
from core.options.level_cross import LevelCross, bar_crossings
from core.options.snapshot import NO_OPTION_DATA
from core.predictor import PredictionBundle, bar_close_time, closed_by
from core.types import NY, MarketDataError

log = logging.getLogger(__name__)
NOT_ALLOWED = "not allowed"

# the alert engine's services lent to the level scan: the scan's one prediction per symbol (shared with
# its score alerts), and where alert charts are kept
Predict = Callable[[str, datetime], Awaitable[tuple[PredictionBundle, Reply, dict]]]
SaveChart = Callable[[str, datetime, bytes | None], str | None]
Allowed = Callable[[str], Awaitable[bool]]


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


def skip_levels(skipped: list[dict], by_symbol: dict[str, list[str]], reason: str) -> None:
    for symbol, recipients in by_symbol.items():
        for recipient in recipients:
            skipped.append({"kind": "level", "symbol": symbol, "recipient": recipient, "reason": reason})


class LevelAlertScan:
    """Level alerts of one scan. Neither the model's edge nor the score cooldown gates them: the level
    itself is the news, the score and verdict ride along."""

    def __init__(self, services: Services, state: StateDB, predict: Predict, save_chart: SaveChart):
        self.services = services
        self.state = state
        self._predict = predict
        self._save_chart = save_chart

    async def recipients(self, allowed: Allowed, skipped: list[dict]) -> dict[str, list[str]]:
        """symbol -> allowed recipients of its level alerts (the same allow-list as score alerts)."""
        out: dict[str, list[str]] = {}
        for symbol in self.services.settings.symbols:
            for recipient in await asyncio.to_thread(self.state.level_subscribers, symbol):
                if await allowed(recipient):
                    out.setdefault(symbol, []).append(recipient)
                else:
                    skipped.append({"kind": "level", "symbol": symbol, "recipient": recipient,
                                    "reason": NOT_ALLOWED})
        return out

    async def record(self, by_symbol: dict[str, list[str]], at: datetime, skipped: list[dict]) -> None:
        """Record one level alert per new crossing for each recipient, symbol by symbol."""
        if not has_option_data(self.services):
            skip_levels(skipped, by_symbol, NO_OPTION_DATA)
            return
        for symbol, recipients in by_symbol.items():
            await self._record_symbol(symbol, recipients, at, skipped)

    async def _record_symbol(self, symbol: str, recipients: list[str], at: datetime, skipped: list[dict]) -> None:
        try:
            crosses = await session_crossings(self.services, self.state, symbol, at)
        except (MarketDataError, TimeoutError) as exc:
            log.warning("level scan %s skipped: market data unavailable (%s)", symbol, str(exc) or type(exc).__name__)
            skip_levels(skipped, {symbol: recipients}, "market data unavailable")
            return
        session = at.date()
        for cross in crosses:
            key = level_setup_key(cross)
            # every scan sees the whole session's crossings again: the payload (a chart) is built only
            # for a crossing someone has not been alerted to yet
            recorded = await asyncio.to_thread(self.state.setup_recipients, key)
            payload: dict | None = None
            score: float | None = None
            for recipient in recipients:
                alert_id = None
                if recipient not in recorded:
                    if payload is None:
                        payload, score = await self._payload(symbol, cross, at)
                    alert_id = await asyncio.to_thread(
                        self.state.record_alert, key, recipient, symbol, None, session, score, payload, at,
                        kind="level")
                if alert_id is None:
                    skipped.append({"kind": "level", "symbol": symbol, "recipient": recipient,
                                    "reason": "already alerted"})

    async def _payload(self, symbol: str, cross: LevelCross, at: datetime) -> tuple[dict, float | None]:
        """The alert with the prediction chart and the model's score and edge verdict, or without them
        when no prediction can be made now (the crossing is still worth telling)."""
        model = self.services.registry.get(symbol)
        reply: Reply | None = None
        score: float | None = None
        image: bytes | None = None
        try:
            bundle, reply, record = await self._predict(symbol, at)
            score = float(record["quality_score"])
            image = await self.services.prediction_png(bundle, for_alert=True)
        except Exception as exc:
            log.warning("level alert %s without a prediction (%s)", symbol, type(exc).__name__)
        if model is None or score is None:
            edge_line = "no prediction now (no model loaded or no data)"
        else:
            verdict = edge_status(model.manifest, self.services.settings.alerts_require_edge).warning
            edge_line = f"quality score {score:.0f}; {verdict or 'edge demonstrated out of sample'}"
        info = cross.to_dict()
        payload = {"title": level_alert_title(symbol, cross.kind, cross.direction),
                   "text": level_alert_text(info, edge_line, reply.text if reply else None),
                   "chart": self._save_chart(f"{symbol}_level", at, image),
                   "buttons": [[b.label, b.data] for b in reply.buttons] if reply else [], "cross": info}
        return payload, score
