"""Telegram transport: long polling, rendering of Reply objects, alert delivery with retries.

Thin on purpose: every command (typed or from an inline button) goes to the command layer as
text with the Requester of the chat it came from; the layer decides who may do what.
Runs inside the caller's event loop (initialize/start, never run_polling) so several
transports can share one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from aiolimiter import AsyncLimiter
from telegram import (
    BotCommand,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    Update,
    User,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.command_specs import COMMANDS
from bot.formatting import transport_back_text
from bot.log_redact import install_secret_filter, redact
from bot.refusals import RefusalGate
from bot.reply import Button, DeliveryError, Reply, Requester
from bot.retry_send import Failure, send_with_retry
from bot.transport_health import TransportHealth

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024
MESSAGE_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64
BUTTONS_PER_ROW = 3
APOLOGY = "Sorry, something went wrong. Please try again in a minute."
NOTHING_CHANGED = "Nothing changed since the last refresh."


class CommandLayer(Protocol):
    async def handle(self, requester: Requester, text: str) -> Reply: ...

    async def startup_report(self) -> Reply: ...


class TelegramStartError(Exception):
    """Telegram could not be started (bad token, API unreachable); the message has no secrets."""


class TokenRejected(TelegramStartError):
    """Telegram answered 401: the token is wrong, or a Bot API server is restarting."""


TOKEN_REJECTED = "Telegram rejected the bot token (Unauthorized)"


def _outage_reason(exc: Exception) -> str:
    text = redact(str(exc)) if str(exc) else type(exc).__name__
    return text if isinstance(exc, TelegramStartError) else f"Telegram API unreachable: {text}"


class Backoff:
    """first, 2*first, 4*first ... up to `most` seconds; reset() after a success."""

    def __init__(self, first: float, most: float):
        self.first, self.most = first, max(first, most)
        self._next = first

    def next(self) -> float:
        wait, self._next = self._next, min(self.most, self._next * 2)
        return wait

    def reset(self) -> None:
        self._next = self.first


# ---------------------------------------------------------------- rendering (pure functions)

def _tg_len(text: str) -> int:
    # Telegram counts message length in UTF-16 code units
    return len(text.encode("utf-16-le")) // 2


def render_html(title: str | None, text: str) -> str:
    """Bold title line + body; every character from the reply is escaped."""
    head = f"<b>{html.escape(title)}</b>\n" if title else ""
    return head + html.escape(text)


def _fit(title: str | None, text: str, limit: int) -> str:
    """The HTML for title + as much of `text` as fits in `limit`, marked with an ellipsis."""
    full = render_html(title, text)
    if _tg_len(full) <= limit:
        return full
    if title and _tg_len(render_html(title, "…")) > limit:
        title = title[: max(1, limit // 8)] + "…"  # escaping can grow a char up to 6x
    lo, hi = 0, len(text)
    while lo < hi:  # largest prefix that fits; escaping is monotonic in the prefix length
        mid = (lo + hi + 1) // 2
        if _tg_len(render_html(title, text[:mid] + "…")) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return render_html(title, text[:lo] + "…")


def split_text(title: str | None, text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """HTML messages of at most `limit`: the title on the first, the text split at line ends."""
    if _tg_len(render_html(title, text)) <= limit:
        return [render_html(title, text)]
    out: list[str] = []
    current_title, rest = title, text
    while rest:
        lo, hi = 1, len(rest)
        while lo < hi:  # longest prefix that fits
            mid = (lo + hi + 1) // 2
            if _tg_len(render_html(current_title, rest[:mid])) <= limit:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
        if cut < len(rest):
            newline = rest.rfind("\n", 0, cut)
            if newline > cut // 2:
                cut = newline + 1
        out.append(render_html(current_title, rest[:cut].rstrip("\n")))
        current_title, rest = None, rest[cut:]
    return out


def keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """Inline keyboard whose callback data is the button's command text."""
    rows: list[list[InlineKeyboardButton]] = []
    for button in buttons:
        if len(button.data.encode("utf-8")) > CALLBACK_DATA_LIMIT:
            log.warning("dropping button %r: callback data longer than %d bytes",
                        button.label, CALLBACK_DATA_LIMIT)
            continue
        if not rows or len(rows[-1]) >= BUTTONS_PER_ROW:
            rows.append([])
        rows[-1].append(InlineKeyboardButton(button.label, callback_data=button.data))
    return InlineKeyboardMarkup(rows) if rows else None


