"""The pre-open brief and the close recap: gather each symbol's facts, render one text and one card,
and record one outbox row per recipient so delivery is exactly once (setup key: kind + trading day).

Data only here; the words are bot/formatting.py's and the card is charts/digest_card.py's."""

from __future__ import annotations

import asyncio
import logging
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal

import pandas as pd

from bot.level_record import _bars_for, has_option_data, level_scorecard, snapshot_history
from bot.state.digests import DIGEST_SETUP_PREFIX, DeliveredAlert
from core import calendar
from core.edge import edge_status
from core.options.level_scorecard import LEVEL_KINDS, KindStats, ScorecardWindow, kind_stats, score_symbol
from core.types import NY, MarketDataError

if TYPE_CHECKING:
    from bot.alerts import AlertEngine

log = logging.getLogger(__name__)
DigestKind = Literal["open", "close"]
DIGEST_KINDS: tuple[DigestKind, ...] = ("open", "close")
FIRST_HOUR = timedelta(hours=1)
RANGE_SESSIONS = 20
HISTORY_DAYS = 30  # calendar days of bars: 20 sessions of first hours, with weekends and a holiday


@dataclass(frozen=True)
class ModelLine:
    version: str | None  # None: no model loaded
    trained_at: str
    verdict: str  # "edge shown", or the edge warning


@dataclass
class BriefRow:
    symbol: str
    last_close: float | None
    gap: float | None  # pre-market trade minus last close; None with gap_note
    gap_note: str | None
    call_wall: float | None = None
    put_wall: float | None = None
    zero_gamma: float | None = None
    levels_note: str | None = None
    first_hour_range: float | None = None  # median high-low of the first hour
    range_sessions: int = 0
    model: ModelLine | None = None
    alerts: list[DeliveredAlert] = field(default_factory=list)  # the previous session's


@dataclass
class RecapRow:
    symbol: str
    close: float | None
    change: float | None  # against the previous session's close
    alerts: list[DeliveredAlert] = field(default_factory=list)
    levels: list[KindStats] | None = None  # today's touches per level kind; None with levels_note
    levels_note: str | None = None


@dataclass
class Digest:
    kind: DigestKind
    at: datetime
    day: date
    data_source: str
    brief: list[BriefRow] = field(default_factory=list)
    recap: list[RecapRow] = field(default_factory=list)
    previous_session: date | None = None
    scorecard: ScorecardWindow | None = None  # the last 20 sessions, in the recap
    scorecard_note: str | None = None


@dataclass
class DigestResult:
    kind: DigestKind
    at: datetime
    trading_day: bool
    sent: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "at": self.at.isoformat(), "trading_day": self.trading_day,
                "sent": self.sent, "skipped": self.skipped}


def digest_time(kind: DigestKind, day: date, open_at: time, close_offset_minutes: int) -> datetime | None:
    """When `kind` is due on `day`: None on a non-session day; the close recap follows the day's own
    close, so an early close moves it."""
    if not calendar.is_session(day):
        return None
    if kind == "open":
        return datetime.combine(day, open_at, tzinfo=NY)
    return calendar.session_bounds(day)[1].astimezone(NY) + timedelta(minutes=close_offset_minutes)


def overdue_digests(now: datetime, open_at: time, close_offset_minutes: int) -> list[DigestKind]:
    """The digests a bot starting at `now` has missed today but can still usefully send: the brief until
    the open, the recap until midnight ET. The outbox's once-per-day key keeps a restart after a sent
    digest from sending it twice."""
    now = now.astimezone(NY)
    day = now.date()
    if not calendar.is_session(day):
        return []
    session_open = calendar.session_bounds(day)[0]
    out: list[DigestKind] = []
    brief = digest_time("open", day, open_at, close_offset_minutes)
    if brief is not None and brief <= now < session_open:
        out.append("open")
    recap = digest_time("close", day, open_at, close_offset_minutes)
    if recap is not None and recap <= now:
        out.append("close")
    return out


def setup_key(kind: DigestKind, day: date) -> str:
    return f"{DIGEST_SETUP_PREFIX}{kind}|{day.isoformat()}"


