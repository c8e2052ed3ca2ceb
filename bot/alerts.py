"""Market-hours alert scans and the outbox that delivers them exactly once.

A scan predicts each symbol that has subscribers and RECORDS one outbox row per (setup, recipient)
before anything is sent; delivery then works through pending rows. A crash between the two leaves a
pending row that the next delivery sends; a row marked sent is never sent again; recording the same
setup twice is refused by a unique key. So a restart neither doubles nor forgets an alert.

Score alerts are decided here; level alerts by bot.level_alerts, which the scan runs beside them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from bot.commands import PREDICT_TIMEOUT_SECONDS, CommandLayer
from bot.formatting import alert_threshold_line
from bot.level_alerts import NOT_ALLOWED, LevelAlertScan, skip_levels
from bot.memory import release_memory
from bot.reply import DeliveryError, Reply, Requester
from bot.state import StateDB
from bot.state.rows import OutboxRow
from core import calendar
from core.clock import Clock, wall_clock
from core.edge import edge_status
from core.marketdata.priority import SCAN, market_priority
from core.predictor import PredictionBundle
from core.types import NY, MarketDataError

log = logging.getLogger(__name__)
TRANSIENT_ATTEMPTS_UNCAPPED = 1_000_000
MUTED = "off in this chat's /settings"


class Notifier(Protocol):
    async def send(self, chat_id: str, reply: Reply) -> None: ...


@dataclass
class ScanResult:
    at: datetime
    market_open: bool
    sent: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"at": self.at.isoformat(), "market_open": self.market_open, "sent": self.sent,
                "skipped": self.skipped}


@dataclass
class _Predicted:
    """One symbol's scan prediction, or the skips recorded instead of it."""
    bundle: PredictionBundle | None = None
    reply: Reply | None = None
    record: dict | None = None
    skipped: list[dict] = field(default_factory=list)


