"""Security: the allow-lists and admin rights hold on every path (commands, buttons, Discord slash
commands), secrets never reach a log line, reply or exception even when every external call fails, the
per-chat rate limit says when to come back, a planted pickle is never downloaded, and text that reaches
a Telegram caption or a Discord embed is escaped.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import discord
import pytest

from bot.command_specs import COMMANDS
from bot.commands import CommandLayer
from bot.discord_adapter import DiscordAdapter, render_embed
from bot.log_redact import install_secret_filter
from bot.reply import DeliveryError, Reply, Requester
from bot.services import Services, build_services
from bot.state import StateDB
from bot.telegram_adapter import ChatRateLimiter, TelegramAdapter, TelegramStartError, render_html
from core.marketdata.tradier import TradierProvider
from core.model_registry import ModelRegistry
from core.store import ModelStore, StoreError, open_blob_store
from core.types import MarketDataError
from tests.fakes.bot_stack import OPEN_TIME, make_settings, sim_provider
from tests.fakes.fake_bot_api import FakeBotApi
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_tradier import run_fake_tradier
from tests.fakes.s3_server import free_port

# Built at runtime so no token-shaped string is committed.
TG_TOKEN = "7070" + "70707:" + "AAS" + "secTgTok" * 4
DISCORD_TOKEN = "MTE" + "xMjM0NTY3ODkw" + ".Gz" + "sEcR" * 8
TRADIER_TOKEN = "tradier-" + "SeCrEt" * 4
AWS_SECRET = "aws-" + "sEcReT" * 5
ALLOWED, ADMIN, STRANGER = 1001, 1002, 1003
GUILD, FOREIGN_GUILD, CHANNEL = 700_000_000_000_000_011, 700_000_000_000_000_012, 800_000_000_000_000_020
DISCORD_ADMIN, DISCORD_USER = 900_000_000_000_000_001, 900_000_000_000_000_002
INJECTION = ('<b>bold</b> <a href="http://e.vil">x</a> <script>alert(1)</script> &amp; '
             "*b* _i_ __u__ ~s~ ||sp|| `c` ```pre``` [l](http://e.vil) \\ > # - = | { } . ! @everyone")
ARGUMENTS = {"symbol": "SPY", "symbol_or_all": "SPY", "number": "50", "int": "5", "number_or_choice": "50"}


@pytest.fixture(autouse=True)
def _models(trained_store):
    return trained_store


@dataclass
class Stack:
    services: Services
    state: StateDB
    layer: CommandLayer

    def written(self) -> tuple:
        subs = sorted((s.recipient, s.symbol) for s in self.state.subscriptions())
        return subs, len(self.state.all_predictions())


@asynccontextmanager
async def stack(tmp_path, **overrides: object) -> AsyncIterator[Stack]:
    settings = make_settings(tmp_path, telegram_allowed_chat_ids=[ALLOWED], telegram_admin_chat_ids=[ADMIN],
                             discord_guild_ids=[GUILD], discord_admin_user_ids=[DISCORD_ADMIN], **overrides)
    provider, _ = sim_provider(settings)
    services = build_services(settings, provider)
    await services.registry.reload()
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    try:
        yield Stack(services, state, CommandLayer(services, state))
    finally:
        await services.close()
        state.close()


def command_lines() -> list[str]:
    return [" ".join([f"/{c.name}", *(ARGUMENTS[a.kind] for a in c.args if a.required)]) for c in COMMANDS]


# ---------------------------------------------------------------- allow-lists at the command layer

OUTSIDERS = {
    "telegram chat not on the list": Requester("telegram", str(STRANGER), user_id=str(STRANGER)),
    "telegram chat id not a number": Requester("telegram", "@channelname"),
    "discord guild not on the list": Requester("discord", str(CHANNEL), user_id=str(DISCORD_ADMIN),
                                               guild_id=str(FOREIGN_GUILD)),
    "discord direct message": Requester("discord", str(CHANNEL), user_id=str(DISCORD_ADMIN), guild_id=None),
    "discord guild id not a number": Requester("discord", str(CHANNEL), guild_id="abc"),
}


@pytest.mark.parametrize("who", list(OUTSIDERS))
async def test_outsiders_are_refused_every_command_and_nothing_runs(tmp_path, who):
    async with stack(tmp_path) as s:
        for line in command_lines() + ["/predict SPY", "/subscribe all 10", "/bogus"]:
            reply = await s.layer.handle(OUTSIDERS[who], line)
            assert not reply.ok and reply.image is None and not reply.buttons, line
            assert "not allowed" in reply.text or "direct messages" in reply.text or "identified" in reply.text
        assert s.written() == ([], 0)


ADMIN_ONLY = [c for c in COMMANDS if c.admin_only]


async def test_admin_only_commands_are_refused_to_non_admins_everywhere(tmp_path):
    assert ADMIN_ONLY, "there must be at least one admin-only command"
    non_admins = [Requester("telegram", str(ALLOWED)),
                  Requester("discord", str(CHANNEL), user_id=str(DISCORD_USER), guild_id=str(GUILD)),
                  Requester("discord", str(CHANNEL), user_id=None, guild_id=str(GUILD))]
    admins = [Requester("telegram", str(ADMIN)),
              Requester("discord", str(CHANNEL), user_id=str(DISCORD_ADMIN), guild_id=str(GUILD)),
              Requester("console", "console")]
    async with stack(tmp_path) as s:
        for spec in ADMIN_ONLY:
            for who in non_admins:
                reply = await s.layer.handle(who, f"/{spec.name}")
                assert not reply.ok and reply.text == f"/{spec.name} is for admins only.", (who, reply.text)
            for who in admins:
                assert (await s.layer.handle(who, f"/{spec.name}")).ok, who


# ---------------------------------------------------------------- the Telegram path

@asynccontextmanager
async def telegram(tmp_path) -> AsyncIterator[tuple[FakeBotApi, Stack]]:
    async with FakeBotApi(TG_TOKEN, max_poll_wait=0.2) as api, stack(tmp_path) as s:
        # Telegram's one-message-a-second-per-chat pacing would make 11 answers take 8 s here
        adapter = TelegramAdapter(TG_TOKEN, s.layer, base_url=api.base_url, poll_timeout=1,
                                  retry_base_delay=0.05,
                                  rate_limiter=ChatRateLimiter(per_chat_per_second=50, per_chat_burst=20))
        await adapter.start()
        try:
            yield api, s
        finally:
            await adapter.stop()


def texts_to(api: FakeBotApi, chat: int) -> list[str]:
    # the adapter's own markup is the bold title; everything else arrives escaped
    return [html.unescape(re.sub(r"</?b>", "", c.params.get("text") or c.params.get("caption") or ""))
            for c in api.sent if c.params.get("chat_id") == chat]


async def wait_for_texts(api: FakeBotApi, chat: int, n: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(texts_to(api, chat)) < n:
        assert time.monotonic() < deadline, texts_to(api, chat)
        await api.wait_for("sendMessage", 1, timeout=timeout)
        await asyncio.sleep(0.02)
    return texts_to(api, chat)


async def test_telegram_stranger_typing_or_pressing_a_button_gets_only_a_refusal(tmp_path):
    async with telegram(tmp_path) as (api, s):
        api.push_message(STRANGER, "/subscribe SPY 10")
        # a button from a message forwarded into (or pressed in) a chat that is not allowed
        api.push_callback(STRANGER, "/subscribe all 5", user_id=ALLOWED)
        api.push_callback(STRANGER, "/predict SPY", user_id=ADMIN)
        replies = await wait_for_texts(api, STRANGER, 3)
        assert len(replies) == 3 and all("is not allowed" in r for r in replies)
        assert not [c for c in api.sent if c.method == "sendPhoto"]
        assert s.written() == ([], 0)


async def test_telegram_admin_command_from_a_non_admin_chat_and_button(tmp_path):
    async with telegram(tmp_path) as (api, s):
        api.push_message(ALLOWED, "/reload")
        api.push_callback(ALLOWED, "/reload", user_id=ADMIN)  # an admin's user id does not make the chat admin
        assert await wait_for_texts(api, ALLOWED, 2) == ["/reload is for admins only."] * 2
        api.push_message(ADMIN, "/reload")
        [answer] = await wait_for_texts(api, ADMIN, 1)
        assert answer.startswith("Models reloaded\nReload:")


async def test_telegram_rate_limit_says_when_to_try_again(tmp_path):
    async with telegram(tmp_path) as (api, s):
        assert s.services.settings.command_rate_per_minute == 10  # the default
        for _ in range(11):
            api.push_message(ALLOWED, "/help")
        replies = await wait_for_texts(api, ALLOWED, 11)
        refused = [r for r in replies if r.startswith("Too many requests")]
        assert len(refused) == 1 and len(replies) == 11
        assert refused[0].startswith("Too many requests from this chat: try again in ")
        assert refused[0].endswith(" s.") and 50 <= int(refused[0].split()[-2]) <= 60
        api.push_message(ADMIN, "/help")  # another chat is not affected
        [other] = await wait_for_texts(api, ADMIN, 1)
        assert not other.startswith("Too many")


async def test_text_reaching_a_telegram_caption_or_message_is_escaped(tmp_path):
    async with FakeBotApi(TG_TOKEN, max_poll_wait=0.2) as api:
        adapter = TelegramAdapter(TG_TOKEN, object(), base_url=api.base_url, poll_timeout=1)  # type: ignore[arg-type]
        await adapter.start()
        try:
            await adapter.send("42", Reply(text=INJECTION, title="<i>" + INJECTION[:40]))
            await adapter.send("42", Reply(text=INJECTION, title="t", image=b"\x89PNG\r\n\x1a\n" + bytes(64)))
        finally:
            await adapter.stop()
    message, photo = api.sent
    for sent in (message.params["text"], photo.params["caption"]):
        assert "<script" not in sent and "<a " not in sent and "<i>" not in sent
        assert sent.count("<b>") == 1 and sent.startswith("<b>")  # only the adapter's own title markup
        assert html.unescape(sent.removeprefix("<b>").replace("</b>", "", 1)).endswith(INJECTION)
        assert message.params["parse_mode"] == "HTML" == photo.params["parse_mode"]
    assert render_html("<x>", "a & b") == "<b>&lt;x&gt;</b>\na &amp; b"


# ---------------------------------------------------------------- the Discord path

@pytest.fixture
def restore_discord_endpoints():
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


async def test_discord_guild_dm_and_admin_rules_through_the_real_client(tmp_path, restore_discord_endpoints):
    async with stack(tmp_path) as s, FakeDiscord(DISCORD_TOKEN, guild_ids=[GUILD, FOREIGN_GUILD]) as fake:
        adapter = DiscordAdapter(DISCORD_TOKEN, s.layer, guild_ids=[GUILD], api_base_url=fake.api_base_url,
                                 gateway_url=fake.gateway_url, reconnect_delay=0.1)
        await adapter.start()
        try:
            await fake.wait_session()
            cases = [
                (FOREIGN_GUILD, DISCORD_ADMIN, "subscribe", {"symbol": "all"}, "is not allowed"),
                (None, DISCORD_ADMIN, "subscribe", {"symbol": "all"}, "direct messages"),
                (GUILD, DISCORD_USER, "reload", {}, "admins only"),
                (GUILD, DISCORD_ADMIN, "reload", {}, "Reload:"),
            ]
            for guild, user, name, options, expected in cases:
                sent = await fake.dispatch_interaction(guild, CHANNEL, user, name, options)
                [reply] = await fake.wait_followups(sent.token, timeout=15)
                [embed] = reply.embeds
                assert expected in embed["description"].replace("\\", ""), (guild, user, embed)
            assert s.written() == ([], 0)

            await adapter.send(str(CHANNEL), Reply(text=INJECTION, title="**" + INJECTION[:30]))
            [alert] = fake.channel_messages(CHANNEL)
            [embed] = alert.embeds
            assert "\\*b\\*" in embed["description"] and "\\_i\\_" in embed["description"]
            assert "\\[l\\]" in embed["description"] or "\\[l]" in embed["description"]
            assert "\\`c\\`" in embed["description"] and embed["title"].startswith("\\*\\*")
            assert not alert.payload.get("content")  # nothing outside the embed, so no mention can ping
        finally:
            await adapter.stop()
    embed, _ = render_embed(Reply(text="||x|| ~y~ __z__", title="# h"))
    assert embed.description == "\\|\\|x\\|\\| \\~y\\~ \\_\\_z\\_\\_"


# ---------------------------------------------------------------- secrets never leave

async def test_secrets_never_reach_logs_replies_or_exceptions(tmp_path, caplog, monkeypatch,
                                                              restore_discord_endpoints):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA" + "SECURITYTEST1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    secrets = [TRADIER_TOKEN, TG_TOKEN, TG_TOKEN.split(":")[1], DISCORD_TOKEN, AWS_SECRET]
    endpoint = f"http://user:{AWS_SECRET}@127.0.0.1:{free_port()}"  # a password in the URL, too
    configured = make_settings(tmp_path / "cfg", tradier_token=TRADIER_TOKEN, telegram_bot_token=TG_TOKEN,
                               discord_bot_token=DISCORD_TOKEN, s3_endpoint_url=endpoint)
    assert set(secrets) - {TG_TOKEN.split(":")[1]} <= set(configured.secrets)
    install_secret_filter(configured.secrets)  # what `tradebot` does at start-up (bot.logs.setup_logging)
    seen: list[str] = []  # every reply text and exception text

    # Tradier: 401 (revoked) and 500s through /predict, and straight from the provider
    async with run_fake_tradier(token=TRADIER_TOKEN, now=OPEN_TIME) as fake:
        settings = make_settings(tmp_path / "t", market_data="tradier", tradier_token=TRADIER_TOKEN,
                                 tradier_base_url=fake.base_url, telegram_allowed_chat_ids=[ALLOWED])
        provider = TradierProvider(TRADIER_TOKEN, fake.base_url, clock=fake.now, backoff_base=0.01,
                                   max_retries=1)
        services = build_services(settings, provider)
        await services.registry.reload()
        state = StateDB(settings.state_dir / "tradebot.sqlite3")
        layer = CommandLayer(services, state)
        try:
            for fault in ("revoked", "server_error"):
                fake.faults.clear()
                if fault == "revoked":
                    fake.faults.revoked = True
                else:
                    fake.faults.inject("server_error", times=1000)
                fake.set_now(fake.now() + timedelta(minutes=5))
                for line in ("/predict SPY", "/levels QQQ", "/status"):
                    seen.append((await layer.handle(Requester("telegram", str(ALLOWED)), line)).text)
                for call in (provider.get_clock(), provider.get_quotes(["SPY"])):
                    with pytest.raises(MarketDataError) as err:
                        await call
                    seen += [str(err.value), repr(err.value)]
            wrong = TradierProvider(TRADIER_TOKEN + "x", fake.base_url, max_retries=0)
            with pytest.raises(MarketDataError) as err:
                await wrong.get_clock()
            seen.append(str(err.value))
            await wrong.close()
        finally:
            await services.close()
            state.close()

    # Telegram: 401 at start-up, 500s on every send
    async with FakeBotApi(TG_TOKEN, max_poll_wait=0.2) as api:
        bad = TelegramAdapter(TG_TOKEN[:-2] + "zz", object(), base_url=api.base_url)  # type: ignore[arg-type]
        with pytest.raises(TelegramStartError) as err:
            await bad.start()
        seen += [str(err.value), repr(err.value)]
        await bad.stop()
        good = TelegramAdapter(TG_TOKEN, object(), base_url=api.base_url, poll_timeout=1,  # type: ignore[arg-type]
                               max_send_attempts=2, retry_base_delay=0.01)
        await good.start()
        api.fail_next("sendMessage", 5, status=500, retry_after=None)
        api.fail_next("getUpdates", 2, status=500, retry_after=None)
        with pytest.raises(DeliveryError) as err:
            await good.send("5", Reply(text="x"))
        seen += [str(err.value), repr(err.value)]
        api.fail_next("sendMessage", 1, status=401, retry_after=None)
        with pytest.raises(DeliveryError) as err:
            await good.send("5", Reply(text="y"))
        seen.append(str(err.value))
        await good.stop()

    # Discord: the token rejected at login
    async with FakeDiscord(DISCORD_TOKEN + "x", guild_ids=[GUILD]) as fake_discord:
        adapter = DiscordAdapter(DISCORD_TOKEN, object(), guild_ids=[GUILD],  # type: ignore[arg-type]
                                 api_base_url=fake_discord.api_base_url, gateway_url=fake_discord.gateway_url,
                                 reconnect_delay=0.1)
        await adapter.start()
        deadline = time.monotonic() + 10
        while "Discord" not in caplog.text and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await adapter.stop()

    # S3: an endpoint that does not answer, with credentials in the environment and in the URL
    store = ModelStore(open_blob_store("s3://models-bucket/prod", endpoint))
    with pytest.raises(StoreError) as err:
        store.load("SPY", "5min")
    seen += [str(err.value), repr(err.value)]

    assert len(caplog.records) > 20  # debug logging really ran
    everything = caplog.text + "\n".join(seen) + "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in everything, f"a secret leaked: {secret[:6]}..."


# ---------------------------------------------------------------- no executable model formats

class RecordingBlobs:
    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.gets = inner, []

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        return self.inner.get(key)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


async def test_planted_pickle_is_ignored_reported_and_never_downloaded(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    settings = make_settings(tmp_path)
    blobs = RecordingBlobs(open_blob_store(settings.model_store))
    store = ModelStore(blobs)
    version = store.latest_version("SPY", "5min")
    planted = f"SPY/5min/{version}/model.pkl"
    blobs.put(planted, b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.")  # a classic malicious pickle
    registry = ModelRegistry(store, settings.symbols, settings.timeframe)
    report = await registry.reload()
    assert report.loaded["SPY"] == version and not report.failed
    assert planted not in blobs.gets
    assert "model.pkl" in caplog.text and "ignored" in caplog.text
    assert not os.path.exists("/tmp/pwned")
    manifest = json.loads(blobs.get(f"SPY/5min/{version}/manifest.json"))
    assert all(not name.endswith((".pkl", ".pickle", ".joblib")) for name in manifest["files"])