def first_hour_range(bars: pd.DataFrame, before: date, sessions: int = RANGE_SESSIONS) -> tuple[float | None, int]:
    """Median high-low of the first hour of each of the last `sessions` sessions before `before`, and how
    many sessions it rests on. A plain statistic of past bars, no model."""
    if bars.empty:
        return None, 0
    ranges = []
    for day in sorted({t.date() for t in bars.index if t.date() < before})[-sessions:]:
        if not calendar.is_session(day):
            continue
        open_ = calendar.session_bounds(day)[0]
        hour = bars[(bars.index >= open_) & (bars.index < open_ + FIRST_HOUR)]
        if not hour.empty:
            ranges.append(float(hour["high"].max() - hour["low"].min()))
    return (statistics.median(ranges) if ranges else None), len(ranges)


def _close_before(bars: pd.DataFrame, day: date) -> float | None:
    older = bars[[t.date() < day for t in bars.index]]
    return None if older.empty else float(older["close"].iloc[-1])


class DigestBuilder:
    def __init__(self, engine: AlertEngine):
        self.engine = engine
        self.services = engine.layer.services
        self.state = engine.state
        self.settings = engine.settings

    async def _bars(self, symbol: str, at: datetime) -> pd.DataFrame:
        return await self.services.provider.get_bars(symbol, at - timedelta(days=HISTORY_DAYS), at,
                                                     self.settings.timeframe)

    def _model(self, symbol: str) -> ModelLine:
        model = self.services.registry.get(symbol)
        if model is None:
            return ModelLine(None, "", "no model loaded")
        warning = edge_status(model.manifest, self.settings.alerts_require_edge).warning
        return ModelLine(model.version, str(model.manifest.get("trained_at", "")), warning or "edge shown")

    async def _gap(self, symbol: str, day: date, last_close: float | None) -> tuple[float | None, str | None]:
        """On Tradier, the quote's latest trade when it happened today before the open (extended hours)."""
        if self.services.provider.source != "tradier":
            return None, "no pre-market data"
        try:
            quote = (await self.services.provider.get_quotes([symbol])).get(symbol)
        except MarketDataError as exc:
            return None, f"quote unavailable ({exc})"
        open_ = calendar.session_bounds(day)[0]
        if quote is None or quote.last is None or quote.timestamp is None:
            return None, "no pre-market trade yet"
        traded = quote.timestamp.astimezone(NY)
        if traded.date() != day or traded >= open_:
            return None, "no pre-market trade yet"
        base = quote.prevclose if quote.prevclose is not None else last_close
        return (None, "no previous close") if base is None else (quote.last - base, None)

    async def brief_row(self, symbol: str, at: datetime, day: date, previous: date) -> BriefRow:
        try:
            bars = await self._bars(symbol, at)
        except MarketDataError as exc:
            log.warning("brief %s: no bars (%s)", symbol, exc)
            bars = pd.DataFrame(columns=["open", "high", "low", "close"], index=pd.DatetimeIndex([], tz=NY))
        last_close = _close_before(bars, day)
        gap, note = await self._gap(symbol, day, last_close)
        row = BriefRow(symbol, last_close, gap, note, model=self._model(symbol))
        row.first_hour_range, row.range_sessions = first_hour_range(bars, day)
        if not has_option_data(self.services):
            row.levels_note = "no option data"
        else:
            try:
                report = await self.services.predictor.levels(symbol, now=at)
                row.call_wall, row.put_wall, row.zero_gamma = report.call_wall, report.put_wall, report.zero_gamma
            except (MarketDataError, TimeoutError) as exc:
                row.levels_note = f"levels unavailable ({str(exc) or type(exc).__name__})"
        row.alerts = [a for a in await asyncio.to_thread(self.state.delivered_alerts, previous) if a.symbol == symbol]
        return row

    async def recap_row(self, symbol: str, at: datetime, day: date,
                        alerts: list[DeliveredAlert]) -> RecapRow:
        try:
            bars = await self._bars(symbol, at)
        except MarketDataError as exc:
            log.warning("recap %s: no bars (%s)", symbol, exc)
            return RecapRow(symbol, None, None, [a for a in alerts if a.symbol == symbol], None,
                            "market data unavailable")
        today = bars[[t.date() == day for t in bars.index]]
        close = None if today.empty else float(today["close"].iloc[-1])
        prev = _close_before(bars, day)
        row = RecapRow(symbol, close, None if close is None or prev is None else close - prev,
                       [a for a in alerts if a.symbol == symbol])
        if not has_option_data(self.services):
            row.levels_note = "no option data"
            return row
        start = datetime.combine(day, datetime.min.time(), tzinfo=NY)
        snapshots = await snapshot_history(self.services, self.state, symbol, start, at)
        if not snapshots:
            row.levels_note = "no levels snapshots today"
            return row
        s = self.settings
        history = await _bars_for(self.services, symbol, start - timedelta(days=7), at)
        touches = await asyncio.to_thread(score_symbol, symbol, history, snapshots, touch_atr=s.level_touch_atr,
                                          baseline_step=s.level_baseline_step)
        row.levels = [kind_stats(touches.touches, k) for k in LEVEL_KINDS]
        return row

    async def build(self, kind: DigestKind, at: datetime) -> Digest:
        at = at.astimezone(NY)
        day = at.date()
        digest = Digest(kind, at, day, self.services.provider.source)
        if kind == "open":
            digest.previous_session = calendar.previous_session(day)
            digest.brief = [await self.brief_row(sym, at, day, digest.previous_session)
                            for sym in self.settings.symbols]
            return digest
        alerts = await asyncio.to_thread(self.state.delivered_alerts, day)
        digest.recap = [await self.recap_row(sym, at, day, alerts) for sym in self.settings.symbols]
        if not has_option_data(self.services):
            digest.scorecard_note = "no option data"
        else:
            card = await level_scorecard(self.services, self.state, at)
            digest.scorecard = None if card is None else card.last_20_sessions
        return digest


