"""A local Discord: the REST API (v10) and the gateway websocket on 127.0.0.1, speaking the wire
format discord.py 2.7 expects, so the real client can log in, sync commands, receive slash-command
interactions and answer them, lose its connection and resume.

    async with FakeDiscord(TOKEN, guild_ids=[1, 2]) as fake:
        adapter = DiscordAdapter(TOKEN, layer, guild_ids=[1], api_base_url=fake.api_base_url,
                                 gateway_url=fake.gateway_url)
        await adapter.start()
        await fake.wait_session()
        sent = await fake.dispatch_interaction(1, 500, 77, "predict", {"symbol": "SPY"})
        [reply] = await fake.wait_followups(sent.token)

Wire details discord.py depends on (each one is checked by the client, not just nice to have):
- JSON bodies need Content-Type exactly "application/json" (no charset), or they are read as text.
- A 429 is only retried when the response carries a `Via` header (Discord's edge adds one; a 429
  without it is a Cloudflare ban and raises at once) and a JSON body with `retry_after`.
- The gateway URL query is `v=10&encoding=json&compress=zlib-stream`; with zlib-stream every frame is
  one shared zlib stream, each message ending in a Z_SYNC_FLUSH (00 00 ff ff). Text frames are also
  accepted by the client, so compression is on only when the client asks for it.
- `READY.resume_gateway_url` is where the client RESUMEs; it is served at /resume-gateway here so a
  test can see which URL was used. A RESUME replays the dispatches the client missed, then RESUMED.
- Interactions need `attachment_size_limit`, and `channel` (an object: Interaction.channel_id comes
  from it, not from `channel_id`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# gateway opcodes
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 7, 9, 10, 11
# application-command option types
OPTION_STRING, OPTION_INTEGER, OPTION_BOOLEAN, OPTION_NUMBER = 3, 4, 5, 10


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py decodes a body only when Content-Type is exactly application/json
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json", **(headers or {})})


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + "+00:00"


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    status: int
    at: float  # time.monotonic()


@dataclass
class RecordedMessage:
    """A message the bot posted: a channel message, an interaction follow-up or an @original edit."""

    kind: str  # "channel" | "followup" | "edit_original" | "edit_message"
    target: str  # channel id, or the interaction token
    payload: dict[str, Any]
    files: dict[str, bytes]  # filename -> bytes
    at: float
    message_id: str | None = None  # the posted (or edited) message's id, when Discord answers with one

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list(self.payload.get("embeds") or [])


@dataclass
class RecordedCallback:
    interaction_id: str
    token: str
    type: int  # 4 = message, 5 = deferred message (thinking), 6 = deferred update
    data: dict[str, Any]
    at: float


@dataclass
class SentInteraction:
    id: str
    token: str
    payload: dict[str, Any]


@dataclass
class _FailRule:
    needle: str
    remaining: int
    status: int
    retry_after: float
    is_global: bool


@dataclass
class _Session:
    session_id: str
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # every dispatch, for RESUME replay


class _Connection:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, compress: bool):
        self.ws = ws
        self.request = request
        self.compressor = zlib.compressobj() if compress else None
        self.session: _Session | None = None
        self.alive = True

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload)
        if self.compressor is None:
            await self.ws.send_str(data)
        else:
            frame = self.compressor.compress(data.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
            await self.ws.send_bytes(frame)


class FakeDiscord:
    """Discord's REST API and gateway for one bot (`token`) that is a member of `guild_ids`."""

    def __init__(self, token: str, *, guild_ids: list[int], app_id: int = 424242, bot_user_id: int = 111,
                 heartbeat_interval_ms: int = 41_250, callback_deadline: float = 3.0):
        self.token = token
        self.callback_deadline = callback_deadline  # Discord drops an interaction not answered in 3 s
        self.guild_ids = list(guild_ids)
        self.app_id = app_id
        self.bot_user = {"id": str(bot_user_id), "username": "fakebot", "discriminator": "0", "avatar": None,
                         "bot": True, "global_name": None, "public_flags": 0, "flags": 0}
        self.heartbeat_interval_ms = heartbeat_interval_ms
        # what the bot did
        self.requests: list[RecordedRequest] = []
        self.command_syncs: dict[str, list[dict[str, Any]]] = {}  # guild id or "global" -> last payload
        self.sync_count = 0
        self.callbacks: list[RecordedCallback] = []
        self.messages: list[RecordedMessage] = []
        self.posted: dict[str, dict[str, Any]] = {}  # message id -> the message as the bot last left it
        self.identify_payloads: list[dict[str, Any]] = []
        self.gateway_queries: list[tuple[str, dict[str, str]]] = []  # (path, query) per connection
        self.connections = 0
        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0
        # controls
        self.forbidden_channels: set[str] = set()
        self.channel_guilds: dict[int, int] = {}  # channel id -> guild id, for GET /channels/{id}
        self._rules: list[_FailRule] = []
        self._identify_rejections: list[int] = []  # close codes for the next IDENTIFYs
        self._interactions: dict[str, dict[str, Any]] = {}  # token -> payload
        self._dispatched_at: dict[str, float] = {}  # token -> time.monotonic()
        self._acknowledged: set[str] = set()
        self._sessions: dict[str, _Session] = {}
        self._current: _Session | None = None  # the bot's session, live or waiting for a RESUME
        self._live: _Connection | None = None
        self._ids = itertools.count(1)
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._api)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/resume-gateway", self._gateway)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._live is not None:
            self._live.alive = False
            await self._live.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/resume-gateway"

    @property
    def connected(self) -> bool:
        """A gateway connection with an identified (or resumed) session is open."""
        return self._live is not None and self._live.session is not None

    # ------------------------------------------------------------------ waiting

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        """Wait (no polling) until something the fake records makes `predicate` true."""
        assert self._changed is not None
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise AssertionError(f"fake Discord: timed out after {timeout}s waiting for "
                                     f"{what or 'condition'}") from None

    async def wait_session(self, *, identifies: int = 1, resumes: int = 0, timeout: float = 10.0) -> None:
        await self.wait_until(lambda: self.connected and self.identifies >= identifies and self.resumes >= resumes,
                              timeout, f"gateway session (identifies>={identifies}, resumes>={resumes})")

    async def wait_followups(self, token: str, count: int = 1, timeout: float = 10.0) -> list[RecordedMessage]:
        await self.wait_until(lambda: len(self.followups(token)) >= count, timeout, f"{count} follow-up(s)")
        return self.followups(token)

    def followups(self, token: str) -> list[RecordedMessage]:
        return [m for m in self.messages if m.kind == "followup" and m.target == token]

    def channel_messages(self, channel_id: int | str) -> list[RecordedMessage]:
        return [m for m in self.messages if m.kind == "channel" and m.target == str(channel_id)]

    def callbacks_for(self, token: str) -> list[RecordedCallback]:
        return [c for c in self.callbacks if c.token == token]

    def requests_to(self, needle: str) -> list[RecordedRequest]:
        return [r for r in self.requests if needle in f"{r.method} {r.path}"]

    # ------------------------------------------------------------------ REST faults

    def fail_next(self, route_substring: str, n: int = 1, *, status: int = 429, retry_after: float = 0.5,
                  is_global: bool = False) -> None:
        """The next `n` requests whose "METHOD /path" contains `route_substring` get `status`
        (a Discord-style 429 with retry_after, or any other error status) instead of an answer."""
        self._rules.append(_FailRule(route_substring, n, status, retry_after, is_global))

    def _take_fault(self, method: str, path: str) -> _FailRule | None:
        key = f"{method} {path}"
        for rule in self._rules:
            if rule.remaining > 0 and rule.needle in key:
                rule.remaining -= 1
                return rule
        return None

    @staticmethod
    def _ratelimit_headers(bucket: str, remaining: int, reset_after: float) -> dict[str, str]:
        return {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}", "X-RateLimit-Bucket": bucket,
                "Via": "1.1 google"}

    def _fault_response(self, rule: _FailRule, bucket: str) -> web.Response:
        if rule.status != 429:
            return _json({"message": f"{rule.status}: injected failure", "code": 0}, rule.status,
                         {"Via": "1.1 google"})
        headers = self._ratelimit_headers(bucket, 0, rule.retry_after)
        headers["Retry-After"] = f"{rule.retry_after:g}"
        headers["X-RateLimit-Scope"] = "global" if rule.is_global else "user"
        if rule.is_global:
            headers["X-RateLimit-Global"] = "true"
        return _json({"message": "You are being rate limited.", "retry_after": rule.retry_after,
                      "global": rule.is_global}, 429, headers)

    # ------------------------------------------------------------------ REST

    def _snowflake(self) -> str:
        return str(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) + next(self._ids))

    async def _api(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        response = await self._route(request, path)
        self.requests.append(RecordedRequest(request.method, path, dict(request.query), response.status,
                                             time.monotonic()))
        await self._notify()
        return response

    async def _route(self, request: web.Request, path: str) -> web.Response:
        method, parts = request.method, path.strip("/").split("/")
        # interaction callbacks and webhooks are authorised by their token in the URL
        token_auth = parts[0] in ("interactions", "webhooks")
        if not token_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        bucket = f"{method}:{parts[0]}:{parts[1] if len(parts) > 1 else ''}"
        rule = self._take_fault(method, path)
        if rule is not None:
            return self._fault_response(rule, bucket)
        ok = self._ratelimit_headers(bucket, 4, 1.0)

        if method == "GET" and path == "/users/@me":
            return _json(self.bot_user, headers=ok)
        if method == "GET" and path in ("/gateway", "/gateway/bot"):
            body: dict[str, Any] = {"url": self.gateway_url}
            if path.endswith("/bot"):
                body |= {"shards": 1, "session_start_limit": {"total": 1000, "remaining": 999,
                                                              "reset_after": 86_400_000, "max_concurrency": 1}}
            return _json(body, headers=ok)
        if method == "GET" and path in ("/oauth2/applications/@me", "/applications/@me"):
            return _json(self._application(), headers=ok)
        if parts[0] == "applications" and parts[-1] == "commands" and len(parts) in (3, 5):
            return await self._commands(request, parts, ok)
        if method == "POST" and parts[0] == "interactions" and len(parts) == 4 and parts[3] == "callback":
            return await self._callback(request, parts[1], parts[2], ok)
        if parts[0] == "webhooks" and len(parts) >= 3:
            return await self._webhook(request, parts, ok)
        if method == "GET" and parts[0] == "channels" and len(parts) == 2:
            guild = self.channel_guilds.get(int(parts[1])) if parts[1].isdigit() else None
            if guild is None:
                return _json({"message": "Unknown Channel", "code": 10003}, 404)
            return _json({"id": parts[1], "type": 0, "guild_id": str(guild), "name": "alerts", "position": 0,
                          "permission_overwrites": [], "nsfw": False, "parent_id": None}, headers=ok)
        if method == "POST" and parts[0] == "channels" and len(parts) == 3 and parts[2] == "messages":
            return await self._channel_message(request, parts[1], ok)
        return _json({"message": "404: Not Found", "code": 0}, 404, {"Via": "1.1 google"})

    def _application(self) -> dict[str, Any]:
        return {"id": str(self.app_id), "name": "fakebot", "description": "", "icon": None,
                "bot_public": True, "bot_require_code_grant": False, "owner": self.bot_user,
                "verify_key": "00" * 32, "flags": 0, "team": None, "summary": "",
                "bot": self.bot_user, "interactions_endpoint_url": None}

    async def _commands(self, request: web.Request, parts: list[str], ok: dict[str, str]) -> web.Response:
        if parts[1] != str(self.app_id):
            return _json({"message": "Unknown Application", "code": 10002}, 404, ok)
        scope = parts[3] if len(parts) == 5 else "global"
        if request.method == "GET":
            return _json(self._registered(scope), headers=ok)
        if request.method != "PUT":
            return _json({"message": "405: Method Not Allowed", "code": 0}, 405, ok)
        body = await request.json()
        if not isinstance(body, list):
            return _json({"message": "Invalid Form Body", "code": 50035}, 400, ok)
        self.sync_count += 1
        self.command_syncs[scope] = [
            {**cmd, "id": self._snowflake(), "application_id": str(self.app_id), "version": self._snowflake(),
             "type": cmd.get("type", 1), "default_member_permissions": cmd.get("default_member_permissions"),
             **({"guild_id": scope} if scope != "global" else {})}
            for cmd in body]
        return _json(self._registered(scope), headers=ok)

    def _registered(self, scope: str) -> list[dict[str, Any]]:
        return list(self.command_syncs.get(scope, []))

    async def _read_body(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        """A message body: JSON, or multipart with payload_json and files[n]."""
        if request.content_type.startswith("multipart/"):
            payload: dict[str, Any] = {}
            files: dict[str, bytes] = {}
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    files[part.filename or part.name or "file"] = bytes(await part.read())  # type: ignore[union-attr]
            return payload, files
        if request.can_read_body:
            return await request.json(), {}
        return {}, {}

    async def _callback(self, request: web.Request, interaction_id: str, token: str,
                        ok: dict[str, str]) -> web.Response:
        sent = self._interactions.get(token)
        late = time.monotonic() - self._dispatched_at.get(token, 0.0) > self.callback_deadline
        if sent is None or sent["id"] != interaction_id or late:
            return _json({"message": "Unknown interaction", "code": 10062}, 404, ok)
        if token in self._acknowledged:
            return _json({"message": "Interaction has already been acknowledged.", "code": 40060}, 400, ok)
        body, _files = await self._read_body(request)
        self._acknowledged.add(token)
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        self.callbacks.append(RecordedCallback(interaction_id, token, kind, data, time.monotonic()))
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204, headers=ok)
        return _json({"interaction": {"id": interaction_id, "type": sent["type"],
                                      "response_message_loading": kind == 5,
                                      "response_message_ephemeral": bool(int(data.get("flags", 0)) & 64)},
                      "resource": {"type": kind}}, headers=ok)

    async def _webhook(self, request: web.Request, parts: list[str], ok: dict[str, str]) -> web.Response:
        app_id, token = parts[1], parts[2]
        if app_id != str(self.app_id) or token not in self._interactions:
            return _json({"message": "Unknown Webhook", "code": 10015}, 404, ok)
        if token not in self._acknowledged:  # Discord: no follow-up before the interaction is answered
            return _json({"message": "Unknown Webhook", "code": 10015}, 404, ok)
        sent = self._interactions[token]
        if request.method == "POST" and len(parts) == 3:
            kind = "followup"
        elif request.method == "PATCH" and parts[3:] == ["messages", "@original"]:
            kind = "edit_original"
        elif request.method == "PATCH" and len(parts) == 5 and parts[3] == "messages":
            kind = "edit_message"
        else:
            return _json({"message": "405: Method Not Allowed", "code": 0}, 405, ok)
        payload, files = await self._read_body(request)
        message = self._message(sent["channel_id"], payload, files, webhook=True)
        if kind == "edit_original" and sent.get("message"):  # a button's interaction: its message
            message["id"] = sent["message"]["id"]
        self.messages.append(RecordedMessage(kind, token, payload, files, time.monotonic(), message["id"]))
        self.posted[message["id"]] = message
        if kind == "followup" and request.query.get("wait") in ("0", "false"):
            return web.Response(status=204, headers=ok)
        return _json(message, headers=ok)

    async def _channel_message(self, request: web.Request, channel_id: str, ok: dict[str, str]) -> web.Response:
        if channel_id in self.forbidden_channels:
            return _json({"message": "Missing Access", "code": 50001}, 403, ok)
        payload, files = await self._read_body(request)
        message = self._message(channel_id, payload, files, webhook=False)
        self.messages.append(RecordedMessage("channel", channel_id, payload, files, time.monotonic(), message["id"]))
        self.posted[message["id"]] = message
        return _json(message, headers=ok)

    def _message(self, channel_id: str, payload: dict[str, Any], files: dict[str, bytes], *,
                 webhook: bool) -> dict[str, Any]:
        attachments = [{"id": self._snowflake(), "filename": name, "size": len(data),
                        "url": f"{self.base_url}/attachments/{name}", "proxy_url": f"{self.base_url}/a/{name}",
                        "content_type": "image/png" if data.startswith(PNG_MAGIC) else "application/octet-stream"}
                       for name, data in files.items()]
        message = {"id": self._snowflake(), "channel_id": channel_id, "author": self.bot_user,
                   "content": payload.get("content") or "", "timestamp": _iso(time.time()),
                   "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
                   "mention_roles": [], "attachments": attachments, "embeds": payload.get("embeds") or [],
                   "pinned": False, "type": 0, "flags": int(payload.get("flags") or 0),
                   "components": payload.get("components") or []}
        if webhook:
            message |= {"webhook_id": str(self.app_id), "application_id": str(self.app_id)}
        return message

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        self.gateway_queries.append((request.path, dict(request.query)))
        conn = _Connection(ws, request, compress=request.query.get("compress") == "zlib-stream")
        self._live = conn
        await self._notify()
        try:
            await conn.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms,
                                                "_trace": ["fake-gateway"]}, "s": None, "t": None})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT or not conn.alive:
                    continue
                frame = json.loads(msg.data)
                op, data = frame.get("op"), frame.get("d")
                if op == HEARTBEAT:
                    self.heartbeats += 1
                    await conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
                elif op == IDENTIFY:
                    await self._identify(conn, data)
                elif op == RESUME:
                    await self._resume(conn, data)
                else:
                    await ws.close(code=4001, message=b"Unknown opcode.")
        except (ConnectionResetError, RuntimeError):
            pass  # the test dropped the connection under us
        finally:
            conn.alive = False
            if self._live is conn:
                self._live = None
            await self._notify()
        return ws

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        self.identify_payloads.append(data)
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        if self._identify_rejections:
            await conn.ws.close(code=self._identify_rejections.pop(0), message=b"fake gateway rejected IDENTIFY")
            return
        self.identifies += 1
        session = _Session(secrets.token_hex(16))
        self._sessions[session.session_id] = session
        self._current = session
        conn.session = session
        guilds = [{"id": str(g), "unavailable": True} for g in self.guild_ids]
        await self._dispatch(session, "READY", {
            "v": 10, "user": self.bot_user, "guilds": guilds, "session_id": session.session_id,
            "resume_gateway_url": self.resume_gateway_url, "session_type": "normal",
            "application": {"id": str(self.app_id), "flags": 0}, "private_channels": [],
            "relationships": [], "user_settings": {}, "geo_ordered_rtc_regions": [],
            "_trace": ["fake-gateway"]})
        for guild_id in self.guild_ids:
            await self._dispatch(session, "GUILD_CREATE", self._guild(guild_id))
        await self._notify()

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        if session is None or session is not self._current:
            await conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        self.resumes += 1
        conn.session = session
        seen = data.get("seq") or 0
        for event in [e for e in session.events if e["s"] > seen]:  # what the client missed
            await conn.send(event)
        await self._dispatch(session, "RESUMED", {"_trace": ["fake-gateway"]})
        await self._notify()

    async def _dispatch(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        """Number the event in the session and send it if the session's connection is live;
        otherwise it waits in the session for a RESUME, as on Discord."""
        session.seq += 1
        frame = {"op": DISPATCH, "s": session.seq, "t": event, "d": data}
        session.events.append(frame)
        conn = self._live
        if conn is not None and conn.alive and conn.session is session:
            await conn.send(frame)

    def _guild(self, guild_id: int) -> dict[str, Any]:
        gid = str(guild_id)
        everyone = {"id": gid, "name": "@everyone", "permissions": "1071698660929", "position": 0,
                    "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        return {
            "id": gid, "name": f"guild {gid}", "icon": None, "splash": None, "discovery_splash": None,
            "owner_id": "1", "afk_channel_id": None, "afk_timeout": 300, "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "roles": [everyone],
            "emojis": [], "stickers": [], "features": [], "mfa_level": 0, "application_id": None,
            "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
            "max_members": 500000, "vanity_url_code": None, "description": None, "banner": None,
            "premium_tier": 0, "premium_subscription_count": 0, "preferred_locale": "en-US",
            "public_updates_channel_id": None, "nsfw_level": 0, "premium_progress_bar_enabled": False,
            "joined_at": _iso(time.time()), "large": False, "unavailable": False, "member_count": 2,
            "voice_states": [], "members": [], "channels": [], "threads": [], "presences": [],
            "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
        }

    # ------------------------------------------------------------------ gateway controls

    async def dispatch_interaction(self, guild_id: int | None, channel_id: int, user_id: int, command_name: str,
                                   options: dict[str, Any] | None = None, *,
                                   username: str = "carol") -> SentInteraction:
        """Send INTERACTION_CREATE for a slash command, as Discord does when a user runs it.
        `guild_id=None` is a direct message. Sent at once if the bot is connected, else queued in
        its session for the RESUME."""
        data: dict[str, Any] = {"id": "0", "name": command_name, "type": 1}
        registered = self._find_command(guild_id, command_name)
        if registered is not None:
            data["id"] = registered["id"]
            if "guild_id" in registered:
                data["guild_id"] = registered["guild_id"]
        if options:
            data["options"] = [{"name": k, "type": self._option_type(registered, k, v), "value": v}
                               for k, v in options.items()]
        return await self._send_interaction(guild_id, channel_id, user_id, username, 2, data)

    async def press_button(self, message_id: str, custom_id: str, *, guild_id: int | None, user_id: int,
                           username: str = "carol") -> SentInteraction:
        """Send INTERACTION_CREATE for a press of the button `custom_id` on a message the bot posted,
        as Discord does: a component interaction carrying that message."""
        message = self.posted[message_id]
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._send_interaction(guild_id, int(message["channel_id"]), user_id, username, 3, data,
                                            message=message)

    async def _send_interaction(self, guild_id: int | None, channel_id: int, user_id: int, username: str,
                                kind: int, data: dict[str, Any], *,
                                message: dict[str, Any] | None = None) -> SentInteraction:
        if self._current is None:
            raise AssertionError("fake Discord: the bot never identified; nothing to dispatch to")
        interaction_id, token = self._snowflake(), "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
        user = {"id": str(user_id), "username": username, "discriminator": "0", "avatar": None,
                "global_name": username.title(), "public_flags": 0}
        payload: dict[str, Any] = {
            "id": interaction_id, "application_id": str(self.app_id), "type": kind, "data": data,
            "channel_id": str(channel_id), "token": token, "version": 1, "locale": "en-US",
            "app_permissions": "2248473465835073", "entitlements": [], "attachment_size_limit": 10_485_760,
        }
        if guild_id is not None:
            gid = str(guild_id)
            payload |= {
                "guild_id": gid, "guild": {"id": gid, "locale": "en-US", "features": []}, "guild_locale": "en-US",
                "channel": {"id": str(channel_id), "type": 0, "guild_id": gid, "name": "general", "position": 0,
                            "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
                            "last_message_id": None, "rate_limit_per_user": 0, "flags": 0,
                            "permissions": "2248473465835073"},
                "member": {"user": user, "roles": [], "joined_at": _iso(time.time() - 86_400), "nick": None,
                           "avatar": None, "premium_since": None, "deaf": False, "mute": False, "flags": 0,
                           "pending": False, "communication_disabled_until": None, "permissions": "0"},
                "authorizing_integration_owners": {"0": gid}, "context": 0,
            }
        else:
            payload |= {
                "channel": {"id": str(channel_id), "type": 1, "last_message_id": None, "flags": 0,
                            "recipients": [user]},
                "user": user, "authorizing_integration_owners": {"1": str(user_id)}, "context": 1,
            }
        if message is not None:
            payload["message"] = message
        self._interactions[token] = payload
        self._dispatched_at[token] = time.monotonic()
        await self._dispatch(self._current, "INTERACTION_CREATE", payload)
        await self._notify()
        return SentInteraction(interaction_id, token, payload)

    def _find_command(self, guild_id: int | None, name: str) -> dict[str, Any] | None:
        scopes = ([str(guild_id)] if guild_id is not None else []) + ["global"]
        for scope in scopes:
            for cmd in self.command_syncs.get(scope, []):
                if cmd["name"] == name:
                    return cmd
        return None

    @staticmethod
    def _option_type(registered: dict[str, Any] | None, name: str, value: Any) -> int:
        for opt in (registered or {}).get("options", []):
            if opt["name"] == name:
                return int(opt["type"])
        if isinstance(value, bool):
            return OPTION_BOOLEAN
        if isinstance(value, int):
            return OPTION_INTEGER
        if isinstance(value, float):
            return OPTION_NUMBER
        return OPTION_STRING

    def reject_next_identify(self, n: int = 1, *, code: int = 4004) -> None:
        """Close the connection on the next `n` IDENTIFYs with `code` (4004 authentication failed,
        4013/4014 bad intents... all of which discord.py does not retry itself)."""
        self._identify_rejections.extend([code] * n)

    async def drop_connection(self, mode: str = "abort", *, code: int = 4000) -> None:
        """Lose the live gateway connection.

        abort: TCP connection cut without a close frame (the client sees 1006);
        close: a close frame with `code` (4000 = "unknown error", resumable);
        reconnect: op 7 RECONNECT, the client closes and resumes;
        invalid_session: op 9 with d=false, the client must IDENTIFY again (discord.py waits 5 s first).
        """
        conn = self._live
        if conn is None:
            raise AssertionError("fake Discord: no live gateway connection to drop")
        if mode == "reconnect":
            await conn.send({"op": RECONNECT, "d": None, "s": None, "t": None})
            conn.session = None  # nothing more goes out on it
            return
        if mode == "invalid_session":
            if conn.session is not None:
                self._sessions.pop(conn.session.session_id, None)
            self._current = None
            conn.session = None
            await conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        conn.alive = False
        self._live = None
        if mode == "abort":
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        elif mode == "close":
            await conn.ws.close(code=code, message=b"fake gateway closed the connection")
        else:
            raise ValueError(f"unknown drop mode {mode!r}")
        await self._notify()
