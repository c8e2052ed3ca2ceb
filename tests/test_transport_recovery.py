"""Chat transports that come back: Telegram unreachable at start-up or refusing the token while
polling, Discord refusing the token for a while; and the run that exits with code 3 when every
chat transport stays down. Real adapters against the local fake servers; outage lengths come from
an injected clock, backoffs are a fraction of a second."""

from __future__ import annotations

import asyncio
import logging
import time

import discord
import pytest

from bot.app import BotApp, state_path
from bot.commands import CommandLayer
from bot.discord_adapter import DiscordAdapter
from bot.reply import Requester
from bot.services import build_services
from bot.state import StateDB
from bot.telegram_adapter import TOKEN_REJECTED, TelegramAdapter
from tests.fakes.bot_stack import OPEN_TIME, make_settings, sim_provider
from tests.fakes.fake_discord import FakeDiscord
from tests.test_faults_telegram import RestartableBotApi

TOKEN = "7373" + "73737:" + "AAJ" + "comeBack" * 4
DISCORD_TOKEN = "MTE" + "xMjM0NTY3ODky" + ".Gz" + "back" * 8
MEMBER, ADMIN = 7001, 7002
FAST = {"poll_timeout": 1, "retry_base_delay": 0.05, "reconnect_delay": 0.05, "max_reconnect_delay": 0.2,
        "token_retry_delay": 0.3, "max_token_retry_delay": 0.3}


class StepClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def layer(tmp_path, trained_store):
    settings = make_settings(tmp_path, telegram_allowed_chat_ids=[MEMBER], telegram_admin_chat_ids=[ADMIN])
    provider, _ = sim_provider(settings)
    services = build_services(settings, provider)
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    yield CommandLayer(services, state)
    await services.close()
    state.close()


def texts_to(api: RestartableBotApi, chat: int) -> list[str]:
    return [str(c.params.get("text", c.params.get("caption", ""))) for c in api.sent
            if int(c.params["chat_id"]) == chat]


async def test_telegram_unreachable_at_start_connects_once_the_server_is_up(layer, caplog):
    api = RestartableBotApi(TOKEN, max_poll_wait=0.2)
    await api.start()
    await api.stop()  # the port is known, nothing listens on it yet
    clock = StepClock()
    adapter = TelegramAdapter(TOKEN, layer, base_url=api.base_url, admin_chat_ids=[ADMIN], clock=clock, **FAST)
    adapter.launch()
    try:
        await wait_until(lambda: "Telegram is down" in caplog.text)
        assert not adapter.health.up and "unreachable" in adapter.health.reason
        clock.now += 30
        assert adapter.health.down_for() == 30
        await api.start()
        await wait_until(lambda: len(api.calls_to("getUpdates")) >= 1)
        await wait_until(lambda: texts_to(api, ADMIN) != [])
        assert "started" in texts_to(api, ADMIN)[0]  # the start-up report, once connected
        assert adapter.health.up
        api.push_message(MEMBER, "/help")
        await wait_until(lambda: len(texts_to(api, MEMBER)) == 1)
    finally:
        await adapter.stop()
        await api.stop()


async def test_a_401_while_polling_is_retried_reported_and_the_admins_told_when_back(layer, caplog):
    caplog.set_level(logging.INFO)
    api = RestartableBotApi(TOKEN, max_poll_wait=0.2)
    await api.start()
    clock = StepClock()
    adapter = TelegramAdapter(TOKEN, layer, base_url=api.base_url, admin_chat_ids=[ADMIN], clock=clock, **FAST)
    await adapter.start()
    try:
        await wait_until(lambda: len(texts_to(api, ADMIN)) == 1)  # start-up report
        api.fail_next("getUpdates", 2, status=401, retry_after=None)  # the server restarting, briefly
        await wait_until(lambda: not adapter.health.up)
        assert adapter.health.reason == TOKEN_REJECTED
        assert any(r.levelno == logging.ERROR and TOKEN_REJECTED in r.getMessage() for r in caplog.records)
        clock.now += 120
        await wait_until(lambda: adapter.health.up)
        await wait_until(lambda: len(texts_to(api, ADMIN)) == 2)
        assert "unreachable for 2 min" in texts_to(api, ADMIN)[1]
        api.push_message(MEMBER, "/help")  # polling resumed
        await wait_until(lambda: len(texts_to(api, MEMBER)) == 1)
        rejected = [c for c in api.calls_to("getUpdates") if c.status == 401]
        assert len(rejected) == 2
    finally:
        await adapter.stop()
        await api.stop()


async def test_run_exits_with_code_3_when_every_chat_transport_stays_down(tmp_path, trained_store):
    api = RestartableBotApi(TOKEN, max_poll_wait=0.2)
    await api.start()
    await api.stop()  # Telegram never comes up
    settings = make_settings(tmp_path, telegram_bot_token=TOKEN, telegram_api_base_url=api.base_url,
                             telegram_allowed_chat_ids=[MEMBER], transport_down_exit_minutes=10)
    provider, _ = sim_provider(settings, OPEN_TIME)
    clock = StepClock()
    app = BotApp(settings, build_services(settings, provider), StateDB(state_path(settings)), monotonic=clock)
    app.watchdog_seconds = 0.02
    task = asyncio.create_task(app.run())
    await wait_until(lambda: app.telegram is not None and app.telegram.health.reason != "starting")
    clock.now += 9 * 60
    await asyncio.sleep(0.1)  # several watchdog rounds: 9 min is not long enough
    assert not task.done()
    status = await app.layer.handle(Requester("telegram", str(MEMBER)), "/status")
    assert "Telegram: DOWN for 9 min" in status.text
    clock.now += 2 * 60
    assert await asyncio.wait_for(task, 10) == 3


async def test_discord_token_rejected_then_accepted_connects(layer, caplog):
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        async with FakeDiscord("MTE" + "other.token" + "x" * 20, guild_ids=[1]) as fake:
            adapter = DiscordAdapter(DISCORD_TOKEN, layer, guild_ids=[1], api_base_url=fake.api_base_url,
                                     gateway_url=fake.gateway_url, reconnect_delay=0.05,
                                     token_retry_delay=0.2, max_token_retry_delay=0.2)
            await adapter.start()
            try:
                await wait_until(lambda: "rejected the bot token" in caplog.text)
                assert not adapter.health.up and "rejected" in adapter.health.reason
                fake.token = DISCORD_TOKEN  # the API accepts it again
                await fake.wait_session()
                await wait_until(lambda: adapter.health.up)
            finally:
                await adapter.stop()
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway
