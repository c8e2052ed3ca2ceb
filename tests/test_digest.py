"""The pre-open brief and the close recap: when they are due (exchange calendar), the subscription
commands, delivery once per kind, trading day and chat, and `tradebot digest --once`."""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime, time, timedelta

from bot.app import digest_once, state_path
from bot.cli import cmd_digest
from bot.commands import CommandLayer
from bot.console import CONSOLE
from bot.digest import digest_time, first_hour_range
from bot.scheduler import TradingDayTrigger, digest_trigger
from bot.services import build_services
from bot.state import StateDB
from core.types import NY

OPEN_AT = time(9, 0)
TRADING_DAY = date(2026, 11, 24)  # a regular Tuesday
HOLIDAY = date(2026, 11, 26)  # Thanksgiving
EARLY_CLOSE = date(2026, 11, 27)  # the day after: the exchange closes at 13:00


def _trigger(kind: str) -> TradingDayTrigger:
    return digest_trigger(kind, OPEN_AT, 10)


def test_digests_are_due_on_trading_days_only_and_the_recap_follows_an_early_close():
    assert digest_time("open", TRADING_DAY, OPEN_AT, 10) == datetime(2026, 11, 24, 9, 0, tzinfo=NY)
    assert digest_time("close", TRADING_DAY, OPEN_AT, 10) == datetime(2026, 11, 24, 16, 10, tzinfo=NY)
    assert digest_time("open", HOLIDAY, OPEN_AT, 10) is None
    assert digest_time("close", HOLIDAY, OPEN_AT, 10) is None
    assert digest_time("close", EARLY_CLOSE, OPEN_AT, 10) == datetime(2026, 11, 27, 13, 10, tzinfo=NY)


def test_digest_trigger_skips_the_holiday_and_fires_once_per_day():
    opens = _trigger("open")
    first = opens.get_next_fire_time(None, datetime(2026, 11, 25, 8, 0, tzinfo=NY))
    assert first == datetime(2026, 11, 25, 9, 0, tzinfo=NY)
    second = opens.get_next_fire_time(first, first)
    assert second == datetime(2026, 11, 27, 9, 0, tzinfo=NY)  # not Thanksgiving
    closes = _trigger("close")
    assert closes.get_next_fire_time(None, datetime(2026, 11, 27, 10, 0, tzinfo=NY)) == datetime(
        2026, 11, 27, 13, 10, tzinfo=NY)
    weekend = closes.get_next_fire_time(None, datetime(2026, 11, 27, 13, 11, tzinfo=NY))
    assert weekend == datetime(2026, 11, 30, 16, 10, tzinfo=NY)  # Saturday and Sunday skipped


def test_first_hour_range_is_the_median_of_past_first_hours(bot_settings):
    import pandas as pd

    idx = pd.DatetimeIndex([datetime(2026, 11, d, h, m, tzinfo=NY) for d in (23, 24)
                            for h, m in ((9, 30), (10, 0), (10, 30), (11, 0))])
    highs = [101, 103, 110, 120, 200, 202, 299, 300]
    lows = [100, 100, 100, 100, 199, 199, 199, 199]
    bars = pd.DataFrame({"open": lows, "high": highs, "low": lows, "close": lows}, index=idx, dtype=float)
    value, n = first_hour_range(bars, date(2026, 11, 25))
    assert n == 2
    assert value == (3 + 3) / 2  # only 09:30-10:29 counts, the 10:30 bar is outside the first hour
    assert first_hour_range(bars, date(2026, 11, 24)) == (3.0, 1)  # no look-ahead into the day itself


async def test_subscribe_digest_commands_and_todays_forms(bot_settings):
    services = build_services(bot_settings)
    state = StateDB(state_path(bot_settings))
    try:
        layer = CommandLayer(services, state)
        reply = await layer.handle(CONSOLE, "/subscribe digest")
        assert reply.ok and "pre-open brief at 09:00 ET" in reply.text
        assert state.digest_recipients() == [CONSOLE.recipient]
        assert state.subscriptions() == []  # a digest is no symbol subscription
        assert "already" in (await layer.handle(CONSOLE, "/subscribe DIGEST")).text
        assert not (await layer.handle(CONSOLE, "/subscribe digest 50")).ok
        assert (await layer.handle(CONSOLE, "/subscribe SPY 70")).ok  # today's form still works
        assert [s.symbol for s in state.subscriptions()] == ["SPY"]
        assert "stopped" in (await layer.handle(CONSOLE, "/unsubscribe digest")).text
        assert state.digest_recipients() == []
        assert [s.symbol for s in state.subscriptions()] == ["SPY"]  # the alert subscription stays
        assert "was not" in (await layer.handle(CONSOLE, "/unsubscribe digest")).text
    finally:
        state.close()
        await services.close()