def render_card(digest: Digest) -> bytes:
    from bot.formatting import digest_card_rows, digest_card_subtitle, digest_title, scorecard_line
    from charts.digest_card import CardRow, render_digest_card

    rows = [CardRow(sym, cells, note) for sym, cells, note in digest_card_rows(digest)]
    foot = scorecard_line(digest.scorecard, digest.scorecard_note) if digest.kind == "close" else ""
    return render_digest_card(digest_title(digest), digest_card_subtitle(digest), rows,
                              data_source=digest.data_source, footnote=foot)


async def send_digest(engine: AlertEngine, kind: DigestKind, at: datetime) -> DigestResult:
    """Build the digest due at `at` and deliver it to every digest subscriber through the outbox, once
    per recipient and trading day. Nothing on a non-session day."""
    from bot.formatting import digest_title, format_digest

    at = at.astimezone(NY)
    day = at.date()
    state = engine.state
    recipients = await asyncio.to_thread(state.digest_recipients)
    result = DigestResult(kind, at, calendar.is_session(day))
    if not result.trading_day:
        result.skipped = [{"recipient": r, "reason": "not a trading day"} for r in recipients]
        return result
    allowed = []
    for recipient in recipients:
        try:
            ok = await engine.recipient_allowed(recipient)
        except Exception:  # cannot be checked now (Discord down): delivery checks again
            ok = True
        if ok:
            allowed.append(recipient)
        else:
            await asyncio.to_thread(state.unsubscribe_digest, recipient)
            result.skipped.append({"recipient": recipient, "reason": "not allowed"})
    if not allowed:
        return result
    digest = await DigestBuilder(engine).build(kind, at)
    png = await asyncio.to_thread(render_card, digest)
    payload = {"title": digest_title(digest), "text": format_digest(digest),
               "chart": engine._save_chart(f"digest_{kind}", at, png), "buttons": []}
    recorded: dict[int, str] = {}
    for recipient in allowed:
        # a digest row needs no direction or score; its symbol column names the first traded symbol
        alert_id = await asyncio.to_thread(
            state.record_alert, setup_key(kind, day), recipient, engine.settings.symbols[0], None,
            day, None, payload, at, kind="digest")
        if alert_id is None:
            result.skipped.append({"recipient": recipient, "reason": "already sent"})
        else:
            recorded[alert_id] = recipient
    now = engine.layer.services.provider.now()
    await engine.deliver_pending(min(now, at))
    for alert_id, recipient in recorded.items():
        row = await asyncio.to_thread(state.alert, alert_id)
        if row is not None and row.status == "sent":
            result.sent.append({"recipient": recipient, "kind": "digest", "digest": kind})
        else:
            result.skipped.append({"recipient": recipient,
                                   "reason": "delivery pending" if row is None or row.status != "dead"
                                   else f"not delivered ({row.last_error})"})
    return result