def normalize_command(text: str, bot_username: str | None) -> str | None:
    """"/predict@MyBot  SPY" -> "/predict SPY"; None when the command is for another bot."""
    parts = text.split()
    if not parts or not parts[0].startswith("/"):
        return None
    command, _, addressee = parts[0].partition("@")
    if addressee and bot_username and addressee.lower() != bot_username.lower():
        return None
    return " ".join([command.lower(), *parts[1:]])


def requester_for(chat: Chat, user: User | None) -> Requester:
    return Requester(
        transport="telegram",
        chat_id=str(chat.id),
        user_id=str(user.id) if user else None,
        username=user.username if user else None,
    )


# ---------------------------------------------------------------- rate limiting

def _retry_after_seconds(exc: RetryAfter) -> float:
    value = getattr(exc, "_retry_after", None)  # a timedelta; the public one may warn
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    public = exc.retry_after
    return public.total_seconds() if isinstance(public, dt.timedelta) else float(public)


class SlidingWindowLimiter:
    """At most `max_rate` requests ARRIVE at the server in any window of `period` seconds.

    The server counts arrivals, and a request arrives some time between its departure and its
    response; under load that delay varies, so departures spaced within the limit can still arrive
    bunched (the cause of 429s on a busy machine). So a slot is held from departure until `period`
    after the response: then no `max_rate + 1` arrivals can share a window, whatever the latency.
    Waiters are served in arrival order."""

    def __init__(self, max_rate: int, period: float = 1.0,
                 not_before: Callable[[], float] = lambda: 0.0):
        if max_rate < 1 or period <= 0:
            raise ValueError("max_rate must be >= 1 and period > 0")
        self.max_rate = max_rate
        self.period = period
        self._not_before = not_before  # monotonic time of a server-imposed pause's end
        self._ends: deque[float] = deque()  # response times of the requests of the last period
        self._in_flight = 0
        self._finished = asyncio.Event()
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                if (pause := self._not_before() - now) > 0:
                    # a slot taken before a pause must not be spent after it, all at once
                    await asyncio.sleep(pause)
                    continue
                while self._ends and now - self._ends[0] >= self.period:
                    self._ends.popleft()
                if self._in_flight + len(self._ends) < self.max_rate:
                    self._in_flight += 1
                    return
                # all slots busy: wait for the oldest to expire, or for a request to finish
                wait = self.period - (now - self._ends[0]) if self._ends else None
                self._finished.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), wait)

    async def __aexit__(self, *exc: object) -> None:
        self._in_flight -= 1
        self._ends.append(time.monotonic())
        self._finished.set()