def _subscribe_console(settings) -> None:
    with StateDB(state_path(settings)) as db:
        db.subscribe_digest(CONSOLE.recipient)


async def test_open_brief_is_delivered_on_the_console_once(bot_settings, pinned_now, capsys):
    at = datetime(2026, 11, 24, 9, 0, tzinfo=NY)
    pinned_now.now = at
    _subscribe_console(bot_settings)
    result = await digest_once(bot_settings, "open", at)
    assert set(result) == {"kind", "at", "trading_day", "sent", "skipped"}
    assert result["kind"] == "open" and result["trading_day"] is True
    assert result["sent"] == [{"recipient": CONSOLE.recipient, "kind": "digest", "digest": "open"}]
    err = capsys.readouterr().err
    assert "Pre-open brief · Tue 24 Nov 2026" in err
    assert "no pre-market data" in err and "first-hour range, median of last" in err
    assert "SIMULATED DATA" in err and "call wall" in err
    again = await digest_once(bot_settings, "open", at)  # a rerun (or restart) sends nothing new
    assert again["sent"] == [] and again["skipped"] == [{"recipient": CONSOLE.recipient, "reason": "already sent"}]


async def test_no_digest_on_a_holiday(bot_settings, pinned_now):
    at = datetime(2026, 11, 26, 9, 0, tzinfo=NY)
    pinned_now.now = at
    _subscribe_console(bot_settings)
    result = await digest_once(bot_settings, "open", at)
    assert result["trading_day"] is False and result["sent"] == []
    assert result["skipped"] == [{"recipient": CONSOLE.recipient, "reason": "not a trading day"}]


async def test_close_recap_on_an_early_close_day_through_the_cli(bot_settings, pinned_now, capsys):
    at = datetime(2026, 11, 27, 13, 10, tzinfo=NY)
    pinned_now.now = at
    _subscribe_console(bot_settings)
    code = await cmd_digest(bot_settings, argparse.Namespace(once=True, kind="close", at=at.isoformat()))
    out = capsys.readouterr()
    body = json.loads(out.out)  # stdout is exactly one JSON object
    assert code == 0
    assert body["kind"] == "close" and body["trading_day"] is True and body["at"] == at.isoformat()
    assert [s["recipient"] for s in body["sent"]] == [CONSOLE.recipient]
    assert "Close recap · Fri 27 Nov 2026" in out.err
    assert "alerts today: none" in out.err and "Level scorecard, last 20 sessions" in out.err


def test_recap_reports_a_level_alert_without_a_score_and_hold_rates_with_intervals(tmp_path):
    from bot.digest import Digest, RecapRow
    from bot.formatting import format_recap
    from core.options.level_scorecard import KindStats, ScorecardWindow

    state = StateDB(tmp_path / "state.sqlite3")
    at = datetime(2026, 11, 24, 11, 0, tzinfo=NY)
    score_id = state.record_alert("score|SPY|long|x", "console:console", "SPY", "long", TRADING_DAY, 86.0,
                                  {"title": "ALERT · SPY LONG · score 86/100"}, at)
    # a level alert sent when no prediction could be made carries neither direction nor score
    level_id = state.record_alert("level|SPY|call_wall|up|2026-11-24", "console:console", "SPY", None,
                                  TRADING_DAY, None, {"title": "LEVEL · SPY closed above the call wall"},
                                  at + timedelta(minutes=5), kind="level")
    assert score_id is not None and level_id is not None
    for alert_id in (score_id, level_id):
        assert state.claim_alert(alert_id) and state.mark_sent(alert_id, at)
    alerts = state.delivered_alerts(TRADING_DAY)
    assert [(a.kind, a.quality_score) for a in alerts] == [("score", 86.0), ("level", None)]

    window = ScorecardWindow(20, date(2026, 10, 27), TRADING_DAY, [
        KindStats("call_wall", False, 30, 18, 6, 6, 0.75, 0.55, 0.88),
        KindStats("round_number", True, 40, 20, 20, 0, 0.5, 0.35, 0.65),
        KindStats("zero_gamma", False, 0, 0, 0, 0, None, None, None)])
    digest = Digest("close", at, TRADING_DAY, "tradier", recap=[RecapRow("SPY", 600.0, 1.0, alerts)],
                    scorecard=window)
    text = format_recap(digest)
    assert "score 86: outcome pending" in text
    assert "no score: a level alert, no trade to score" in text
    assert "Call wall 75% [55–88%] of 24" in text and "Round numbers* 50% [35–65%] of 40" in text
    assert "Zero gamma n/a" in text and "the last 20 sessions" in text


