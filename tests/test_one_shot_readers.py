"""One-shot commands beside a running bot: readers open the state read-only and never recover its
in-flight sends; `scan --once` only sends (no long poll with the bot's token, no start-up report)."""

from __future__ import annotations

import json
from datetime import date

from bot.app import scan_once, state_path
from bot.cli import performance_report
from bot.state import StateDB
from bot.state.errors import StateError
from tests.fakes.bot_stack import OPEN_TIME, make_settings
from tests.fakes.fake_bot_api import FakeBotApi
from tests.fakes.outbox import outbox_counts

TOKEN = "5151" + "51515:" + "AAH" + "oneShot1" * 4
ADMIN = 4242


def _alert_being_sent(db: StateDB) -> int:
    alert_id = db.record_alert("SPY|long|2026-11-24|10:30", "telegram:1001", "SPY", "long", date(2026, 11, 24),
                               90.0, {"title": "ALERT", "text": "x"}, OPEN_TIME)
    assert alert_id is not None and db.claim_alert(alert_id)
    return alert_id


async def test_performance_and_export_log_leave_a_live_bots_sends_alone(tmp_path, trained_store, capsys):
    from bot.cli import cmd_export_log

    settings = make_settings(tmp_path)
    live = StateDB(state_path(settings))  # the running bot's connection, mid-send
    try:
        _alert_being_sent(live)
        assert await performance_report(settings, as_json=True, chart=None) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) is not None

        class Args:
            file = tmp_path / "log.csv"

        assert await cmd_export_log(settings, Args()) == 0  # type: ignore[arg-type]
        assert outbox_counts(live)["sending"] == 1  # still the live bot's, not re-queued
    finally:
        live.close()


def test_read_only_state_refuses_writes_and_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere" / "tradebot.sqlite3"
    with StateDB(missing, read_only=True) as db:
        assert db.all_predictions() == []
    assert not missing.parent.exists()

    path = tmp_path / "tradebot.sqlite3"
    StateDB(path).close()
    with StateDB(path, read_only=True) as db:
        try:
            db.subscribe("telegram:1", "SPY", 80)
        except StateError as exc:
            assert "read-only" in str(exc)
        else:
            raise AssertionError("a read-only state accepted a write")
        assert db.subscriptions() == []


async def test_scan_once_neither_polls_nor_announces(tmp_path, trained_store):
    async with FakeBotApi(TOKEN, max_poll_wait=0.2) as fake:
        settings = make_settings(tmp_path, telegram_bot_token=TOKEN, telegram_api_base_url=fake.base_url,
                                 telegram_allowed_chat_ids=[1001], telegram_admin_chat_ids=[ADMIN])
        result = await scan_once(settings, OPEN_TIME)
        assert result["market_open"] is True
        assert fake.calls_to("getMe"), "the one-shot scan should still check its token to send"
        assert fake.calls_to("getUpdates") == []
        assert fake.calls_to("setMyCommands") == []
        assert fake.sent == []  # no "tradebot is up" to the admins