class ChatRateLimiter(BaseRateLimiter[int]):
    """Throttles every request that targets a chat to Telegram's limits: `overall_per_second`
    in total, about one per second per chat (short bursts of `per_chat_burst` allowed),
    20 per minute per group. On a 429 it pauses ALL requests for the server's retry_after and
    re-raises; `send_with_retry` is the one layer that retries.
    """

    def __init__(self, overall_per_second: float = 30, per_chat_per_second: float = 1,
                 per_chat_burst: int = 3, group_per_minute: float = 20):
        self._overall = SlidingWindowLimiter(max(1, int(overall_per_second)), 1.0,
                                             not_before=lambda: self._resume_at)
        self._chat_rate = (per_chat_burst, per_chat_burst / per_chat_per_second)
        self._group_per_minute = group_per_minute
        self._chats: dict[int | str, AsyncLimiter] = {}
        self._groups: dict[int | str, AsyncLimiter] = {}
        self._resume_at = 0.0  # monotonic time before which nothing is sent (after a 429)

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @staticmethod
    def _limiter(table: dict[int | str, AsyncLimiter], key: int | str, rate: float,
                 period: float) -> AsyncLimiter:
        if len(table) > 1024:  # forget idle chats so the table stays small
            for k, limiter in list(table.items()):
                if k != key and limiter.has_capacity(limiter.max_rate):
                    del table[k]
        if key not in table:
            table[key] = AsyncLimiter(rate, period)
        return table[key]

    async def _wait_for_pause(self) -> None:
        while (delay := self._resume_at - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat_id = data.get("chat_id")
        await self._wait_for_pause()
        try:
            if chat_id is None:
                return await callback(*args, **kwargs)
            with contextlib.suppress(TypeError, ValueError):
                chat_id = int(chat_id)
            chat = self._limiter(self._chats, chat_id, *self._chat_rate)
            async with contextlib.AsyncExitStack() as stack:
                if isinstance(chat_id, str) or chat_id < 0:  # groups, supergroups, channels
                    await stack.enter_async_context(
                        self._limiter(self._groups, chat_id, self._group_per_minute, 60))
                await stack.enter_async_context(chat)
                await stack.enter_async_context(self._overall)  # pause-aware, taken last
                return await callback(*args, **kwargs)
        except RetryAfter as exc:
            # Pause every send, then let the caller's one retry layer (send_with_retry) wait and
            # retry: retrying here as well would turn one flood wait into two.
            wait = _retry_after_seconds(exc) + 0.1
            self._resume_at = max(self._resume_at, time.monotonic() + wait)
            log.info("Telegram flood control on %s: pausing sends for %.1fs", endpoint, wait)
            raise


# ---------------------------------------------------------------- error classification

def classify_telegram_error(exc: Exception) -> Failure | None:
    if isinstance(exc, RetryAfter):
        return Failure("retry_after", "flood control", _retry_after_seconds(exc))
    if isinstance(exc, ChatMigrated):
        return Failure("permanent", f"chat migrated to supergroup {exc.new_chat_id}")
    if isinstance(exc, (Forbidden, BadRequest)):
        return Failure("permanent", exc.message)
    if isinstance(exc, InvalidToken):
        # not the chat's fault: never mark the recipient dead because of our config
        return Failure("transient", "Telegram rejected the bot token")
    if isinstance(exc, TelegramError):  # NetworkError, TimedOut, 5xx, anything else from the API
        return Failure("transient", exc.message)
    return None


# ---------------------------------------------------------------- the adapter

class TelegramAdapter:
    def __init__(
        self,
        token: str,
        layer: CommandLayer,
        *,
        base_url: str | None = None,
        base_file_url: str | None = None,
        admin_chat_ids: Sequence[int] = (),
        poll_timeout: int = 10,
        max_send_attempts: int = 8,
        retry_base_delay: float = 0.5,
        rate_limiter: BaseRateLimiter | None = None,
        concurrent_updates: int = 32,
        gate: RefusalGate | None = None,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 60.0,
        token_retry_delay: float = 60.0,
        max_token_retry_delay: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not token or not token.strip():
            raise TelegramStartError("TELEGRAM_BOT_TOKEN is empty")
        self._token = token.strip()
        install_secret_filter([self._token])
        self._layer = layer
        self._base_url = base_url
        if base_file_url is None and base_url and base_url.rstrip("/").endswith("/bot"):
            base_file_url = base_url.rstrip("/")[: -len("/bot")] + "/file/bot"
        self._base_file_url = base_file_url
        self._admin_chat_ids = list(admin_chat_ids)
        self._poll_timeout = poll_timeout
        self._max_send_attempts = max_send_attempts
        self._retry_base_delay = retry_base_delay
        self._rate_limiter = rate_limiter
        self._concurrent_updates = concurrent_updates
        self._gate = gate
        self._reconnect = Backoff(reconnect_delay, max_reconnect_delay)
        self._token_retry = Backoff(token_retry_delay, max_token_retry_delay)
        self.health = TransportHealth("Telegram", clock)
        self._app: Application | None = None
        self._started = False  # initialized: sends work (polling may still be down)
        self._announce = True
        self._offset: int | None = None  # next update_id to fetch; confirms the ones handled
        self._supervisor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- lifecycle

    def _build(self) -> Application:
        builder = (
            ApplicationBuilder()
            .token(self._token)
            .rate_limiter(self._rate_limiter or ChatRateLimiter())
            .concurrent_updates(self._concurrent_updates)
            .connection_pool_size(64)
            .pool_timeout(30)
            .updater(None)  # polling is ours (_poll): PTB's gives up for good on one 401
        )
        if self._base_url:
            builder = builder.base_url(self._base_url)
        if self._base_file_url:
            builder = builder.base_file_url(self._base_file_url)
        app = builder.build()
        self._register_handlers(app)
        return app

    def _register_handlers(self, app: Application) -> None:
        """All routing in one place: known commands, unknown /commands, button presses."""
        only_new = filters.UpdateType.MESSAGE  # an edited message must not re-run a command
        app.add_handler(CommandHandler([c.name for c in COMMANDS], self._on_command, filters=only_new))
        # CommandHandler ignores unknown names; the layer answers those with usage help
        app.add_handler(MessageHandler(filters.COMMAND & only_new, self._on_command))
        app.add_handler(CallbackQueryHandler(self._on_callback))
        app.add_error_handler(self._on_error)

    async def start(self) -> None:
        """Connect now (raises TelegramStartError), then poll in the background; polling that
        fails is restarted with backoff."""
        if self._supervisor is not None:
            return
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="telegram-polling")

    def launch(self, *, announce: bool = True) -> None:
        """Connect and poll in the background, retrying with backoff until it works; never raises.
        `announce`: send the start-up report to the admins once connected."""
        if self._supervisor is None:
            self._announce = announce
            self._supervisor = asyncio.create_task(self._supervise(), name="telegram-polling")

    async def start_send_only(self) -> None:
        """For one-shot commands: check the token and send, never poll (that would steal the
        running bot's updates) and never announce. Raises TelegramStartError."""
        self._announce = False
        await self._connect(poll=False)

    async def _connect(self, *, poll: bool = True) -> None:
        if self._app is None:
            self._app = self._build()
        app = self._app
        try:
            await app.initialize()  # getMe: proves token and reachability
        except InvalidToken:
            raise TokenRejected(TOKEN_REJECTED) from None
        except TelegramError as exc:
            raise TelegramStartError(f"Telegram API unreachable: {redact(str(exc))}") from None
        self._started = True
        if not poll:
            return
        try:
            await app.bot.set_my_commands([BotCommand(c.name, c.description) for c in COMMANDS])
        except TelegramError as exc:
            log.warning("Telegram setMyCommands failed (%s); the command menu may be stale", exc)
        if not app.running:
            await app.start()
        log.info("Telegram bot @%s polling", app.bot.username)
        await self._became_up()

    async def _became_up(self) -> None:
        first = not self.health.ever_up
        outage = self.health.mark_up()
        self._reconnect.reset()
        self._token_retry.reset()
        if first and self._announce:
            await self._send_startup_report()
        elif outage is not None:
            text = transport_back_text("Telegram", outage)
            log.warning("%s", text)
            await self.notify_admins(text)

    async def _supervise(self) -> None:
        """Poll; after any failure, wait (long when the token is refused: a Bot API server that
        restarts answers 401 for a moment) and connect again. Runs until stop()."""
        while True:
            try:
                if not self._started:
                    await self._connect()
                await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                rejected = isinstance(exc, (InvalidToken, TokenRejected))
                reason = TOKEN_REJECTED if rejected else _outage_reason(exc)
                self.health.mark_down(reason)
                wait = (self._token_retry if rejected else self._reconnect).next()
                log.log(logging.ERROR if rejected else logging.WARNING,
                        "Telegram is down: %s; retrying in %.0f s", reason, wait)
                await asyncio.sleep(wait)

    async def _poll(self) -> None:
        """Long-poll getUpdates into the application's queue. Returns never; raises when
        Telegram cannot be reached or refuses the token."""
        assert self._app is not None
        app = self._app
        timeouts = 0
        while True:
            try:
                updates = await app.bot.get_updates(offset=self._offset, timeout=self._poll_timeout,
                                                    allowed_updates=["message", "callback_query"])
            except TimedOut:
                timeouts += 1  # a long poll can time out now and then; many in a row is an outage
                if timeouts >= 3:
                    raise
                continue
            except RetryAfter as exc:
                await asyncio.sleep(_retry_after_seconds(exc))
                continue
            except Conflict as exc:
                log.error("Telegram: another bot instance is polling this token (Conflict); updates are "
                          "split between the instances until the other one is stopped. Server said: %s", exc)
                await asyncio.sleep(self._reconnect.first)
                continue
            timeouts = 0
            if not self.health.up:
                await self._became_up()
            for update in updates:
                await app.update_queue.put(update)
            if updates:
                self._offset = updates[-1].update_id + 1

    async def stop(self) -> None:
        """Stop polling (confirming fetched updates), let handlers finish, close connections."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
            self._supervisor = None
        for task in list(self._background):
            task.cancel()
        app = self._app
        if app is None:
            return
        try:
            if self._started and self._offset is not None:
                with contextlib.suppress(TelegramError):  # confirm what was fetched, so it is not re-run
                    await app.bot.get_updates(offset=self._offset, timeout=0)
            if app.running:
                await app.stop()
            await app.shutdown()
        except TelegramError as exc:
            log.warning("Telegram shutdown was not clean: %s", exc)
        self._started = False

    # -- outgoing

    async def send(self, chat_id: str, reply: Reply) -> None:
        """Deliver an alert. Raises DeliveryError after bounded retries (permanent=True when
        the chat is gone or blocked the bot, retry_after set when flood control persists)."""
        if self._app is None or not self._started:
            raise DeliveryError("Telegram adapter is not running")
        try:
            target = int(chat_id)
        except (TypeError, ValueError):
            raise DeliveryError(f"{chat_id!r} is not a Telegram chat id", permanent=True) from None
        await self._deliver(target, reply)

    async def notify_admins(self, text: str) -> None:
        await self._to_admins(Reply(text=text))

    async def _to_admins(self, reply: Reply) -> None:
        async def one(chat_id: int) -> None:
            try:
                await self._deliver(chat_id, reply)
            except DeliveryError as exc:
                log.warning("could not notify Telegram admin chat %s: %s", chat_id, exc)

        await asyncio.gather(*(one(c) for c in self._admin_chat_ids))

    async def _send_startup_report(self) -> None:
        if not self._admin_chat_ids:
            return
        try:
            report = await self._layer.startup_report()
        except Exception:
            log.exception("startup report failed")
            report = Reply(text="Bot started, but the startup report failed (see the log).", ok=False)
        await self._to_admins(report)

    async def _deliver(self, chat_id: int, reply: Reply) -> None:
        """Render and send; each part (of a long text) is retried on its own so a part that already
        arrived is never sent twice. A photo carries its buttons: its caption is cut to fit."""
        assert self._app is not None
        bot = self._app.bot
        markup = keyboard(reply.buttons)
        quiet = reply.silent or None
        parts: list[Callable[[], Coroutine[Any, Any, object]]] = []
        if reply.image is not None:
            caption = _fit(reply.title, reply.text, CAPTION_LIMIT)
            image = reply.image
            parts.append(lambda: bot.send_photo(
                chat_id, photo=image, caption=caption, parse_mode=ParseMode.HTML, reply_markup=markup,
                disable_notification=quiet))
        else:
            texts = split_text(reply.title, reply.text)
            for i, chunk in enumerate(texts):
                last = i == len(texts) - 1
                parts.append(lambda chunk=chunk, last=last: bot.send_message(
                    chat_id, chunk, parse_mode=ParseMode.HTML, reply_markup=markup if last else None,
                    disable_notification=quiet))
        for part in parts:
            await self._with_retry(part, f"Telegram send to {chat_id}")

    async def _with_retry(self, op: Callable[[], Coroutine[Any, Any, object]], what: str) -> None:
        try:
            await send_with_retry(op, classify_telegram_error, max_attempts=self._max_send_attempts,
                                  base_delay=self._retry_base_delay, what=what)
        except DeliveryError as exc:
            raise DeliveryError(redact(str(exc)), retry_after=exc.retry_after,
                                permanent=exc.permanent) from None

    async def _replace(self, message: Message, reply: Reply) -> str | None:
        """Edit `message` (the one a Refresh or settings button sits on) into `reply`: a photo with
        editMessageMedia, a text with editMessageText. When Telegram refuses (too old, deleted, or
        a photo to become a text) the reply is sent as a new message. Returns a line for the button's
        answer when nothing changed."""
        assert self._app is not None
        bot, chat_id = self._app.bot, message.chat.id
        markup = keyboard(reply.buttons)
        op: Callable[[], Coroutine[Any, Any, object]] | None = None
        if reply.image is not None and message.photo:
            media = InputMediaPhoto(reply.image, caption=_fit(reply.title, reply.text, CAPTION_LIMIT),
                                    parse_mode=ParseMode.HTML, filename=reply.image_name)
            op = lambda: bot.edit_message_media(  # noqa: E731
                media, chat_id=chat_id, message_id=message.message_id, reply_markup=markup)
        elif reply.image is None and message.text is not None:
            text = _fit(reply.title, reply.text, MESSAGE_LIMIT)
            op = lambda: bot.edit_message_text(  # noqa: E731
                text, chat_id=chat_id, message_id=message.message_id, parse_mode=ParseMode.HTML,
                reply_markup=markup)
        if op is not None:
            try:
                await self._with_retry(op, f"Telegram edit in {chat_id}")
                return None
            except DeliveryError as exc:
                if "not modified" in str(exc).lower():
                    return NOTHING_CHANGED
                if not exc.permanent:
                    raise
                log.info("Telegram refused to edit message %s in %s (%s): sending a new one",
                         message.message_id, chat_id, exc)
        await self._deliver(chat_id, reply)
        return None

    # -- incoming

    async def _run_layer(self, requester: Requester, text: str) -> Reply:
        try:
            return await self._layer.handle(requester, text)
        except Exception:
            log.exception("command %r from %s failed", text.split()[0], requester.recipient)
            return Reply(text=APOLOGY, ok=False)

    def _admitted(self, requester: Requester) -> bool:
        """Screen before any work. A refused chat gets its one line (in a task of its own, so no
        update slot waits on that chat's send pacing) and nothing else."""
        screening = self._gate.screen(requester) if self._gate is not None else None
        if screening is None or screening.admitted:
            return True
        if screening.tell:
            task = asyncio.create_task(self._tell_refusal(int(requester.chat_id), screening.refusal))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return False

    async def _tell_refusal(self, chat_id: int, text: str) -> None:
        try:
            await self._deliver(chat_id, Reply(text=text, ok=False))
        except DeliveryError as exc:
            log.warning("refusal to telegram:%s not delivered: %s", chat_id, exc)

    async def _answer(self, requester: Requester, text: str) -> None:
        reply = await self._run_layer(requester, text)
        try:
            await self._deliver(int(requester.chat_id), reply)
        except DeliveryError as exc:
            log.warning("reply to %s not delivered: %s", requester.recipient, exc)

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat = update.message, update.effective_chat
        if message is None or chat is None or not message.text:
            return
        text = normalize_command(message.text, context.bot.username)
        if text is None:
            return  # addressed to another bot in a group
        requester = requester_for(chat, update.effective_user)
        if self._admitted(requester):
            await self._answer(requester, text)

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or query.message is None:
            return
        requester = requester_for(query.message.chat, query.from_user)
        if not self._admitted(requester):
            return
        notice = None
        text = normalize_command(query.data, context.bot.username) if query.data else None
        if query.data and text is None and not query.data.startswith("/"):
            text = query.data  # a replacing button's data ("refresh:SPY"): the layer checks it
        if text is not None:
            reply = await self._run_layer(requester, text)
            message = query.message if isinstance(query.message, Message) else None
            try:
                if reply.replaces_message and message is not None:
                    notice = await self._replace(message, reply)
                else:
                    await self._deliver(int(requester.chat_id), reply)
            except DeliveryError as exc:
                log.warning("reply to %s not delivered: %s", requester.recipient, exc)
        await self._answer_button(query, notice)

    @staticmethod
    async def _answer_button(query: CallbackQuery, notice: str | None) -> None:
        try:
            await query.answer(notice)  # stops the button's spinner; harmless if it fails
        except TelegramError as exc:
            log.debug("answerCallbackQuery failed: %s", exc)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Last resort for exceptions that escaped a handler: log, apologise, keep running."""
        error = context.error
        log.error("Telegram handler failed: %s", error,
                  exc_info=(type(error), error, error.__traceback__) if error else None)
        if isinstance(update, Update) and update.effective_chat is not None:
            with contextlib.suppress(TelegramError):
                await context.bot.send_message(update.effective_chat.id, APOLOGY)
