"""A fake Telegram Bot API server (aiohttp, 127.0.0.1, free port) for tests and benchmarks.

It speaks enough of the real wire format for python-telegram-bot 22 to run unmodified against
it: point the bot at it with ``base_url=fake.base_url`` (PTB appends the token) and
``base_file_url=fake.base_file_url``.

Wire format
    ``POST /bot<token>/<method>`` with a JSON body, an urlencoded form or multipart form data
    (PTB sends forms; JSON-valued fields such as ``reply_markup`` arrive as JSON strings and are
    decoded). Answers ``{"ok": true, "result": ...}`` or
    ``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``.
    A token other than the configured one gets 401 Unauthorized; an unknown method 404.

Methods
    getMe, logOut, close, deleteWebhook, getWebhookInfo, setMyCommands, getMyCommands,
    deleteMyCommands, getUpdates (long poll: returns queued updates with update_id >= offset,
    waits at most ``min(timeout, max_poll_wait)`` seconds), sendMessage, sendPhoto (multipart;
    the photo's byte size is recorded), sendDocument, answerCallbackQuery,
    editMessageReplyMarkup, editMessageText, editMessageMedia (multipart: ``media`` is a JSON
    InputMedia whose ``media`` is ``attach://<part>``, the file sent as that part), sendChatAction.
    Sent messages come back as realistic Message objects (message_id, date, chat, from, text or
    caption + photo sizes, reply_markup) and are kept in ``messages`` by (chat_id, message_id); the
    edit methods answer 400 "message to edit not found" for others and "message is not modified"
    when the new content and markup equal the old.

Python-side controls
    ``push_message(chat_id, text, user_id=..)`` / ``push_callback(chat_id, data, ..)`` queue
    updates for getUpdates (a bot_command entity is added when the text starts with "/"); a
    callback with the ``message_id`` of a message the bot sent carries that message.
    ``fail_next(method, n, status=429, retry_after=1, description=None, close=False)`` makes
    the next n calls of a method fail (429 with retry_after, 409 Conflict, 403 Forbidden,
    400 Bad Request, 502 Bad Gateway, ... or ``close=True`` to drop the connection).
    ``rate_limit_per_second=N`` answers 429 (retry_after=1) to sendMessage/sendPhoto beyond N
    accepted in any sliding one-second window, globally.
    ``calls`` records every request (method, params, time, status); ``sent`` lists the sends
    that succeeded; ``wait_for(method, count)`` waits until that many succeeded.

Usage::

    async with FakeBotApi(token) as fake:
        app = ApplicationBuilder().token(token).base_url(fake.base_url).build()
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON_FIELDS = frozenset({
    "chat_id", "offset", "limit", "timeout", "reply_markup", "commands", "allowed_updates",
    "message_id", "show_alert", "drop_pending_updates", "disable_notification", "cache_time",
    "scope", "reply_parameters", "link_preview_options", "protect_content", "has_spoiler",
    "caption_entities", "entities", "message_thread_id", "media",
})
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
         "instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    time: float  # time.monotonic() when the request arrived
    status: int = 200  # what the fake answered
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    description: str | None
    close: bool


class FakeBotApi:
    def __init__(
        self,
        token: str,
        *,
        bot_id: int | None = None,
        bot_username: str = "fake_test_bot",
        rate_limit_per_second: int | None = None,
        max_poll_wait: float = 0.5,
    ):
        self.token = token
        self.bot_id = bot_id if bot_id is not None else int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.rate_limit_per_second = rate_limit_per_second
        self.max_poll_wait = max_poll_wait
        self.calls: list[ApiCall] = []
        self.commands: list[dict[str, Any]] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # what the bot sent, as edited since
        self._content: dict[tuple[int, int], tuple[Any, ...]] = {}  # for "message is not modified"
        self.rate_limited = 0  # 429s answered because of rate_limit_per_second
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._failures: dict[str, deque[_Failure]] = {}
        self._send_times: deque[float] = deque()
        self._new_update = asyncio.Condition()
        self._new_call = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._dispatch)
        app.router.add_get("/bot{token}/{method}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # ---------------------------------------------------------------- controls

    def _user(self, user_id: int, username: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        if username:
            user["username"] = username
        return user

    @staticmethod
    def _chat(chat_id: int) -> dict[str, Any]:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
        return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Fake Bot",
                "username": self.bot_username, "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}

    def _queue(self, payload: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **payload})
        asyncio.get_running_loop().create_task(self._notify(self._new_update))
        return update_id

    @staticmethod
    async def _notify(cond: asyncio.Condition) -> None:
        async with cond:
            cond.notify_all()

    def push_message(self, chat_id: int, text: str, *, user_id: int | None = None,
                     username: str | None = "tester") -> int:
        """Queue a text message from a user; returns its update_id."""
        user_id = user_id if user_id is not None else abs(chat_id)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": self._chat(chat_id), "from": self._user(user_id, username), "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(command.encode("utf-16-le")) // 2}]
        return self._queue({"message": message})

    def push_callback(self, chat_id: int, data: str, *, user_id: int | None = None,
                      username: str | None = "tester", message_id: int | None = None) -> int:
        """Queue an inline-button press in `chat_id` on one of the bot's messages."""
        user_id = user_id if user_id is not None else abs(chat_id)
        message = self.messages.get((chat_id, message_id)) if message_id is not None else None
        if message is None:
            message = {
                "message_id": message_id if message_id is not None else next(self._message_ids),
                "date": int(time.time()), "chat": self._chat(chat_id), "from": self._bot_user(),
                "text": "(earlier bot message)",
            }
        query = {"id": str(next(self._message_ids)), "from": self._user(user_id, username),
                 "chat_instance": f"ci{chat_id}", "data": data, "message": message}
        return self._queue({"callback_query": query})

    def fail_next(self, method: str, n: int = 1, *, status: int = 429, retry_after: float | None = 1,
                  description: str | None = None, close: bool = False) -> None:
        """The next `n` calls of `method` fail with `status` (or a dropped connection)."""
        if status == 429 and description is None:
            description = f"Too Many Requests: retry after {retry_after:g}"
        queue = self._failures.setdefault(method, deque())
        for _ in range(n):
            queue.append(_Failure(status, retry_after if status == 429 else None, description, close))

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    @property
    def sent(self) -> list[ApiCall]:
        """Successful sendMessage/sendPhoto/sendDocument calls, in arrival order."""
        return [c for c in self.calls if c.method in SEND_METHODS and c.ok]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[ApiCall]:
        """Wait until `count` successful calls of `method` were made; returns them."""
        async def done() -> list[ApiCall]:
            async with self._new_call:
                await self._new_call.wait_for(
                    lambda: len([c for c in self.calls_to(method) if c.ok]) >= count)
            return [c for c in self.calls_to(method) if c.ok]

        return await asyncio.wait_for(done(), timeout)

    # ---------------------------------------------------------------- HTTP

    @staticmethod
    def _error(status: int, description: str | None = None,
               parameters: dict[str, Any] | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status,
                                "description": description or DEFAULT_DESCRIPTIONS.get(status, "Error")}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    @staticmethod
    async def _params(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            params = await request.json() if request.can_read_body else {}
            return params, files
        if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = value.file.read()
                    params[key] = {"filename": value.filename, "size": len(files[key])}
                elif key in JSON_FIELDS:
                    try:
                        params[key] = json.loads(value)
                    except ValueError:
                        params[key] = value
                else:
                    params[key] = value
        for key, value in request.query.items():
            params.setdefault(key, value)
        return params, files

    def _rate_limited(self, now: float) -> bool:
        if not self.rate_limit_per_second:
            return False
        while self._send_times and now - self._send_times[0] >= 1.0:
            self._send_times.popleft()
        if len(self._send_times) >= self.rate_limit_per_second:
            return True
        self._send_times.append(now)
        return False

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params, files = await self._params(request)
        call = ApiCall(method, params, time.monotonic(), files=files)
        response = await self._respond(request, call)
        call.status = response.status
        self.calls.append(call)
        await self._notify(self._new_call)
        return response

    async def _respond(self, request: web.Request, call: ApiCall) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._error(401)
        planned = self._failures.get(call.method)
        if planned:
            failure = planned.popleft()
            if failure.close:
                assert request.transport is not None
                request.transport.close()  # the client sees a dropped connection
                return web.Response(status=599)
            params = {"retry_after": failure.retry_after} if failure.retry_after is not None else None
            return self._error(failure.status, failure.description, params)
        if call.method in SEND_METHODS and self._rate_limited(call.time):
            self.rate_limited += 1
            return self._error(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        handler = getattr(self, f"_m_{call.method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        try:
            result = await handler(call.params, call.files)
        except (KeyError, ValueError, TypeError) as exc:
            return self._error(400, f"Bad Request: {exc}")
        return web.json_response({"ok": True, "result": result})

    # ---------------------------------------------------------------- methods

    async def _m_getMe(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._bot_user()

    async def _m_logOut(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return True

    _m_close = _m_logOut
    _m_deleteWebhook = _m_logOut
    _m_sendChatAction = _m_logOut
    _m_answerCallbackQuery = _m_logOut

    async def _m_getWebhookInfo(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    async def _m_setMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self.commands = list(params["commands"])
        return True

    async def _m_getMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self.commands

    async def _m_deleteMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self.commands = []
        return True

    async def _m_getUpdates(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        wait = min(float(params.get("timeout") or 0), self.max_poll_wait)
        if offset:  # confirming: earlier updates are gone for good
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

        def pending() -> list[dict[str, Any]]:
            return [u for u in self._updates if u["update_id"] >= offset][:limit]

        if not pending() and wait > 0:
            async with self._new_update:
                try:
                    await asyncio.wait_for(self._new_update.wait_for(lambda: bool(pending())), wait)
                except TimeoutError:
                    pass
        return pending()

    def _message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "chat": self._chat(chat_id), "from": self._bot_user(), **content}
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[(chat_id, message["message_id"])] = message
        return message

    def _edit(self, params: dict[str, Any], content: dict[str, Any], fingerprint: tuple[Any, ...]) -> Any:
        """Replace a sent message's content, as Telegram does, refusing what it refuses."""
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None:
            raise ValueError("message to edit not found")
        fingerprint = (*fingerprint, json.dumps(params.get("reply_markup"), sort_keys=True))
        if self._content.get(key) == fingerprint:
            raise ValueError("message is not modified: specified new message content and reply markup are "
                             "exactly the same as a current content and reply markup of the message")
        self._content[key] = fingerprint
        for old in ("text", "caption", "photo", "reply_markup"):
            message.pop(old, None)
        message.update(content, edit_date=int(time.time()))
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    async def _m_sendMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        text = params["text"]
        if not text or len(text) > 4096:
            raise ValueError("message text is empty or too long")
        message = self._message(params, text=text)
        self._content[(int(params["chat_id"]), message["message_id"])] = (
            text, json.dumps(params.get("reply_markup"), sort_keys=True))
        return message

    @staticmethod
    def _photo_content(size: int, caption: Any) -> dict[str, Any]:
        if caption is not None and len(caption) > 1024:
            raise ValueError("message caption is too long")
        photo = [{"file_id": f"photo{n}", "file_unique_id": f"uphoto{n}", "width": w, "height": h,
                  "file_size": size} for n, (w, h) in enumerate(((90, 60), (800, 600)))]
        content: dict[str, Any] = {"photo": photo}
        if caption is not None:
            content["caption"] = caption
        return content

    async def _m_sendPhoto(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        size = len(files["photo"]) if "photo" in files else 0
        if not size and not isinstance(params.get("photo"), str):
            raise ValueError("there is no photo in the request")
        message = self._message(params, **self._photo_content(size, params.get("caption")))
        key = (int(params["chat_id"]), message["message_id"])
        self._content[key] = (files.get("photo"), params.get("caption"),
                              json.dumps(params.get("reply_markup"), sort_keys=True))
        return message

    async def _m_editMessageMedia(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        media = params["media"]
        if not isinstance(media, dict) or media.get("type") != "photo":
            raise ValueError("media must be an InputMediaPhoto")
        ref = str(media.get("media", ""))
        if not ref.startswith("attach://") or ref[len("attach://"):] not in files:
            raise ValueError("wrong file identifier/HTTP URL specified")
        data = files[ref[len("attach://"):]]
        content = self._photo_content(len(data), media.get("caption"))
        return self._edit(params, content, (data, media.get("caption")))

    async def _m_sendDocument(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        size = len(files.get("document", b""))
        return self._message(params, document={"file_id": "doc", "file_unique_id": "udoc",
                                                "file_size": size})

    async def _m_editMessageReplyMarkup(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._message(params, text="(edited)")

    async def _m_editMessageText(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._edit(params, {"text": params["text"]}, (params["text"],))