def test_a_bot_started_after_a_digest_fell_due_still_sends_it_that_day():
    from bot.digest import overdue_digests

    def due(d: date, hm: str) -> list[str]:
        return overdue_digests(datetime.combine(d, time.fromisoformat(hm), NY), OPEN_AT, 10)

    assert due(TRADING_DAY, "08:59") == []
    assert due(TRADING_DAY, "09:01") == ["open"]
    assert due(TRADING_DAY, "09:30") == []  # the session has begun: a brief is stale
    assert due(TRADING_DAY, "16:09") == []
    assert due(TRADING_DAY, "16:30") == ["close"]
    assert due(EARLY_CLOSE, "13:15") == ["close"]
    assert due(HOLIDAY, "10:00") == [] and due(HOLIDAY, "17:00") == []


def test_the_scheduler_queues_a_missed_digest_once_at_start(tmp_path):
    from bot.app import BotApp
    from bot.scheduler import build_scheduler
    from core.marketdata.simulated import SimulatedProvider
    from tests.fakes.bot_stack import FixedClock, base_settings

    settings = base_settings(tmp_path, symbols="SPY")
    clock = FixedClock(datetime(2026, 11, 24, 8, 0, tzinfo=NY))
    provider = SimulatedProvider(seed=settings.simulated_seed, symbols=settings.symbols, clock=clock)
    app = BotApp(settings, build_services(settings, provider), StateDB(tmp_path / "state.sqlite3"))

    def missed() -> list[str]:
        return sorted(j.id for j in build_scheduler(app, now=clock.now).get_jobs() if j.id.endswith("_missed"))

    assert missed() == []
    assert not [j for j in build_scheduler(app).get_jobs() if j.id.endswith("_missed")]  # no start time given
    clock.now = datetime(2026, 11, 24, 9, 10, tzinfo=NY)
    assert missed() == ["digest_open_missed"]
    clock.now = datetime(2026, 11, 24, 18, 0, tzinfo=NY)
    assert missed() == ["digest_close_missed"]


def test_recap_card_cells_are_short_enough_for_a_phone_and_count_level_alerts_apart():
    from bot.digest import Digest, RecapRow
    from bot.formatting import digest_card_rows
    from bot.state.digests import DeliveredAlert
    from core.options.level_scorecard import KindStats

    at = datetime(2026, 11, 24, 16, 10, tzinfo=NY)
    alerts = [DeliveredAlert("SPY", "score", "long", 88.0, "", at.isoformat(), "target", 1.0),
              DeliveredAlert("SPY", "level", None, None, "", at.isoformat(), None, None),
              DeliveredAlert("SPY", "level", None, 50.0, "", at.isoformat(), None, None)]
    levels = [KindStats(k, False, 117, 113, 2, 2, 0.98, 0.9, 0.99)
              for k in ("call_wall", "put_wall", "zero_gamma", "vanna_support", "vanna_resistance")]
    digest = Digest("close", at, TRADING_DAY, "tradier", recap=[RecapRow("SPY", 6123.45, -12.5, alerts, levels)])
    [(symbol, cells, note)] = digest_card_rows(digest)
    values = dict(cells)
    assert values["Score alerts"] == "1, 1 won" and values["Call wall"] == "113/117 held"
    assert all(len(v) <= 12 for v in values.values()), values  # a value wider than its column overlaps
    assert note.startswith("level alerts 2") and "vanna support 113/117 held" in note
