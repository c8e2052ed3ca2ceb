"""The Discord adapter: slash-command tree built from COMMANDS, handlers driven with a fake
interaction, and the real discord.py client against a small fake REST API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import discord
import pytest
import yarl
from aiohttp import web
from discord import AppCommandOptionType

from bot.command_specs import COMMANDS, COMMANDS_BY_NAME
from bot.discord_adapter import DiscordAdapter, command_text, render_embed
from bot.reply import Button, DeliveryError, Reply, Requester

TOKEN = "MTE" + "xMjM0NTY3ODkw" + ".Gx" + "abcd" * 8  # built at runtime, shaped like a real one
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
APP_ID = 424242


class FakeLayer:
    def __init__(self) -> None:
        self.calls: list[tuple[Requester, str]] = []

    async def handle(self, requester: Requester, text: str) -> Reply:
        self.calls.append((requester, text))
        if requester.guild_id is None:
            return Reply(text="Use this bot in a server channel.", ok=False)
        return Reply(text=f"**bold** _x_ {text}", title="SPY *up*", image=PNG, image_name="spy.png",
                     buttons=[Button("Refresh", text)])

    async def startup_report(self) -> Reply:
        return Reply(text="ok")


# ---------------------------------------------------------------- fake interaction

class _Response:
    def __init__(self, log: list[tuple[str, dict[str, Any]]]):
        self._log = log

    async def defer(self, **kwargs: Any) -> None:
        self._log.append(("defer", kwargs))


class _Followup:
    def __init__(self, log: list[tuple[str, dict[str, Any]]]):
        self._log = log

    async def send(self, **kwargs: Any) -> None:
        self._log.append(("followup", kwargs))


class FakeUser:
    def __init__(self, user_id: int, name: str):
        self.id, self.name = user_id, name


class FakeInteraction:
    """The attributes of discord.Interaction that the adapter uses, recording calls in order."""

    def __init__(self, channel_id: int, guild_id: int | None, user_id: int = 77):
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.channel_id, self.guild_id = channel_id, guild_id
        self.user = FakeUser(user_id, "carol")
        self.response = _Response(self.events)
        self.followup = _Followup(self.events)


@pytest.fixture
async def adapter():
    a = DiscordAdapter(TOKEN, FakeLayer(), guild_ids=[1])
    yield a
    await a.stop()


# ---------------------------------------------------------------- tree

EXPECTED_TYPES = {"symbol": AppCommandOptionType.string, "symbol_or_all": AppCommandOptionType.string,
                  "number": AppCommandOptionType.number, "int": AppCommandOptionType.integer,
                  "number_or_choice": AppCommandOptionType.string}


async def test_tree_has_every_command_with_its_options(adapter):
    commands = {c.name: c for c in adapter.tree.get_commands()}
    assert sorted(commands) == sorted(c.name for c in COMMANDS)
    for spec in COMMANDS:
        cmd = commands[spec.name]
        assert cmd.description == spec.description
        assert [p.name for p in cmd.parameters] == [a.name for a in spec.args]
        for param, arg in zip(cmd.parameters, spec.args, strict=True):
            assert param.type == EXPECTED_TYPES[arg.kind]
            assert param.required == arg.required
            assert param.description == arg.description
    # the threshold may be a number or the word 'levels': a text option the layer parses and range-checks
    payload = commands["subscribe"].to_dict(adapter.tree)  # what is synced to Discord
    assert [o["name"] for o in payload["options"]] == ["symbol", "threshold"]
    assert [o["name"] for o in commands["unsubscribe"].to_dict(adapter.tree)["options"]] == ["symbol", "alerts"]


def test_command_text():
    spec = COMMANDS_BY_NAME["subscribe"]
    assert command_text(spec, {"symbol": "SPY", "threshold": 80.0}) == "/subscribe SPY 80"
    assert command_text(spec, {"symbol": "all", "threshold": 72.5}) == "/subscribe all 72.5"
    assert command_text(spec, {"symbol": "SPY", "threshold": "levels"}) == "/subscribe SPY levels"
    assert command_text(COMMANDS_BY_NAME["unsubscribe"], {"symbol": "all", "alerts": "levels"}) == \
        "/unsubscribe all levels"
    assert command_text(COMMANDS_BY_NAME["status"], {}) == "/status"
    assert command_text(COMMANDS_BY_NAME["log"], {"n": 5}) == "/log 5"


def test_embed_escapes_markdown_and_limits_length():
    embed, file = render_embed(Reply(text="*a* " + "x" * 5000, title="_t_", image=PNG, ok=False))
    assert embed.description.startswith("\\*a\\*") and len(embed.description) <= 4096
    assert embed.title == "\\_t\\_" and embed.colour == discord.Colour.red()
    assert file is not None and embed.image.url == "attachment://chart.png"
    embed, file = render_embed(Reply(text="plain"))
    assert file is None and embed.colour == discord.Colour.green()


# ---------------------------------------------------------------- handlers

async def test_every_handler_defers_then_answers_with_embed_and_png(adapter):
    commands = {c.name: c for c in adapter.tree.get_commands()}
    for spec in COMMANDS:
        values = {a.name: {"symbol": "SPY", "symbol_or_all": "all", "number": 75.0, "int": 3,
                            "number_or_choice": "75"}[a.kind]
                  for a in spec.args}
        interaction = FakeInteraction(channel_id=500, guild_id=1)
        await commands[spec.name].callback(interaction, **values)
        assert [e[0] for e in interaction.events] == ["defer", "followup"]
        assert interaction.events[0][1] == {"thinking": True}
        sent = interaction.events[1][1]
        assert sent["file"].filename == "spy.png" and sent["file"].fp.read() == PNG
        assert sent["embed"].image.url == "attachment://spy.png"
        assert spec.name in sent["embed"].description and "\\*\\*bold\\*\\*" in sent["embed"].description
    layer = adapter._layer
    assert layer.calls[0][0] == Requester("discord", "500", user_id="77", guild_id="1", username="carol")
    assert [text for _, text in layer.calls][2:5] == ["/predict SPY", "/levels SPY", "/subscribe all 75"]


async def test_dm_has_no_guild_and_gets_the_layers_refusal(adapter):
    predict = next(c for c in adapter.tree.get_commands() if c.name == "predict")
    interaction = FakeInteraction(channel_id=900, guild_id=None)
    await predict.callback(interaction, symbol="SPY")
    requester, _ = adapter._layer.calls[-1]
    assert requester.guild_id is None
    embed = interaction.events[-1][1]["embed"]
    assert "server channel" in embed.description and embed.colour == discord.Colour.red()
    assert "file" not in interaction.events[-1][1]


# ---------------------------------------------------------------- real client, fake REST API

def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py only decodes bodies whose Content-Type is exactly application/json (no charset)
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


class FakeDiscordRest:
    """Just enough of Discord's REST API for login, command sync and sending a message; the
    gateway URL records the connection attempt (`gateway_hits`) and never answers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.synced: dict[str, list[dict[str, Any]]] = {}
        self.messages: list[dict[str, Any]] = []
        self.gateway_hits = 0
        self.gateway_query: dict[str, str] = {}
        self.forbidden_channels: set[str] = set()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> FakeDiscordRest:
        app = web.Application()
        app.router.add_route("*", "/api/v10/{tail:.*}", self.api)
        app.router.add_get("/gateway", self.gateway)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def gateway(self, request: web.Request) -> web.Response:
        # never answer the websocket handshake: the client stays logged in and keeps waiting
        self.gateway_hits += 1
        self.gateway_query = dict(request.query)
        await asyncio.sleep(3600)
        return web.Response(status=503)

    async def api(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        self.requests.append((request.method, path))
        if request.headers.get("Authorization") != f"Bot {TOKEN}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        user = {"id": "111", "username": "fakebot", "discriminator": "0", "avatar": None,
                "bot": True, "global_name": None}
        if path == "/users/@me":
            return _json(user)
        if path == "/oauth2/applications/@me":
            return _json({
                "id": str(APP_ID), "name": "fake", "description": "", "icon": None,
                "bot_public": True, "bot_require_code_grant": False, "owner": user,
                "verify_key": "k", "flags": 0})
        if request.method == "PUT" and path.startswith(f"/applications/{APP_ID}/guilds/"):
            guild = path.split("/")[4]
            body = await request.json()
            self.synced[guild] = body
            return _json([
                {**c, "id": str(900 + i), "application_id": str(APP_ID), "guild_id": guild,
                 "version": "1", "type": 1, "default_member_permissions": None}
                for i, c in enumerate(body)])
        if request.method == "POST" and path.endswith("/messages"):
            channel = path.split("/")[2]
            if channel in self.forbidden_channels:
                return _json({"message": "Missing Access", "code": 50001}, status=403)
            reader = await request.multipart()
            payload: dict[str, Any] = {}
            files: dict[str, bytes] = {}
            async for part in reader:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    files[part.filename or part.name] = bytes(await part.read())
            self.messages.append({"channel": channel, "payload": payload, "files": files})
            return _json({
                "id": str(5000 + len(self.messages)), "channel_id": channel, "author": user,
                "content": "", "timestamp": "2024-01-02T15:00:00+00:00", "edited_timestamp": None,
                "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
                "attachments": [], "embeds": payload.get("embeds", []), "pinned": False, "type": 0})
        return _json({"message": "404: Not Found", "code": 0}, status=404)