class AlertEngine:
    def __init__(self, layer: CommandLayer, state: StateDB, notifiers: dict[str, Notifier],
                 clock: Clock | None = None):
        self.layer = layer
        self._clock = clock or wall_clock  # when a send happened; the bot passes its market clock
        self.state = state
        self.notifiers = notifiers
        self.settings = layer.settings
        self._deliver_lock = asyncio.Lock()
        self._predicted: dict[str, tuple[PredictionBundle, Reply, dict]] = {}  # this scan's predictions, per symbol

    async def scan(self, at: datetime) -> ScanResult:
        at = at.astimezone(NY)
        result = ScanResult(at, calendar.is_open(at))
        by_symbol: dict[str, list] = defaultdict(list)
        verdicts: dict[str, bool] = {}  # recipient -> allowed, checked once per scan

        async def allowed(recipient: str) -> bool:
            if recipient not in verdicts:
                try:
                    verdicts[recipient] = await self.recipient_allowed(recipient)
                except DeliveryError:  # cannot be checked now: delivery checks again
                    verdicts[recipient] = True
            return verdicts[recipient]

        for symbol in self.settings.symbols:
            # subscribers() expands "all" ("*") rows, one row per recipient
            for sub in await asyncio.to_thread(self.state.subscribers, symbol):
                if await allowed(sub.recipient):
                    by_symbol[symbol].append(sub)
                else:
                    result.skipped.append({"symbol": symbol, "recipient": sub.recipient, "reason": NOT_ALLOWED})
        levels = LevelAlertScan(self.layer.services, self.state, self._predict, self._save_chart)
        level_by_symbol = await levels.recipients(allowed, result.skipped)
        if not result.market_open:
            for sym, rows in by_symbol.items():
                for sub in rows:
                    result.skipped.append({"symbol": sym, "recipient": sub.recipient, "reason": "market closed"})
            skip_levels(result.skipped, level_by_symbol, "market closed")
            return result
        self._predicted = {}
        with market_priority(SCAN):  # users' /predict and /levels go ahead of this traffic in the pacer
            await self.layer.services.predictor.prime_quotes(list(by_symbol), at)  # one batched quote call
            await self._scan_symbols(by_symbol, at, result)
            await levels.record(level_by_symbol, at, result.skipped)
        self._predicted = {}
        # expiry follows the market's own clock: a what-if scan dated tomorrow must not expire today's alerts
        result.sent.extend(await self.deliver_pending(self.layer.services.provider.now()))
        release_memory()
        return result

    async def _scan_symbols(self, by_symbol: dict[str, list], at: datetime, result: ScanResult) -> None:
        """Predictions of different symbols run concurrently, at most SCAN_CONCURRENCY at once; what
        they lead to is then recorded symbol by symbol in watchlist order, so the outbox and the
        result are exactly those of a sequential scan."""
        width = min(self.settings.scan_concurrency, len(by_symbol)) or 1
        gate = asyncio.Semaphore(width)
        # the predictions running at once share the CPU: each gets the time the others take too
        timeout = PREDICT_TIMEOUT_SECONDS * width

        async def predict(symbol: str, subs: list) -> _Predicted:
            async with gate:
                return await self._predict_symbol(symbol, subs, at, timeout)

        predicted = await asyncio.gather(*(predict(sym, subs) for sym, subs in by_symbol.items()))
        for (symbol, subs), outcome in zip(by_symbol.items(), predicted, strict=True):
            result.skipped.extend(outcome.skipped)
            if outcome.bundle is not None:
                await self._scan_symbol(symbol, subs, at, result, outcome)

    async def _predict_symbol(self, symbol: str, subs: list, at: datetime, timeout: float) -> _Predicted:
        def skip(reason: str) -> _Predicted:
            return _Predicted(skipped=[{"symbol": symbol, "recipient": sub.recipient, "reason": reason}
                                       for sub in subs])

        model = self.layer.services.registry.get(symbol)
        if model is not None and not edge_status(model.manifest, self.settings.alerts_require_edge).alerts_enabled:
            # the walk-forward showed no edge: an alert would be a coin flip presented as a signal
            return skip("no demonstrated edge")
        try:
            bundle, reply, record = await self._predict(symbol, at, timeout)
        except (MarketDataError, TimeoutError) as exc:
            log.warning("scan %s skipped: market data unavailable (%s)", symbol, str(exc) or type(exc).__name__)
            return skip("market data unavailable")
        except Exception as exc:
            log.exception("scan %s failed", symbol)
            return skip(f"prediction failed ({type(exc).__name__})")
        return _Predicted(bundle, reply, record)

    async def _scan_symbol(self, symbol: str, subs: list, at: datetime, result: ScanResult,
                           predicted: _Predicted) -> None:
        reply, record = predicted.reply, predicted.record
        score = float(record["quality_score"])
        direction = str(record["direction"])
        session = at.date()
        if datetime.fromisoformat(str(record["as_of"])).astimezone(NY).date() != session:
            # At 09:30 the last closed bar is the previous session's: its horizon is over, no alert.
            for sub in subs:
                result.skipped.append({"symbol": symbol, "recipient": sub.recipient,
                                       "reason": "no bar closed yet this session"})
            return
        setup_key = f"{symbol}|{direction}|{session.isoformat()}|{record['as_of']}"
        shared: dict | None = None  # built (and the chart written) only if someone gets this alert
        cooldown = timedelta(minutes=self.settings.alert_cooldown_minutes)
        for sub in subs:
            base = {"symbol": symbol, "recipient": sub.recipient}
            if score < sub.threshold:
                result.skipped.append({**base, "reason": f"below threshold ({score:.0f} < {sub.threshold:g})"})
                continue
            last = await asyncio.to_thread(self.state.last_alert_time, symbol, direction, session, sub.recipient)
            if last is not None and at - last < cooldown:
                result.skipped.append({**base, "reason": "in cooldown"})
                continue
            if shared is None:  # the chart is rendered only now that someone will receive it
                png = await self.layer.services.prediction_png(predicted.bundle, for_alert=True)
                shared = {"title": "ALERT · " + (reply.title or symbol), "text": reply.text,
                          "chart": self._save_chart(symbol, at, png),
                          "buttons": [[b.label, b.data] for b in reply.buttons]}
            payload = {**shared, "text": f"{reply.text}\n{alert_threshold_line(sub.threshold)}"}
            alert_id = await asyncio.to_thread(
                self.state.record_alert, setup_key, sub.recipient, symbol, direction, session, score, payload, at,
                prediction_id=record.get("id"))
            if alert_id is None:
                result.skipped.append({**base, "reason": "already alerted"})

    async def _predict(self, symbol: str, at: datetime,
                       timeout: float = PREDICT_TIMEOUT_SECONDS) -> tuple[PredictionBundle, Reply, dict]:
        """One prediction (and one log row) per symbol per scan, shared by its score and level alerts;
        its chart is drawn only for an alert that goes out."""
        if symbol not in self._predicted:
            self._predicted[symbol] = await self.layer.prediction_without_chart(
                symbol, requested_by=None, now=at, source="scan", timeout=timeout)
        return self._predicted[symbol]

    async def recipient_allowed(self, recipient: str) -> bool:
        """The allow-list at send time: a chat removed from TELEGRAM_ALLOWED_CHAT_IDS, or a channel
        whose guild left DISCORD_GUILD_IDS, gets nothing more, and its subscriptions are deleted.
        Raises DeliveryError when a Discord channel's guild cannot be looked up right now."""
        transport, _, chat_id = recipient.partition(":")
        guild = await self._discord_guild(recipient, chat_id) if transport == "discord" else None
        if self.layer.access(Requester(transport, chat_id, guild_id=guild)).allowed:  # type: ignore[arg-type]
            return True
        removed = await asyncio.to_thread(self.state.unsubscribe, recipient, None)
        removed += await asyncio.to_thread(self.state.unsubscribe_levels, recipient, None)
        if removed:
            log.warning("%s is not allowed any more: deleted its %d subscription%s", recipient, removed,
                        "" if removed == 1 else "s")
        return False

    async def chat_setting(self, recipient: str, kind: str) -> str:
        """How `recipient` wants alerts of `kind` ("score", "level", "digest") delivered, per its
        /settings: "on", "silent" (no notification sound) or "off" (not sent)."""
        return await asyncio.to_thread(self.state.chat_setting, recipient, kind)

    async def _discord_guild(self, recipient: str, channel_id: str) -> str | None:
        """The stored guild; for a row from before the guild was stored, asked once through the REST
        API and stored. None: the channel cannot be resolved."""
        has_rows, guild = await asyncio.to_thread(self.state.recipient_guild, recipient)
        guild = guild or await asyncio.to_thread(self.state.level_recipient_guild, recipient)
        if guild is not None:
            return guild
        resolver = getattr(self.notifiers.get("discord"), "channel_guild", None)
        if resolver is None:
            raise DeliveryError("Discord is not running: the channel's guild cannot be checked")
        guild = await resolver(channel_id)
        if guild is not None and has_rows:
            await asyncio.to_thread(self.state.set_recipient_guild, recipient, guild)
        return guild

    def _save_chart(self, symbol: str, at: datetime, png: bytes | None) -> str | None:
        if not png:
            return None
        folder = self.settings.state_dir / "charts" / "alerts"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{symbol}_{at:%Y%m%d_%H%M%S}.png"
            path.write_bytes(png)
            return str(path)
        except OSError as exc:
            log.warning("alert chart not saved (%s); alerts go out as text", exc.strerror)
            return None

    async def deliver_pending(self, now: datetime | None = None) -> list[dict]:
        """Send every pending outbox row once; returns what was delivered now. Given `now` (the
        market clock), alerts of a session that has already ended are expired instead of sent."""
        delivered: list[dict] = []
        async with self._deliver_lock:
            rows = await asyncio.to_thread(self.state.pending_alerts)
            today = now.astimezone(NY).date() if now is not None else None
            unreachable: set[str] = set()
            allowed: dict[str, bool] = {}  # recipient -> allowed now, checked once per round
            for row in rows:
                transport, _, chat_id = row.recipient.partition(":")
                if today is not None and row.session < today:
                    # A setup from a session that has ended is no longer actionable: drop it, loudly.
                    await asyncio.to_thread(self.state.mark_failed, row.id, "expired: its session ended", True)
                    log.warning("alert %s to %s expired undelivered (session %s)", row.id, row.recipient,
                                row.session)
                    continue
                notifier = self.notifiers.get(transport)
                if notifier is None or transport in unreachable:
                    # not running, or failed after its own retries: the row waits for a later round
                    # instead of spending an attempt (and a minute of retries) per alert
                    continue
                if row.recipient not in allowed:
                    try:
                        allowed[row.recipient] = await self.recipient_allowed(row.recipient)
                    except DeliveryError as exc:
                        log.warning("alert %s to %s waits: %s", row.id, row.recipient, exc)
                        unreachable.add(transport)
                        continue
                if not allowed[row.recipient]:
                    await asyncio.to_thread(self.state.mark_failed, row.id, NOT_ALLOWED, True)
                    log.warning("alert %s to %s dropped: %s", row.id, row.recipient, NOT_ALLOWED)
                    continue
                # rows from before the outbox's kind column (added with level alerts) are score alerts
                mode = await self.chat_setting(row.recipient, getattr(row, "kind", "score"))
                if mode == "off":  # the chat's /settings: keep its subscriptions, send nothing
                    await asyncio.to_thread(self.state.mark_failed, row.id, MUTED, True)
                    continue
                # pending -> sending first: another process delivering from this outbox (e.g.
                # `tradebot scan --once` beside the bot) may have taken the row since it was read
                if not await asyncio.to_thread(self.state.claim_alert, row.id):
                    continue
                reply = _reply_from_payload(row.payload)
                reply.silent = mode == "silent"
                try:
                    await notifier.send(chat_id, reply)
                except DeliveryError as exc:
                    log.warning("alert %s to %s not delivered: %s", row.id, row.recipient, exc)
                    # A transient outage never kills an alert: it stays pending (no attempt cap) and the
                    # next round (the 30 s retry job) tries again; only a permanent refusal is final.
                    await asyncio.to_thread(self.state.mark_failed, row.id, str(exc), exc.permanent,
                                            max_attempts=TRANSIENT_ATTEMPTS_UNCAPPED)
                    if not exc.permanent:
                        unreachable.add(transport)
                    continue
                except Exception as exc:
                    log.exception("alert %s to %s failed", row.id, row.recipient)
                    await asyncio.to_thread(self.state.mark_failed, row.id, type(exc).__name__, False)
                    continue
                await asyncio.to_thread(self.state.mark_sent, row.id, self._clock().astimezone(NY))
                delivered.append(_delivered(row))
        return delivered


def _delivered(row: OutboxRow) -> dict:
    """One entry of `sent`: a level alert also names the level it crossed and which way."""
    out = {"kind": row.kind, "symbol": row.symbol, "direction": row.direction,
           "quality_score": row.quality_score, "recipient": row.recipient}
    cross = row.payload.get("cross")
    if row.kind == "level" and isinstance(cross, dict):
        out.update({k: cross.get(k) for k in ("level_kind", "crossing", "level")})
    return out


def _reply_from_payload(payload: dict) -> Reply:
    from bot.reply import Button

    image = None
    chart = payload.get("chart")
    if chart:
        try:
            image = Path(chart).read_bytes()
        except OSError:
            image = None
    buttons = [Button(label, data) for label, data in payload.get("buttons", [])]
    return Reply(payload.get("text", ""), title=payload.get("title"), image=image, buttons=buttons)
