"""AlertEngine for real: the simulated market on a fixed clock, trained models, SQLite outbox.
Thresholds, market hours, cooldown, one alert per setup, crash-safe delivery, `tradebot scan --once`
and outcome scoring."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timedelta

import pandas as pd
import pytest

from bot.cli import main as cli_main
from bot.console import CONSOLE
from bot.outcomes import score_due_predictions
from bot.reply import Reply, Requester
from bot.state import StateDB
from core.types import NY
from tests.fakes.alert_stack import (
    ALLOWED_CHATS,
    PNG_MAGIC,
    SCAN_TIME,
    AlertStack,
    Crash,
    CrashingNotifier,
    record_chart_renders,
    running_alert_stack,
    scan_at,
)
from tests.fakes.bot_stack import CLOSED_TIME, OPEN_TIME, TRAIN_DAYS, make_settings
from tests.fakes.outbox import outbox_counts


class FailingNotifier:
    async def send(self, chat_id: str, reply: Reply) -> None:
        raise RuntimeError("socket closed")


@pytest.fixture
async def stack(tmp_path, trained_store):
    async with running_alert_stack(make_settings(tmp_path, telegram_allowed_chat_ids=ALLOWED_CHATS)) as s:
        yield s


# ---------------------------------------------------------------- thresholds and delivery

async def test_one_alert_chart_without_a_marker_and_each_caption_names_its_recipients_threshold(stack):
    stack.state.subscribe("telegram:111", "SPY", 0)
    stack.state.subscribe("telegram:222", "SPY", 0.5)
    charts = record_chart_renders(stack)
    await scan_at(stack, SCAN_TIME)
    assert charts == [{"for_alert": True}]  # one chart for both, marking no threshold
    captions = {chat: reply.text.splitlines()[-1] for chat, reply in stack.telegram.sent}
    assert captions == {"111": "Your alert threshold: score ≥ 0", "222": "Your alert threshold: score ≥ 0.5"}
    assert len({reply.image for _, reply in stack.telegram.sent}) == 1
    assert (await stack.layer.handle(Requester("console", "console"), "/predict SPY")).image is not None
    assert charts[-1] == {"for_alert": False}


async def test_threshold_zero_alerts_and_hundred_does_not(stack):
    stack.state.subscribe("telegram:111", "SPY", 0)
    stack.state.subscribe("telegram:222", "SPY", 100)
    stack.state.subscribe("console:console", "SPY", 0)
    result = await scan_at(stack, SCAN_TIME)

    assert result.market_open
    assert sorted(x["recipient"] for x in result.sent) == ["console:console", "telegram:111"]
    [skip] = result.skipped
    assert skip["recipient"] == "telegram:222" and skip["reason"].startswith("below threshold (")
    assert skip["reason"].endswith("< 100)")

    [(chat, reply)] = stack.telegram.sent
    assert chat == "111"
    assert reply.title.startswith("ALERT · SPY ") and "Win probability" in reply.text
    assert reply.image is not None and reply.image.startswith(PNG_MAGIC)
    assert [b.data for b in reply.buttons] == ["refresh:SPY", "/levels SPY", "/subscribe SPY"]
    printed = stack.console_out.getvalue()
    assert "ALERT == ALERT · SPY" in printed and "Chart: " in printed

    rows = stack.state.all_predictions()
    assert len(rows) == 1 and rows[0].source == "scan" and rows[0].alerted  # one prediction per symbol scan
    sent = result.sent[0]
    assert sent["quality_score"] == rows[0].quality_score and sent["direction"] == rows[0].direction
    assert outbox_counts(stack.state) == {"pending": 0, "sending": 0, "sent": 2, "dead": 0}


async def test_all_symbols_row_alerts_once_and_a_symbol_row_overrides_it(stack):
    stack.state.subscribe("telegram:111", "all", 0)  # stored as one "*" row
    stack.state.subscribe("telegram:111", "QQQ", 100)  # but not QQQ below a perfect score
    result = await scan_at(stack, SCAN_TIME)
    assert sorted(x["symbol"] for x in result.sent) == ["IWM", "SPY"]
    assert [(x["symbol"], x["reason"][:15]) for x in result.skipped] == [("QQQ", "below threshold")]
    assert len(stack.telegram.sent) == 2


async def test_market_closed_skips_everything_and_records_nothing(stack):
    stack.state.subscribe("telegram:111", "all", 0)
    result = await scan_at(stack, CLOSED_TIME)
    assert not result.market_open and result.sent == []
    assert sorted(x["symbol"] for x in result.skipped) == ["IWM", "QQQ", "SPY"]
    assert {x["reason"] for x in result.skipped} == {"market closed"}
    assert stack.state.all_predictions() == [] and sum(outbox_counts(stack.state).values()) == 0
    assert stack.telegram.sent == []


async def test_no_subscribers_means_no_prediction(stack):
    result = await scan_at(stack, SCAN_TIME)
    assert result.sent == [] and result.skipped == []
    assert stack.state.all_predictions() == []


# ---------------------------------------------------------------- cooldown and one alert per setup

async def _direction(stack: AlertStack, symbol: str, at: datetime) -> str:
    stack.clock.now = at
    bundle = await stack.services.predictor.predict(symbol, now=at, with_levels=False)
    return bundle.prediction.direction


async def _cooldown_case(stack: AlertStack, cooldown: timedelta) -> tuple[str, datetime]:
    """A symbol and scan time whose direction stays the same 5 min and one cooldown later."""
    for symbol in stack.settings.symbols:
        for k in range(24):
            t0 = SCAN_TIME + timedelta(minutes=5 * k)
            first = await _direction(stack, symbol, t0)
            if first == await _direction(stack, symbol, t0 + timedelta(minutes=5)) == await _direction(
                    stack, symbol, t0 + cooldown):
                return symbol, t0
    raise AssertionError("the simulated market never kept a direction for a cooldown")


async def test_cooldown_then_a_new_setup_alerts_again(stack):
    cooldown = timedelta(minutes=stack.settings.alert_cooldown_minutes)
    symbol, t0 = await _cooldown_case(stack, cooldown)
    stack.state.subscribe("telegram:111", symbol, 0)

    first = await scan_at(stack, t0)
    assert [x["recipient"] for x in first.sent] == ["telegram:111"]
    second = await scan_at(stack, t0 + timedelta(minutes=5))
    assert second.sent == [] and [x["reason"] for x in second.skipped] == ["in cooldown"]
    later = await scan_at(stack, t0 + cooldown)
    assert [x["recipient"] for x in later.sent] == ["telegram:111"], later.skipped
    assert len(stack.telegram.sent) == 2
    assert outbox_counts(stack.state)["sent"] == 2


async def test_one_alert_per_setup_even_without_cooldown(tmp_path, trained_store):
    settings = make_settings(tmp_path, alert_cooldown_minutes=0, telegram_allowed_chat_ids=ALLOWED_CHATS)
    async with running_alert_stack(settings) as s:
        s.state.subscribe("telegram:111", "QQQ", 0)
        first = await scan_at(s, SCAN_TIME)
        again = await scan_at(s, SCAN_TIME + timedelta(seconds=40))  # same closed bar: same setup
        assert len(first.sent) == 1
        assert again.sent == [] and [x["reason"] for x in again.skipped] == ["already alerted"]
        assert len(s.telegram.sent) == 1


# ---------------------------------------------------------------- crash between recording and sending

@pytest.mark.parametrize("notifier", [CrashingNotifier, FailingNotifier])
async def test_recorded_alert_is_sent_exactly_once_after_a_restart(tmp_path, trained_store, notifier):
    settings = make_settings(tmp_path, telegram_allowed_chat_ids=ALLOWED_CHATS)
    async with running_alert_stack(settings) as first:
        first.state.subscribe("telegram:111", "SPY", 0)
        first.engine.notifiers["telegram"] = notifier()
        if notifier is CrashingNotifier:
            with pytest.raises(Crash):
                await scan_at(first, SCAN_TIME)
        else:
            result = await scan_at(first, SCAN_TIME)
            assert result.sent == []
    # the process is gone; only the SQLite file remains

    async with running_alert_stack(settings) as second:
        assert outbox_counts(second.state)["pending"] == 1
        delivered = await second.engine.deliver_pending()
        assert [(x["symbol"], x["recipient"]) for x in delivered] == [("SPY", "telegram:111")]
        assert await second.engine.deliver_pending() == []
        assert len(second.telegram.sent) == 1
        assert second.telegram.sent[0][1].image.startswith(PNG_MAGIC)  # the chart survived the restart
        # a rescan of the same bar after the restart neither re-records nor re-sends it
        rescan = await scan_at(second, SCAN_TIME)
        assert rescan.sent == [] and len(second.telegram.sent) == 1
        assert outbox_counts(second.state) == {"pending": 0, "sending": 0, "sent": 1, "dead": 0}


# ---------------------------------------------------------------- tradebot scan --once

@pytest.fixture
def cli_env(tmp_path, trained_store, monkeypatch):
    shutil.copytree(trained_store, tmp_path / "models")
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "models"))
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TRAIN_DAYS", str(TRAIN_DAYS))
    monkeypatch.setenv("TELEGRAM_ALLOWED_CHAT_IDS", ",".join(map(str, ALLOWED_CHATS)))
    monkeypatch.chdir(tmp_path)  # no developer .env
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield tmp_path / "state"
    for h in list(root.handlers):  # the CLI installs its own stderr handler; put pytest's back
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def _subscribe(state_dir, *subs: tuple[str, str, float]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    with StateDB(state_dir / "tradebot.sqlite3") as db:
        for recipient, symbol, threshold in subs:
            db.subscribe(recipient, symbol, threshold)


def test_cli_scan_once_open_prints_one_json_object(cli_env, capsys):
    _subscribe(cli_env, ("console:console", "SPY", 0), ("telegram:111", "QQQ", 100))
    assert cli_main(["scan", "--once", "--at", "2026-11-24T10:35:20-05:00"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # the whole of stdout is the one object
    assert set(result) == {"at", "market_open", "sent", "skipped"}
    assert result["at"] == "2026-11-24T10:35:20-05:00" and result["market_open"] is True
    [sent] = result["sent"]
    assert set(sent) >= {"symbol", "direction", "quality_score", "recipient"}
    assert (sent["symbol"], sent["recipient"]) == ("SPY", "console:console")
    assert sent["direction"] in ("long", "short") and 0 <= sent["quality_score"] <= 100
    [skipped] = result["skipped"]
    assert set(skipped) == {"symbol", "recipient", "reason"}
    assert (skipped["symbol"], skipped["recipient"]) == ("QQQ", "telegram:111")
    assert skipped["reason"].startswith("below threshold")
    with StateDB(cli_env / "tradebot.sqlite3") as db:
        assert outbox_counts(db)["sent"] == 1
        assert {r.symbol for r in db.all_predictions()} == {"SPY", "QQQ"}


def test_cli_scan_once_closed(cli_env, capsys):
    _subscribe(cli_env, ("console:console", "all", 0))
    assert cli_main(["scan", "--once", "--at", "2026-11-26T12:00:00-05:00"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["market_open"] is False and result["sent"] == []
    assert sorted((x["symbol"], x["reason"]) for x in result["skipped"]) == [
        ("IWM", "market closed"), ("QQQ", "market closed"), ("SPY", "market closed")]


def test_cli_scan_bad_time_is_one_line_exit_1(cli_env, capsys):
    assert cli_main(["scan", "--once", "--at", "yesterday-ish"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--at 'yesterday-ish' is not an ISO time" in captured.err


# ---------------------------------------------------------------- outcome scoring

async def test_outcomes_are_scored_once_the_horizon_passed(stack):
    stack.clock.now = OPEN_TIME
    await stack.layer.handle(CONSOLE, "/predict SPY")
    await stack.layer.handle(CONSOLE, "/predict IWM")
    assert await score_due_predictions(stack.state, stack.services.provider, stack.settings, OPEN_TIME) == 0

    horizon = timedelta(minutes=stack.settings.horizon_bars * stack.settings.bar_minutes)
    [row] = [r for r in stack.state.all_predictions() if r.symbol == "SPY"]
    stack.clock.now = row.horizon_end - timedelta(seconds=1)
    assert await score_due_predictions(stack.state, stack.services.provider, stack.settings,
                                       stack.clock.now) == 0
    stack.clock.now = row.as_of + horizon + timedelta(minutes=25)
    assert await score_due_predictions(stack.state, stack.services.provider, stack.settings,
                                       stack.clock.now) == 2
    assert await score_due_predictions(stack.state, stack.services.provider, stack.settings,
                                       stack.clock.now) == 0  # scored once

    for scored in stack.state.all_predictions():
        assert scored.scored and scored.first_hit in ("target", "stop", "none")
        bars = await stack.services.provider.get_bars(scored.symbol, scored.as_of, scored.horizon_end, "5min")
        window = bars[(bars.index >= pd.Timestamp(scored.as_of)) & (bars.index < pd.Timestamp(scored.horizon_end))]
        assert len(window) == stack.settings.horizon_bars
        assert scored.realised_high == pytest.approx(float(window["high"].max()))
        assert scored.realised_low == pytest.approx(float(window["low"].min()))
        if scored.first_hit == "target":
            assert scored.outcome_r > 0
        elif scored.first_hit == "stop":
            assert scored.outcome_r == pytest.approx(-1.0)
    log = await stack.layer.handle(CONSOLE, "/log 2")
    assert "pending" not in log.text and "R" in log.text



async def test_no_alert_before_the_first_bar_of_the_session_closed(stack):
    stack.state.subscribe("telegram:111", "SPY", 0)
    at_open = await scan_at(stack, datetime(2026, 11, 24, 9, 30, 20, tzinfo=NY))
    assert at_open.market_open and at_open.sent == []  # the last closed bar is yesterday's: stale
    assert [x["reason"] for x in at_open.skipped] == ["no bar closed yet this session"]
    assert stack.telegram.sent == []
    first_bar = await scan_at(stack, datetime(2026, 11, 24, 9, 35, 20, tzinfo=NY))
    assert [x["recipient"] for x in first_bar.sent] == ["telegram:111"]


# ---------------------------------------------------------------- stale alerts and long outages

async def test_outage_keeps_alerts_pending_and_a_finished_session_expires_them(stack):
    from bot.reply import DeliveryError

    class Down:
        calls = 0

        async def send(self, chat_id: str, reply: Reply) -> None:
            Down.calls += 1
            raise DeliveryError("network down")

    for chat in ("telegram:1", "telegram:2"):
        stack.state.record_alert("SPY|long|2026-11-24|10:30", chat, "SPY", "long", SCAN_TIME.date(), 90.0,
                                 {"title": "t", "text": "x"}, SCAN_TIME)
    stack.engine.notifiers["telegram"] = Down()
    for _ in range(20):  # far more rounds than any attempt cap: a transient outage kills nothing
        assert await stack.engine.deliver_pending(SCAN_TIME) == []
    assert Down.calls == 20  # one try per round, not one per alert
    assert outbox_counts(stack.state)["pending"] == 2
    stack.engine.notifiers["telegram"] = stack.telegram
    next_day = SCAN_TIME + timedelta(days=1)
    assert await stack.engine.deliver_pending(next_day) == []  # yesterday's setup is not actionable
    assert outbox_counts(stack.state)["dead"] == 2 and stack.telegram.sent == []


# ---------------------------------------------------------------- per-chat /settings at delivery

async def test_a_chat_with_score_alerts_off_gets_nothing_and_keeps_its_subscription(stack):
    stack.state.subscribe("telegram:111", "SPY", 0)
    stack.state.subscribe("telegram:222", "SPY", 0)
    stack.state.set_chat_setting("telegram:111", "score", "off")
    stack.state.set_chat_setting("telegram:222", "score", "silent")
    stack.state.set_chat_setting("telegram:222", "level", "off")  # another kind: no effect on score alerts
    result = await scan_at(stack, SCAN_TIME)

    assert [s["recipient"] for s in result.sent] == ["telegram:222"]
    [(chat, reply)] = stack.telegram.sent
    assert chat == "222" and reply.silent
    assert [s.symbol for s in stack.state.subscriptions("telegram:111")] == ["SPY"]  # off is not unsubscribe
    assert stack.state.pending_alerts() == []  # the muted alert is settled, never retried later
    assert await stack.engine.chat_setting("telegram:111", "score") == "off"
    assert await stack.engine.chat_setting("telegram:111", "digest") == "on"  # unset: everything on


async def test_settings_command_shows_and_changes_this_chats_modes(stack):
    chat = Requester("telegram", "111")
    shown = await stack.layer.handle(chat, "/settings")
    assert shown.ok and "Score alerts: on" in shown.text and "Digests: on" in shown.text
    changed = await stack.layer.handle(chat, "/settings digest silent")
    assert "Digests: silent" in changed.text
    assert stack.state.chat_settings("telegram:111") == {"score": "on", "level": "on", "digest": "silent"}
    for bad in ("/settings digest", "/settings loud on", "/settings score loud"):
        reply = await stack.layer.handle(chat, bad)
        assert not reply.ok and reply.text == "Usage: /settings [score|level|digest] [on|silent|off]"
    assert stack.state.chat_settings("telegram:111")["digest"] == "silent"
    assert stack.state.chat_settings("telegram:222") == {"score": "on", "level": "on", "digest": "on"}