@pytest.fixture
def restore_discord_endpoints():
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_client_uses_configured_endpoints_syncs_and_sends(restore_discord_endpoints, caplog):
    caplog.set_level(logging.DEBUG)
    async with FakeDiscordRest() as rest:
        api = f"http://127.0.0.1:{rest.port}/api/v10"
        gateway = f"ws://127.0.0.1:{rest.port}/gateway"
        adapter = DiscordAdapter(TOKEN, FakeLayer(), guild_ids=[7, 8], api_base_url=api,
                                 gateway_url=gateway, reconnect_delay=0.1)
        try:
            await adapter.start()
            assert discord.http.Route.BASE == api
            assert discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY == yarl.URL(gateway)
            await wait_until(lambda: set(rest.synced) == {"7", "8"} and rest.gateway_hits >= 1)
            assert sorted(c["name"] for c in rest.synced["7"]) == sorted(c.name for c in COMMANDS)
            assert rest.gateway_query["v"] == "10"  # discord.py's own gateway handshake

            await adapter.send("321", Reply(text="alert *x*", title="SPY", image=PNG))
            [msg] = rest.messages
            assert msg["channel"] == "321" and list(msg["files"].values()) == [PNG]
            assert msg["payload"]["embeds"][0]["description"] == "alert \\*x\\*"

            rest.forbidden_channels.add("322")
            with pytest.raises(DeliveryError) as info:
                await adapter.send("322", Reply(text="alert"))
            assert info.value.permanent
        finally:
            await adapter.stop()
    assert TOKEN not in caplog.text


async def test_bad_token_is_logged_not_raised(restore_discord_endpoints, caplog):
    async with FakeDiscordRest() as rest:
        wrong = TOKEN[:-2] + "zz"
        adapter = DiscordAdapter(wrong, FakeLayer(), guild_ids=[7],
                                 api_base_url=f"http://127.0.0.1:{rest.port}/api/v10")
        await adapter.start()
        await wait_until(lambda: "rejected the bot token" in caplog.text)
        with pytest.raises(DeliveryError):
            await adapter.send("1", Reply(text="x"))
        await adapter.stop()
    assert wrong not in caplog.text
