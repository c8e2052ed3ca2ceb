"""The allow-list applies to alerts at send time: a Telegram chat or a Discord guild that is not (or
no longer) allowed gets nothing, is skipped with the reason "not allowed", and loses its
subscriptions. Discord subscriptions store their guild; rows from before that are resolved once
through the REST API (tests/fakes/fake_discord.py), or dropped when the channel is unknown."""

from __future__ import annotations

import logging
import sqlite3
from datetime import date, datetime

import discord
import pytest

from bot.alerts import AlertEngine
from bot.discord_adapter import DiscordAdapter
from bot.state import StateDB
from bot.state.schema import apply_migrations
from core.types import NY
from tests.fakes.alert_stack import SCAN_TIME, running_alert_stack, scan_at
from tests.fakes.bot_stack import make_settings
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.outbox import outbox_counts

DISCORD_TOKEN = "MTE" + "xMjM0NTY3ODkz" + ".Ga" + "list" * 8
GUILD, OTHER_GUILD = 600_000_000_000_000_001, 600_000_000_000_000_002
OLD_CHANNEL, FOREIGN_CHANNEL, GONE_CHANNEL = 610_000_000_000_000_001, 610_000_000_000_000_002, 610_000_000_000_000_003


@pytest.fixture
async def stack(tmp_path, trained_store):
    settings = make_settings(tmp_path, telegram_allowed_chat_ids=[111], discord_guild_ids=[GUILD])
    async with running_alert_stack(settings) as s:
        yield s


async def test_a_telegram_chat_no_longer_allowed_is_skipped_and_unsubscribed(stack, caplog):
    caplog.set_level(logging.WARNING)
    stack.state.subscribe("telegram:111", "SPY", 0)
    stack.state.subscribe("telegram:555", "all", 0)  # subscribed while it was allowed
    # and an alert recorded for it back then, still pending
    stack.state.record_alert("SPY|long|2026-11-24|10:00", "telegram:555", "SPY", "long", date(2026, 11, 24),
                             90.0, {"title": "ALERT", "text": "old"}, datetime(2026, 11, 24, 10, 2, tzinfo=NY))
    result = await scan_at(stack, SCAN_TIME)
    assert [x["recipient"] for x in result.sent] == ["telegram:111"]
    assert {x["reason"] for x in result.skipped if x["recipient"] == "telegram:555"} == {"not allowed"}
    assert [chat for chat, _ in stack.telegram.sent] == ["111"]
    assert stack.state.subscriptions("telegram:555") == []
    assert "telegram:555 is not allowed any more: deleted its 1 subscription" in caplog.text
    assert stack.state.pending_alerts() == []
    assert outbox_counts(stack.state).get("dead") == 1


def test_schema_4_adds_the_guild_and_keeps_older_rows(tmp_path):
    path = tmp_path / "tradebot.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    apply_migrations(raw, path, upto=3)
    raw.execute("INSERT INTO subscriptions VALUES ('discord:1', 'SPY', 80, '2026-11-01T00:00:00+00:00')")
    raw.close()
    with StateDB(path) as db:
        assert db.recipient_guild("discord:1") == (True, None)
        db.subscribe("discord:2", "SPY", 80, guild_id="77")
        assert db.recipient_guild("discord:2") == (True, "77")
        assert db.set_recipient_guild("discord:1", "78") == 1
        assert db.recipient_guild("discord:1") == (True, "78")


async def test_discord_rows_are_checked_against_their_guild(stack, caplog):
    caplog.set_level(logging.WARNING)
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        async with FakeDiscord(DISCORD_TOKEN, guild_ids=[GUILD, OTHER_GUILD]) as fake:
            fake.channel_guilds[OLD_CHANNEL] = GUILD
            adapter = DiscordAdapter(DISCORD_TOKEN, stack.layer, guild_ids=[GUILD], api_base_url=fake.api_base_url,
                                     gateway_url=fake.gateway_url)
            await adapter.start_send_only()
            engine = AlertEngine(stack.layer, stack.state, {"discord": adapter})
            try:
                for channel in (OLD_CHANNEL, GONE_CHANNEL):  # rows from before the guild was stored
                    stack.state.subscribe(f"discord:{channel}", "SPY", 0)
                stack.state.subscribe(f"discord:{FOREIGN_CHANNEL}", "SPY", 0, guild_id=str(OTHER_GUILD))
                stack.clock.now = SCAN_TIME
                result = await engine.scan(SCAN_TIME)
                assert [x["recipient"] for x in result.sent] == [f"discord:{OLD_CHANNEL}"]
                refused = sorted(x["recipient"] for x in result.skipped if x["reason"] == "not allowed")
                assert refused == [f"discord:{FOREIGN_CHANNEL}", f"discord:{GONE_CHANNEL}"]
                assert [m.target for m in fake.messages] == [str(OLD_CHANNEL)]
                assert stack.state.recipient_guild(f"discord:{OLD_CHANNEL}") == (True, str(GUILD))
                assert [s.recipient for s in stack.state.subscriptions()] == [f"discord:{OLD_CHANNEL}"]
                lookups = [r for r in fake.requests if r.method == "GET" and r.path.startswith("/channels/")]
                assert len(lookups) == 2  # once each for the two old rows

                await engine.scan(SCAN_TIME)  # resolved once: stored, not asked again
                assert len([r for r in fake.requests if r.method == "GET" and r.path.startswith("/channels/")]) == 2
            finally:
                await adapter.stop()
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway
