"""Telegram faults with the real pieces: the alert outbox (AlertEngine + StateDB), the real
TelegramAdapter (python-telegram-bot) and the fake Bot API server on 127.0.0.1 misbehaving on command:
floods of 429, dropped connections and 5xx bursts, the API server restarting on the same port, and a
Conflict from a second poller. Every alert must arrive exactly once when the fault clears (counted at
the server); command replies are retried, or reported in the log when they cannot be delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime

import pytest
from aiohttp import web

from bot.alerts import AlertEngine
from bot.commands import CommandLayer
from bot.services import build_services
from bot.state import StateDB
from bot.telegram_adapter import TelegramAdapter
from core.types import NY
from tests.fakes.bot_stack import make_settings, sim_provider
from tests.fakes.fake_bot_api import FakeBotApi
from tests.fakes.outbox import outbox_counts

TOKEN = "6060" + "60606:" + "AAG" + "tgFaults" * 4
CHATS = list(range(5001, 5013))


class RestartableBotApi(FakeBotApi):
    """The shared fake, able to stop and come back on the SAME port (a Bot API server restart)."""

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._dispatch)
        app.router.add_get("/bot{token}/{method}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)  # 0 the first time: a free port
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture(autouse=True)
def _models(trained_store):
    return trained_store


@dataclass
class Bot:
    api: RestartableBotApi
    adapter: TelegramAdapter
    engine: AlertEngine
    state: StateDB

    def record_alerts(self, chats: list[int] = CHATS) -> None:
        for chat in chats:
            self.state.record_alert("SPY|long|2026-11-24|10:30", f"telegram:{chat}", "SPY", "long",
                                    date(2026, 11, 24), 90.0, {"title": "ALERT · SPY", "text": "SPY <long> & up"},
                                    datetime(2026, 11, 24, 10, 32, tzinfo=NY))

    def delivered(self) -> list[int]:
        return sorted(int(c.params["chat_id"]) for c in self.api.sent if int(c.params["chat_id"]) in CHATS)

    async def deliver_until_done(self, rounds: int = 5) -> None:
        """What the bot's retry_outbox job does every 30 s, without the wait."""
        for _ in range(rounds):
            await self.engine.deliver_pending()
            if not self.state.pending_alerts():
                return


@asynccontextmanager
async def telegram_bot(tmp_path, **adapter_options: object) -> AsyncIterator[Bot]:
    api = RestartableBotApi(TOKEN, max_poll_wait=0.2)
    await api.start()
    settings = make_settings(tmp_path, telegram_allowed_chat_ids=CHATS)
    provider, _ = sim_provider(settings)
    services = build_services(settings, provider)
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    layer = CommandLayer(services, state)
    options: dict[str, object] = {"poll_timeout": 1, "retry_base_delay": 0.05}
    options.update(adapter_options)
    adapter = TelegramAdapter(TOKEN, layer, base_url=api.base_url, **options)  # type: ignore[arg-type]
    await adapter.start()
    try:
        yield Bot(api, adapter, AlertEngine(layer, state, {"telegram": adapter}), state)
    finally:
        await adapter.stop()
        await services.close()
        state.close()
        await api.stop()


async def wait_until(predicate, timeout: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_flood_of_429_delays_alerts_but_delivers_each_once(tmp_path):
    async with telegram_bot(tmp_path) as bot:
        bot.api.rate_limit_per_second = 4  # the server floods us with 429 beyond 4 a second
        bot.api.fail_next("sendMessage", 2, status=429, retry_after=1)
        bot.record_alerts()
        started = time.monotonic()
        await bot.deliver_until_done()
        assert bot.delivered() == CHATS
        assert bot.api.rate_limited > 0  # the flood really happened
        assert time.monotonic() - started >= 2.0  # really waited as told
        assert outbox_counts(bot.state)["sent"] == len(CHATS)


async def test_network_error_bursts_are_retried_and_delivered_once(tmp_path):
    async with telegram_bot(tmp_path) as bot:
        bot.api.fail_next("sendMessage", 3, close=True)  # NetworkError: the connection drops
        bot.api.fail_next("sendMessage", 2, status=502, retry_after=None)
        bot.record_alerts()
        await bot.deliver_until_done()
        assert bot.delivered() == CHATS
        failed = [c for c in bot.api.calls_to("sendMessage") if not c.ok]
        assert len(failed) == 5


async def test_bot_api_server_restart_then_every_alert_once(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with telegram_bot(tmp_path, max_send_attempts=4, retry_base_delay=0.2) as bot:
        bot.record_alerts()
        await bot.api.stop()
        await bot.engine.deliver_pending()  # Telegram is down: the rows stay in the outbox
        # one alert found the server down after its retries; the others were not tried in this round,
        # so a long outage neither stalls the scans for minutes nor uses up every alert's attempts
        assert bot.delivered() == []
        pending = bot.state.pending_alerts()
        assert len(pending) == len(CHATS) and sorted(r.attempts for r in pending) == [0] * 11 + [1]

        await bot.api.start()  # back on the same port
        await bot.deliver_until_done()
        assert bot.delivered() == CHATS
        # polling recovered on its own: a command is answered
        bot.api.push_message(CHATS[0], "/help")
        await wait_until(lambda: bot.delivered().count(CHATS[0]) == 2)  # the alert, then the answer


async def test_conflict_from_a_second_poller_is_reported_and_nothing_is_lost(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with telegram_bot(tmp_path) as bot:
        bot.api.fail_next("getUpdates", 3, status=409, retry_after=None)
        bot.api.push_message(CHATS[1], "/help")
        await wait_until(lambda: "(Conflict)" in caplog.text)
        await wait_until(lambda: any(c.params.get("chat_id") == CHATS[1] for c in bot.api.sent))
        bot.record_alerts()
        await bot.deliver_until_done()
        assert bot.delivered().count(CHATS[1]) == 2  # the /help answer and the one alert
        assert sorted(set(bot.delivered())) == CHATS and len(bot.delivered()) == len(CHATS) + 1


async def test_command_reply_is_retried_then_reported_never_silently_dropped(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with telegram_bot(tmp_path, max_send_attempts=3) as bot:
        bot.api.fail_next("sendMessage", 2, status=502, retry_after=None)
        bot.api.push_message(CHATS[2], "/help")
        await wait_until(lambda: any(c.params.get("chat_id") == CHATS[2] for c in bot.api.sent))
        assert [c.status for c in bot.api.calls_to("sendMessage") if c.params.get("chat_id") == CHATS[2]] == [
            502, 502, 200]

        bot.api.fail_next("sendMessage", 10, status=502, retry_after=None)
        bot.api.push_message(CHATS[3], "/help")
        await wait_until(lambda: f"reply to telegram:{CHATS[3]} not delivered" in caplog.text)
        assert not any(c.params.get("chat_id") == CHATS[3] for c in bot.api.sent)
