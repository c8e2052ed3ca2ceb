"""The transport-agnostic command layer: parse, authorise, rate-limit, do the work, return a Reply.

Telegram, Discord and the console only turn their events into `handle(requester, text)` calls and
render the Reply; every rule (allow-lists, admin rights, per-chat limits, argument checks) lives here,
so it holds the same for messages, buttons and slash commands.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata

from bot.command_specs import ALERT_KIND_CHOICES, COMMANDS, COMMANDS_BY_NAME, MODE_CHOICES, CommandSpec
from bot.errors import user_message
from bot.formatting import (
    SIMULATED_BANNER,
    age_text,
    digest_subscribed_text,
    digest_unsubscribed_text,
    format_chat_receives,
    format_chat_settings,
    format_level_scorecard,
    format_levels,
    format_prediction,
    format_scorecard,
    level_subscribed_text,
    log_line,
    mark_if_simulated,
    metric_summary,
    prediction_title,
    refreshed_title,
    threshold_meaning_text,
)
from bot.reply import Button, Reply, Requester
from bot.scorecard import compute_scorecard
from bot.services import Services
from bot.state import StateDB
from bot.state.subscriptions import ALL_SYMBOLS
from core import calendar
from core.edge import edge_status, threshold_stats
from core.predictor import PredictionBundle, UnknownSymbol
from core.types import NY, MarketDataError

log = logging.getLogger(__name__)
MAX_COMMAND_CHARS = 300
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # not tab or line ends: spaces there
PREDICT_TIMEOUT_SECONDS = 14.0
DIGEST_WORD = "digest"
DISCLAIMER = "Not financial advice: signals are statistical estimates and can be wrong."


# Callback data of the buttons that replace the message they sit on (not typed commands):
# "refresh:SPY" re-runs /predict SPY; "set:score:off" runs /settings score off.
REFRESH_BUTTON = re.compile(r"refresh:([A-Za-z0-9.\-]{1,12})")
SETTINGS_BUTTON = re.compile(rf"set:({'|'.join(ALERT_KIND_CHOICES)}):({'|'.join(MODE_CHOICES)})")
SETTINGS_USAGE = "Usage: /settings [score|level|digest] [on|silent|off]"


def button_command(data: str) -> str | None:
    """The command a replacing button's callback data stands for; None for anything else."""
    if not isinstance(data, str):
        return None
    if match := REFRESH_BUTTON.fullmatch(data):
        return f"/predict {match[1]}"
    if match := SETTINGS_BUTTON.fullmatch(data):
        return f"/settings {match[1]} {match[2]}"
    return None


class ArgumentError(ValueError):
    """A malformed argument; the message is the short usage line."""


@dataclass(frozen=True)
class Access:
    allowed: bool
    admin: bool
    refusal: str = ""


class ChatRateLimiter:
    """At most `per_minute` commands per chat in any rolling minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self._clock = clock
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def check(self, key: str) -> float:
        """0 if allowed (and counted), else seconds until the next command is allowed."""
        now = self._clock()
        hits = self._hits[key]
        while hits and now - hits[0] >= 60.0:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return max(60.0 - (now - hits[0]), 1.0)
        hits.append(now)
        return 0.0

    def blocked_for(self, key: str) -> float:
        """Like check, counting nothing: 0 if `key` may send a command now."""
        hits = self._hits.get(key)
        if not hits or len(hits) < self.per_minute:
            return 0.0
        age = self._clock() - hits[-self.per_minute]
        return 0.0 if age >= 60.0 else max(60.0 - age, 1.0)


def horizon_end(as_of: datetime, horizon_bars: int, bar_minutes: int) -> datetime:
    """End of a prediction's window: horizon bars later, never past that session's close."""
    end = as_of + timedelta(minutes=horizon_bars * bar_minutes)
    day = as_of.astimezone(NY).date()
    if calendar.is_session(day):
        end = min(end, calendar.session_bounds(day)[1])
    return end


Handler = Callable[["CommandLayer", Requester, list[str]], Awaitable[Reply]]


def handles(name: str) -> Callable[[Handler], Handler]:
    """Binds a CommandLayer method to the spec it serves (Errbot's @botcmd idea, with the spec kept apart
    so the transports' menus never import the layer). An unknown name fails at import."""
    spec = COMMANDS_BY_NAME[name]

    def bind(handler: Handler) -> Handler:
        handler.command_spec = spec  # type: ignore[attr-defined]
        return handler

    return bind


def handler_table(layer: type) -> dict[str, Handler]:
    """Spec name -> handler, built once; start-up fails unless every spec has exactly one handler."""
    table: dict[str, Handler] = {}
    for member in vars(layer).values():
        spec = getattr(member, "command_spec", None)
        if spec is None:
            continue
        if spec.name in table:
            raise RuntimeError(f"two handlers for /{spec.name}")
        table[spec.name] = member
    missing = [c.name for c in COMMANDS if c.name not in table]
    if missing:
        raise RuntimeError(f"no handler for /{', /'.join(missing)}")
    return table


class CommandLayer:
    def __init__(
        self,
        services: Services,
        state: StateDB,
        *,
        jobs_info: Callable[[], list[str]] | None = None,
        reload_models: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.services = services
        self.settings = services.settings
        self.state = state
        self.jobs_info = jobs_info or (lambda: [])
        self._reload = reload_models
        self.limiter = ChatRateLimiter(self.settings.command_rate_per_minute, clock)
        self.transports_info: Callable[[], list[str]] = lambda: []  # the app's chat transports, for /status

    # ---- who asks -------------------------------------------------------------------------------
    def access(self, who: Requester) -> Access:
        s = self.settings
        if who.transport == "console":
            return Access(True, True)
        if who.transport == "telegram":
            try:
                chat = int(who.chat_id)
            except ValueError:
                return Access(False, False, "This chat cannot be identified.")
            admin = chat in s.telegram_admin_chat_ids
            if chat in s.telegram_allowed_chat_ids or admin:
                return Access(True, admin)
            return Access(False, False,
                          f"This chat (id {chat}) is not allowed. Add {chat} to TELEGRAM_ALLOWED_CHAT_IDS.")
        if who.transport == "discord":
            if who.guild_id is None:
                return Access(False, False, "This bot answers only in its Discord servers, not in direct messages.")
            try:
                guild = int(who.guild_id)
            except ValueError:
                return Access(False, False, "This server cannot be identified.")
            if guild not in s.discord_guild_ids:
                return Access(False, False,
                              f"This server (id {guild}) is not allowed. Add {guild} to DISCORD_GUILD_IDS.")
            admin = who.user_id is not None and who.user_id.isdigit() and int(who.user_id) in s.discord_admin_user_ids
            return Access(True, admin)
        return Access(False, False, "Unknown transport.")

    # ---- entry point ----------------------------------------------------------------------------
    async def handle(self, who: Requester, text: str) -> Reply:
        """Answer a command, or a replacing button's callback data (see button_command): that reply
        says it replaces the button's message, and a Refresh says when it was made."""
        command = button_command(text)
        if command is None:
            return await self._handle_command(who, text)
        reply = await self._handle_command(who, command)
        if reply.ok:
            reply.replaces_message = True
            if REFRESH_BUTTON.fullmatch(text):
                reply.title = refreshed_title(reply.title, self.services.provider.now().astimezone(NY))
        return reply

    async def _handle_command(self, who: Requester, text: str) -> Reply:
        access = self.access(who)
        if not access.allowed:
            return Reply(access.refusal, ok=False)
        try:
            spec, args = parse_command(text)
        except ArgumentError as exc:
            return Reply(str(exc), ok=False)
        if spec.admin_only and not access.admin:
            return Reply(f"/{spec.name} is for admins only.", ok=False)
        if who.transport != "console":
            wait = self.limiter.check(who.recipient)
            if wait:
                return Reply(f"Too many requests from this chat: try again in {wait:.0f} s.", ok=False)
        try:
            return await HANDLERS[spec.name](self, who, args)
        except ArgumentError as exc:
            return Reply(str(exc), ok=False)
        except UnknownSymbol as exc:
            return Reply(str(exc), ok=False)
        except (TimeoutError, MarketDataError) as exc:
            # a TimeoutError has no message of its own
            log.warning("/%s failed: market data: %s", spec.name,
                        str(exc) or f"no answer in {PREDICT_TIMEOUT_SECONDS:g} s")
            return Reply("Market data unavailable, retrying in the background: try again in a minute.", ok=False)
        except Exception as exc:  # one bad command never takes the process down
            msg = user_message(exc)
            if msg is not None:
                return Reply(msg, ok=False)
            log.exception("/%s failed", spec.name)
            return Reply(f"Sorry, /{spec.name} failed inside the bot; the cause is logged.", ok=False)

    async def startup_report(self) -> Reply:
        s = self.settings
        models = self.services.registry.all()
        now = self.services.provider.now()
        state = "open" if calendar.is_open(now) else f"closed, next open {calendar.next_open(now):%a %d %b %H:%M} ET"
        loaded = ", ".join(f"{sym} {m.version}" for sym, m in sorted(models.items())) or "none (run tradebot train)"
        text = (f"tradebot {app_version()} started · data: {self.services.provider.source} · market {state}\n"
                f"Models: {loaded}\nSymbols: {', '.join(s.symbols)}")
        return Reply(text, title="tradebot is up")

    # ---- commands -------------------------------------------------------------------------------
    @handles("start")
    async def cmd_start(self, who: Requester, args: list[str]) -> Reply:
        return await self.cmd_help(who, args)

    @handles("help")
    async def cmd_help(self, who: Requester, args: list[str]) -> Reply:
        s = self.settings
        lines = [
            f"Machine-learning trade signals for {', '.join(s.symbols)} on {s.timeframe} bars: a trade-quality "
            "score 0-100, win probability, direction, the next hour's predicted high/low, and options "
            "vanna/gamma support and resistance.",
            "",
        ]
        lines += [f"{c.usage} - {c.description}" for c in COMMANDS]
        if self.services.provider.source == "simulated":
            lines += ["", SIMULATED_BANNER]
        lines += ["", DISCLAIMER]
        return Reply("\n".join(lines), title="tradebot")

    def _symbol(self, args: list[str], index: int = 0) -> str:
        if len(args) <= index:
            return self.settings.symbols[0]
        return self.services.predictor.check_symbol(args[index])

    @handles("predict")
    async def cmd_predict(self, who: Requester, args: list[str]) -> Reply:
        symbol = self._symbol(args)
        reply, _ = await self.predict_reply(symbol, requested_by=who.recipient)
        return reply

    async def predict_reply(self, symbol: str, *, requested_by: str | None, now: datetime | None = None,
                            source: str = "command") -> tuple[Reply, dict]:
        bundle, reply, record = await self.prediction_without_chart(symbol, requested_by=requested_by, now=now,
                                                                    source=source)
        reply.image = await self.services.prediction_png(bundle, for_alert=source == "scan")
        return reply, record

    async def prediction_without_chart(self, symbol: str, *, requested_by: str | None,
                                       now: datetime | None = None, source: str = "command",
                                       timeout: float = PREDICT_TIMEOUT_SECONDS
                                       ) -> tuple[PredictionBundle, Reply, dict]:
        """The prediction, logged, and its reply without the chart: a scan renders the chart only for
        a symbol someone will receive (`services.prediction_png(bundle, for_alert=True)`)."""
        s = self.settings
        bundle = await asyncio.wait_for(self.services.predictor.predict(symbol, now=now), timeout)
        pred = bundle.prediction
        record = pred.to_dict()
        record["horizon_end"] = horizon_end(pred.as_of, s.horizon_bars, s.bar_minutes).isoformat()
        try:
            record["id"] = await asyncio.to_thread(self.state.log_prediction, record, source, requested_by)
        except Exception:  # the log is for scoring later; a reply must not fail because of it
            log.exception("could not log the %s prediction", symbol)
            record["id"] = None
        text = format_prediction(pred, horizon_minutes=s.horizon_bars * s.bar_minutes,
                                 now=self.services.provider.now(), full=False)
        buttons = [Button("Refresh", f"refresh:{symbol}"), Button("Levels", f"/levels {symbol}"),
                   Button("Subscribe", f"/subscribe {symbol}")]
        reply = Reply(text, title=prediction_title(pred), image=None,
                      image_name=f"{symbol}_prediction.png", buttons=buttons)
        return bundle, reply, record

    @handles("levels")
    async def cmd_levels(self, who: Requester, args: list[str]) -> Reply:
        symbol = self._symbol(args)
        report = await asyncio.wait_for(self.services.predictor.levels(symbol), PREDICT_TIMEOUT_SECONDS)
        png = await self.services.levels_png(report)
        text = format_levels(report, data_source=self.services.provider.source)
        return Reply(text, title=f"{symbol} options levels", image=png, image_name=f"{symbol}_levels.png",
                     buttons=[Button("Predict", f"/predict {symbol}")])

    def _targets(self, arg: str | None) -> list[str]:
        if arg is None or arg.lower() == "all":
            return list(self.settings.symbols)
        return [self.services.predictor.check_symbol(arg)]

    @handles("subscribe")
    async def cmd_subscribe(self, who: Requester, args: list[str]) -> Reply:
        if args and args[0].lower() == DIGEST_WORD:
            return await self._digest_subscription(who, args, subscribe=True)
        if len(args) > 1 and args[1].lower() == LEVELS_WORD:
            return await self._subscribe_levels(who, args[0])
        threshold = self.settings.alert_threshold
        if len(args) > 1:
            threshold = parse_threshold(args[1])
        targets = self._targets(args[0] if args else None)
        for sym in targets:
            await asyncio.to_thread(self.state.subscribe, who.recipient, sym, threshold, guild_id=who.guild_id)
        lines = [f"Subscribed to {', '.join(targets)} alerts at quality score ≥ {threshold:g} during NYSE "
                 f"hours (one alert per setup, {self.settings.alert_cooldown_minutes} min cooldown)."]
        for sym in targets:  # what this threshold meant for each symbol's model, and whether it alerts
            model = self.services.registry.get(sym)
            if model is None:
                lines.append(f"{sym}: no model loaded yet (run tradebot train).")
                continue
            warning = edge_status(model.manifest, self.settings.alerts_require_edge).warning
            if warning:  # e.g. no demonstrated edge: alerts are paused, and why
                lines.append(f"{sym}: {warning}.")
            lines.append(f"{sym}: {threshold_meaning_text(threshold, threshold_stats(model.manifest, threshold))}")
        return Reply("\n".join(lines), title="Subscribed")

    @handles("unsubscribe")
    async def cmd_unsubscribe(self, who: Requester, args: list[str]) -> Reply:
        if args and args[0].lower() == DIGEST_WORD:
            return await self._digest_subscription(who, args, subscribe=False)
        if len(args) > 1 and args[1].lower() != LEVELS_WORD:
            raise ArgumentError(f"Usage: {COMMANDS_BY_NAME['unsubscribe'].usage}")
        arg = args[0] if args else None
        symbol = None if arg is None or arg.lower() == "all" else self.services.predictor.check_symbol(arg)
        if len(args) > 1:
            return await self._unsubscribe_levels(who, symbol)
        n = await asyncio.to_thread(self.state.unsubscribe, who.recipient, symbol)
        what = "all symbols" if symbol is None else symbol
        return Reply(f"Unsubscribed from {what} ({n} subscription{'s' if n != 1 else ''} removed).",
                     title="Unsubscribed")

    async def _digest_subscription(self, who: Requester, args: list[str], *, subscribe: bool) -> Reply:
        verb = "subscribe" if subscribe else "unsubscribe"
        if len(args) > 1:
            raise ArgumentError(f"Usage: /{verb} digest")
        s = self.settings
        if subscribe:
            added = await asyncio.to_thread(self.state.subscribe_digest, who.recipient, guild_id=who.guild_id)
            return Reply(digest_subscribed_text(added, s.digest_open_at, s.digest_close_offset_minutes),
                         title="Subscribed")
        removed = await asyncio.to_thread(self.state.unsubscribe_digest, who.recipient)
        return Reply(digest_unsubscribed_text(removed), title="Unsubscribed")

    @handles("settings")
    async def cmd_settings(self, who: Requester, args: list[str]) -> Reply:
        if len(args) == 1 or (args and args[0].lower() not in ALERT_KIND_CHOICES) or (
                len(args) == 2 and args[1].lower() not in MODE_CHOICES):
            raise ArgumentError(SETTINGS_USAGE)
        if args:
            await asyncio.to_thread(self.state.set_chat_setting, who.recipient, args[0].lower(), args[1].lower())
        modes = await asyncio.to_thread(self.state.chat_settings, who.recipient)
        # one row per kind on Telegram (three buttons a row); the current mode is marked
        buttons = [Button(f"{'• ' if modes[kind] == mode else ''}{kind} {mode}", f"set:{kind}:{mode}")
                   for kind in ALERT_KIND_CHOICES for mode in MODE_CHOICES]
        return Reply(format_chat_settings(modes), title="Notification settings", buttons=buttons)

    async def _subscribe_levels(self, who: Requester, arg: str) -> Reply:
        """`/subscribe SYMBOL|all levels`: an 'all' row follows the traded symbols as they change."""
        symbol = ALL_SYMBOLS if arg.lower() == "all" else self.services.predictor.check_symbol(arg)
        await asyncio.to_thread(self.state.subscribe_levels, who.recipient, symbol, guild_id=who.guild_id)
        targets = list(self.settings.symbols) if symbol == ALL_SYMBOLS else [symbol]
        return Reply(level_subscribed_text(targets, has_option_data=self.services.provider.source != "csv"),
                     title="Subscribed")

    async def _unsubscribe_levels(self, who: Requester, symbol: str | None) -> Reply:
        # `all levels` removes every level subscription of this chat, its 'all' row included
        n = await asyncio.to_thread(self.state.unsubscribe_levels, who.recipient, symbol)
        what = "all symbols" if symbol is None else symbol
        return Reply(f"Unsubscribed from level alerts for {what} "
                     f"({n} subscription{'s' if n != 1 else ''} removed).", title="Unsubscribed")

    @handles("status")
    async def cmd_status(self, who: Requester, args: list[str]) -> Reply:
        s = self.settings
        now = self.services.provider.now()
        lines = []
        if self.services.provider.source == "simulated":
            lines.append(SIMULATED_BANNER)
        models = self.services.registry.all()
        for sym in s.symbols:
            m = models.get(sym)
            if m is None:
                lines.append(f"{sym}: no model loaded (run tradebot train)")
                continue
            window = m.manifest.get("data_window", {})
            lines.append(f"{sym}: model {m.version}, trained {m.manifest.get('trained_at', '?')} "
                         f"({age_text(m.manifest.get('trained_at', ''), now)}), "
                         f"{window.get('sessions', '?')} sessions {str(window.get('start', '?'))[:10]}"
                         f"..{str(window.get('end', '?'))[:10]}")
            lines.append("   " + metric_summary(m.manifest.get("metrics", {})))
        lines.append(f"Data source: {self.services.provider.source} · model store: {_safe_store(s.model_store)}")
        if calendar.is_open(now):
            close = calendar.session_bounds(now.astimezone(NY).date())[1]
            lines.append(f"Market: OPEN until {close:%H:%M} ET · next session opens "
                         f"{calendar.next_open(now):%a %d %b %H:%M} ET")
        else:
            lines.append(f"Market: closed · next session opens {calendar.next_open(now):%a %d %b %H:%M} ET")
        for job in self.jobs_info():
            lines.append(f"Job: {job}")
        lines.extend(self.transports_info())
        lines.extend(await asyncio.to_thread(self._chat_receives, who.recipient))
        return Reply("\n".join(lines), title="tradebot status")

    def _chat_receives(self, recipient: str) -> list[str]:
        """Only this chat's subscriptions and settings: a group never sees another chat's."""
        score = [(x.symbol, x.threshold) for x in self.state.subscriptions(recipient)]
        return format_chat_receives(score, self.state.level_subscriptions(recipient),
                                    self.state.digest_subscribed(recipient), self.state.chat_settings(recipient))

    @handles("performance")
    async def cmd_performance(self, who: Requester, args: list[str]) -> Reply:
        from charts.performance_chart import render_performance_chart

        if args:
            if args[0].lower() != "levels":
                raise ArgumentError("Usage: /performance [levels]")
            return await self.level_scorecard_reply()
        rows = await asyncio.to_thread(self.state.all_predictions)
        card = compute_scorecard(rows, self.services.provider.now(), threshold=self.settings.alert_threshold)
        text = mark_if_simulated(format_scorecard(card), (r.data_source for r in rows))
        png = None
        if card.get("all_time", {}).get("scored", 0):
            png = await asyncio.to_thread(
                render_performance_chart, card.get("all_time", {}).get("calibration", []),
                card.get("cumulative_r", []), title="Live scorecard")
        return Reply(text, title="Live scorecard", image=png, image_name="performance.png")

    async def level_scorecard_reply(self) -> Reply:
        from bot.level_record import level_scorecard

        card = await level_scorecard(self.services, self.state, self.services.provider.now())
        return Reply(format_level_scorecard(card, data_source=self.services.provider.source),
                     title="Options levels scorecard")

    @handles("log")
    async def cmd_log(self, who: Requester, args: list[str]) -> Reply:
        n = 10
        if args:
            if not re.fullmatch(r"\d{1,3}", args[0]) or not 1 <= int(args[0]) <= 50:
                raise ArgumentError("Usage: /log [N] with N from 1 to 50")
            n = int(args[0])
        rows = await asyncio.to_thread(self.state.recent_predictions, n)
        if not rows:
            return Reply("No predictions logged yet.", title="Prediction log")
        lines = [log_line(r) for r in rows]
        return Reply(mark_if_simulated("\n".join(lines), (r.data_source for r in rows)),
                     title=f"Last {len(rows)} predictions")

    @handles("reload")
    async def cmd_reload(self, who: Requester, args: list[str]) -> Reply:
        if self._reload is not None:
            result = self._reload()
            if asyncio.iscoroutine(result):
                result = await result
        report = await self.services.registry.reload(only_if_changed=False)
        parts = []
        if report.loaded:
            parts.append("loaded " + ", ".join(f"{k} {v}" for k, v in report.loaded.items()))
        if report.missing:
            parts.append("no model for " + ", ".join(report.missing))
        if report.failed:
            parts.append("FAILED " + "; ".join(f"{k}: {v}" for k, v in report.failed.items())
                         + " (previous models keep serving)")
        return Reply("Reload: " + ("; ".join(parts) or "nothing to do"), title="Models reloaded",
                     ok=report.ok)


HANDLERS = handler_table(CommandLayer)


def app_version() -> str:
    try:
        return metadata.version("tradebot")
    except metadata.PackageNotFoundError:
        return "dev"


def parse_command(text: str) -> tuple[CommandSpec, list[str]]:
    """'/predict@MyBot spy' -> (spec, ['spy']). Raises ArgumentError with a usage line."""
    if not isinstance(text, str):
        raise ArgumentError("Commands start with /. Try /help.")
    text = text.strip()
    if CONTROL_CHARS.search(text):  # else "/help\x00" would be answered "Unknown command /help"
        raise ArgumentError("Commands cannot contain control characters. Try /help.")
    if len(text) > MAX_COMMAND_CHARS:
        raise ArgumentError("That command is too long. Try /help.")
    if not text.startswith("/"):
        raise ArgumentError("Commands start with /. Try /help.")
    parts = text.split()
    name = parts[0][1:].split("@", 1)[0].lower()
    spec = COMMANDS_BY_NAME.get(name)
    if spec is None:
        shown = re.sub(r"[^a-z0-9_]", "", name)[:32]
        raise ArgumentError(f"Unknown command /{shown}. Try /help.")
    args = parts[1:]
    if len(args) > len(spec.args):
        raise ArgumentError(f"Usage: {spec.usage}")
    for arg in args:
        if not re.fullmatch(r"[A-Za-z0-9.\-]{1,12}", arg):
            raise ArgumentError(f"Usage: {spec.usage}")
    return spec, args


LEVELS_WORD = "levels"
THRESHOLD_USAGE = "Usage: /subscribe [SYMBOL|all] [THRESHOLD|levels] with THRESHOLD from 0 to 100"


def parse_threshold(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ArgumentError(THRESHOLD_USAGE) from None
    if not 0 <= value <= 100 or value != value:
        raise ArgumentError(THRESHOLD_USAGE)
    return value + 0.0  # -0 is 0: "≥ -0" would read as a different threshold


def _safe_store(url: str) -> str:
    return url if url.startswith("s3://") or "://" not in url else url.split("://", 1)[0] + "://…"


__all__ = ["CommandLayer", "parse_command", "horizon_end"]
