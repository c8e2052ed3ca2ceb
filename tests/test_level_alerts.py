"""Level alerts for real: the simulated market on a fixed clock, snapshots in SQLite, the outbox.
One alert per level kind, direction and session; none again after a restart; none on a holiday; none
without option data; the outbox migration keeps old rows; `scan --once` names each alert's kind."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta

import pytest

from bot.cli import main as cli_main
from bot.services import build_services
from bot.state import StateDB
from bot.state.errors import InvalidStateInput
from bot.state.schema import apply_migrations
from core.options.snapshot import NO_OPTION_DATA, LevelsSnapshot
from core.predictor import closed_by
from core.types import NY
from tests.fakes.alert_stack import (
    ALLOWED_CHATS,
    PNG_MAGIC,
    SCAN_TIME,
    Crash,
    CrashingNotifier,
    record_chart_renders,
    running_alert_stack,
    scan_at,
)
from tests.fakes.bot_stack import CLOSED_TIME, make_settings, sim_provider
from tests.fakes.outbox import outbox_counts
from tests.test_alerts import cli_env  # noqa: F401  (fixture)
from tests.test_level_snapshots import CsvLabelledProvider


def snapshot(taken_at: datetime, zero_gamma: float, symbol: str = "SPY") -> LevelsSnapshot:
    # walls far away: only zero gamma can be crossed
    return LevelsSnapshot(symbol=symbol, taken_at=taken_at, spot=zero_gamma, call_wall=zero_gamma * 2,
                          put_wall=zero_gamma / 2, zero_gamma=zero_gamma, vanna_support=[], vanna_resistance=[],
                          total_gex=1e9, total_vex=-1e7, convention="test", data_source="simulated")


async def last_bar(stack, at: datetime) -> tuple[datetime, float, float]:
    return (await session_bars(stack, at))[-1]


async def level_across_last_bar(stack, at: datetime) -> str:
    """Record a snapshot at the last bar's start whose zero gamma lies between its open and close."""
    start, open_, close = await last_bar(stack, at)
    assert open_ != close
    stack.state.record_level_snapshot(snapshot(start, (open_ + close) / 2))
    return "up" if close > open_ else "down"


@pytest.fixture(autouse=True)
def _patient_predictions(monkeypatch):
    """A loaded test machine can take longer than the chat timeout to score; these tests are about
    which alerts go out, not how fast (a level alert without its prediction is tested apart)."""
    import bot.commands

    monkeypatch.setattr(bot.commands, "PREDICT_TIMEOUT_SECONDS", 600.0)


@pytest.fixture
async def stack(tmp_path, trained_store):
    async with running_alert_stack(make_settings(tmp_path, telegram_allowed_chat_ids=ALLOWED_CHATS)) as s:
        yield s


async def test_one_alert_per_crossing_with_chart_score_and_edge_verdict(stack):
    stack.state.subscribe_levels("telegram:111", "SPY")
    stack.state.subscribe_levels("telegram:222", "all")
    direction = await level_across_last_bar(stack, SCAN_TIME)
    first = await scan_at(stack, SCAN_TIME)
    assert sorted((x["kind"], x["recipient"], x["level_kind"], x["crossing"]) for x in first.sent) == [
        ("level", "telegram:111", "zero_gamma", direction), ("level", "telegram:222", "zero_gamma", direction)]
    assert all(x["direction"] is None for x in first.sent)
    reply = stack.telegram.sent[0][1]
    assert reply.image.startswith(PNG_MAGIC) and "zero gamma" in reply.title
    assert "Model: quality score" in reply.text
    again = await scan_at(stack, SCAN_TIME + timedelta(seconds=30))  # same bar
    assert again.sent == [] and {x["reason"] for x in again.skipped if x.get("kind") == "level"} == {
        "already alerted"}
    assert len(stack.telegram.sent) == 2


async def test_once_per_kind_and_direction_per_session_however_the_level_moves(stack):
    stack.state.subscribe_levels("telegram:111", "SPY")
    directions = []
    at = SCAN_TIME
    for _ in range(8):  # each bar gets a fresh snapshot drawing zero gamma right across it
        start, open_, close = await last_bar(stack, at)
        if open_ != close:
            stack.state.record_level_snapshot(snapshot(start, (open_ + close) / 2))
            directions.append("up" if close > open_ else "down")
        await scan_at(stack, at)
        at += timedelta(minutes=stack.settings.bar_minutes)
    sent = [r.text for _, r in stack.telegram.sent]
    assert len(sent) == len(set(directions)) >= 1
    assert outbox_counts(stack.state)["sent"] == len(set(directions))


# ---------------------------------------------------------------- every bar since the last scan

AFTER_TAKEN = timedelta(seconds=1)  # a snapshot just inside a bar: the latest one by that bar's close


async def session_bars(stack, at: datetime, symbol: str = "SPY") -> list[tuple[datetime, float, float]]:
    """(start, open, close) of each bar of the session closed by `at`."""
    bars = closed_by(await stack.services.predictor.bars.get(symbol, at), at, stack.settings.bar_minutes)
    bars = bars[bars.index.date == at.date()]
    return [(t.to_pydatetime(), float(o), float(c))
            for t, o, c in zip(bars.index, bars["open"], bars["close"], strict=True)]


def far_away(price: float) -> float:
    """A zero gamma whose levels (walls at 2x and 0.5x) no bar of the day reaches."""
    return price * 10


def level_crosses(state: StateDB) -> list[dict]:
    with state.reading() as conn:
        rows = conn.execute("SELECT payload FROM alerts WHERE kind = 'level' ORDER BY id").fetchall()
    return [json.loads(r["payload"])["cross"] for r in rows]


async def cross_two_bars_back(stack, at: datetime) -> tuple[datetime, str]:
    """Zero gamma drawn across the bar two before the last closed one, then moved out of reach."""
    start, open_, close = (await session_bars(stack, at))[-3]
    assert open_ != close
    bar_close = start + timedelta(minutes=stack.settings.bar_minutes)
    stack.state.record_level_snapshot(snapshot(start + AFTER_TAKEN, (open_ + close) / 2))
    stack.state.record_level_snapshot(snapshot(bar_close + AFTER_TAKEN, far_away(close)))
    return start, "up" if close > open_ else "down"


async def test_a_crossing_two_bars_before_a_late_scan_is_alerted(stack):
    stack.state.subscribe_levels("telegram:111", "SPY")
    start, direction = await cross_two_bars_back(stack, SCAN_TIME)
    result = await scan_at(stack, SCAN_TIME)  # the scans of the two bars since were missed
    assert [(x["kind"], x["level_kind"], x["crossing"]) for x in result.sent] == [
        ("level", "zero_gamma", direction)]
    assert [c["bar_start"] for c in level_crosses(stack.state)] == [start.isoformat()]


async def test_a_caught_up_crossing_is_not_repeated_after_a_restart(tmp_path, trained_store):
    settings = make_settings(tmp_path, telegram_allowed_chat_ids=ALLOWED_CHATS)
    async with running_alert_stack(settings) as first:
        first.state.subscribe_levels("telegram:111", "SPY")
        await cross_two_bars_back(first, SCAN_TIME)
        assert len((await scan_at(first, SCAN_TIME)).sent) == 1

    async with running_alert_stack(settings) as second:
        for minutes in (0, 5, 10):  # later scans see the same bar again, among newer ones
            later = await scan_at(second, SCAN_TIME + timedelta(minutes=minutes))
            assert later.sent == []
        assert second.telegram.sent == [] and outbox_counts(second.state)["sent"] == 1


async def test_one_late_scan_alerts_once_per_kind_and_direction_however_many_bars_crossed(stack):
    stack.state.subscribe_levels("telegram:111", "SPY")
    directions = []
    for start, open_, close in (await session_bars(stack, SCAN_TIME))[-12:]:
        if open_ != close:  # each bar gets its own snapshot drawing zero gamma across it
            stack.state.record_level_snapshot(snapshot(start + AFTER_TAKEN, (open_ + close) / 2))
            directions.append("up" if close > open_ else "down")
    assert set(directions) == {"up", "down"} and len(directions) > 2
    result = await scan_at(stack, SCAN_TIME)
    assert sorted(x["crossing"] for x in result.sent) == ["down", "up"]
    assert {x["level_kind"] for x in result.sent} == {"zero_gamma"}
    crosses = level_crosses(stack.state)  # each the first bar that crossed that way
    assert [c["bar_start"] for c in crosses] == sorted(c["bar_start"] for c in crosses)
    renders = record_chart_renders(stack)
    assert (await scan_at(stack, SCAN_TIME + timedelta(seconds=30))).sent == []
    assert renders == []  # crossings already alerted cost no chart on every later scan


@pytest.mark.parametrize("earlier_snapshot", [True, False], ids=["later-snapshot", "before-first-snapshot"])
async def test_a_bar_is_never_judged_by_a_snapshot_taken_after_its_close(stack, earlier_snapshot):
    from bot.level_alerts import session_crossings

    start, open_, close = (await session_bars(stack, SCAN_TIME))[-3]
    bar_close = start + timedelta(minutes=stack.settings.bar_minutes)
    if earlier_snapshot:
        stack.state.record_level_snapshot(snapshot(start + AFTER_TAKEN, far_away(close)))
    # drawn across the bar, but only after it closed
    stack.state.record_level_snapshot(snapshot(bar_close + AFTER_TAKEN, (open_ + close) / 2))
    crosses = await session_crossings(stack.services, stack.state, "SPY", SCAN_TIME)
    assert start not in {c.bar_start for c in crosses}


async def test_no_crossing_no_alert_and_score_subscribers_are_unaffected(stack):
    stack.state.subscribe_levels("telegram:111", "SPY")
    start, open_, close = await last_bar(stack, SCAN_TIME)
    stack.state.record_level_snapshot(snapshot(start, max(open_, close) + 1.0))  # not between open and close
    result = await scan_at(stack, SCAN_TIME)
    assert result.sent == [] and stack.telegram.sent == []


async def test_crossing_is_sent_exactly_once_after_a_restart(tmp_path, trained_store):
    settings = make_settings(tmp_path, telegram_allowed_chat_ids=ALLOWED_CHATS)
    async with running_alert_stack(settings) as first:
        first.state.subscribe_levels("telegram:111", "SPY")
        await level_across_last_bar(first, SCAN_TIME)
        first.engine.notifiers["telegram"] = CrashingNotifier()
        with pytest.raises(Crash):
            await scan_at(first, SCAN_TIME)
    # only the SQLite file remains

    async with running_alert_stack(settings) as second:
        delivered = await second.engine.deliver_pending()
        assert [(x["kind"], x["recipient"]) for x in delivered] == [("level", "telegram:111")]
        rescan = await scan_at(second, SCAN_TIME)
        assert rescan.sent == [] and len(second.telegram.sent) == 1
        assert outbox_counts(second.state) == {"pending": 0, "sending": 0, "sent": 1, "dead": 0}


async def test_no_level_alerts_on_a_holiday(stack):
    stack.state.subscribe_levels("telegram:111", "all")
    result = await scan_at(stack, CLOSED_TIME)
    assert result.sent == [] and outbox_counts(stack.state)["pending"] == 0
    assert {(x["kind"], x["reason"]) for x in result.skipped} == {("level", "market closed")}


async def test_csv_data_has_no_level_alerts(tmp_path, trained_store):
    settings = make_settings(tmp_path, telegram_allowed_chat_ids=ALLOWED_CHATS)
    provider = CsvLabelledProvider(seed=settings.simulated_seed, symbols=settings.symbols,
                                   clock=lambda: SCAN_TIME)
    services = build_services(settings, provider)
    from bot.alerts import AlertEngine
    from bot.commands import CommandLayer

    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    try:
        await services.registry.reload()
        state.subscribe_levels("telegram:111", "SPY")
        engine = AlertEngine(CommandLayer(services, state), state, {})
        result = await engine.scan(SCAN_TIME)
        assert result.sent == [] and [x["reason"] for x in result.skipped] == [NO_OPTION_DATA]
    finally:
        await services.close()
        state.close()


async def test_level_alerts_need_no_edge_and_ignore_the_score_cooldown(stack, monkeypatch):
    import bot.alerts
    import bot.level_alerts
    from core.edge import EdgeStatus

    paused = EdgeStatus(True, False, False, "no demonstrated edge: test; alerts are paused for this symbol")
    for module in (bot.alerts, bot.level_alerts):  # the score scan's gate, the level alert's verdict line
        monkeypatch.setattr(module, "edge_status", lambda manifest, require: paused)
    stack.state.subscribe("telegram:111", "SPY", 0)
    stack.state.subscribe_levels("telegram:111", "SPY")
    await level_across_last_bar(stack, SCAN_TIME)
    result = await scan_at(stack, SCAN_TIME)
    assert [x["kind"] for x in result.sent] == ["level"]
    assert "no demonstrated edge" in stack.telegram.sent[0][1].text
    assert [x["reason"] for x in result.skipped] == ["no demonstrated edge"]


# ---------------------------------------------------------------- the outbox migration

def test_migration_keeps_existing_outbox_rows_and_allows_level_rows(tmp_path):
    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    apply_migrations(raw, path, upto=5)
    raw.execute("INSERT INTO alerts (setup_key, recipient, symbol, direction, session, quality_score, payload, "
                "status, attempts, created_at, sent_at) VALUES ('SPY|long|x', 'telegram:1', 'SPY', 'long', "
                "'2026-11-24', 91.5, '{\"text\": \"hi\"}', 'sent', 1, '2026-11-24T15:35:00.000000+00:00', "
                "'2026-11-24T15:35:01.000000+00:00')")
    raw.close()
    with StateDB(path) as db:
        row = db.alert(1)
        assert row is not None
        assert (row.kind, row.setup_key, row.direction, row.quality_score, row.status, row.payload) == (
            "score", "SPY|long|x", "long", 91.5, "sent", {"text": "hi"})
        with db.reading() as conn:
            indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                  "AND tbl_name = 'alerts' AND sql IS NOT NULL")}
        assert indexes == {"alerts_by_status", "alerts_for_cooldown"}
        session = SCAN_TIME.date()
        level_id = db.record_alert("level|SPY|zero_gamma|up|x", "telegram:1", "SPY", None, session, None, {},
                                   SCAN_TIME, kind="level")
        assert level_id is not None and db.alert(level_id).kind == "level"
        assert db.record_alert("SPY|long|x", "telegram:1", "SPY", "long", session, 90.0, {}, SCAN_TIME) is None
        with pytest.raises(InvalidStateInput):
            db.record_alert("k2", "telegram:1", "SPY", None, session, 90.0, {}, SCAN_TIME)  # score needs a side
        with pytest.raises(InvalidStateInput):
            db.record_alert("k3", "telegram:1", "SPY", None, session, None, {}, SCAN_TIME, kind="news")


# ---------------------------------------------------------------- commands

async def test_subscribe_and_unsubscribe_levels_commands(stack):
    from bot.reply import Requester

    who = Requester("telegram", "111")
    reply = await stack.layer.handle(who, "/subscribe SPY levels")
    assert "level alerts for SPY" in reply.text
    await stack.layer.handle(who, "/subscribe all levels")
    await stack.layer.handle(who, "/subscribe QQQ 70")  # today's form still works
    assert stack.state.level_subscriptions("telegram:111") == ["*", "SPY"]
    assert [(s.symbol, s.threshold) for s in stack.state.subscriptions("telegram:111")] == [("QQQ", 70.0)]
    reply = await stack.layer.handle(who, "/unsubscribe SPY levels")
    assert "1 subscription removed" in reply.text and stack.state.level_subscriptions("telegram:111") == ["*"]
    bad = await stack.layer.handle(who, "/unsubscribe SPY nonsense")
    assert bad.text.startswith("Usage: /unsubscribe")
    await stack.layer.handle(who, "/unsubscribe all levels")
    assert stack.state.level_subscriptions("telegram:111") == []
    assert len(stack.state.subscriptions("telegram:111")) == 1  # score subscriptions untouched


# ---------------------------------------------------------------- tradebot scan --once

def test_cli_scan_once_reports_each_alerts_kind(cli_env, pinned_now, capsys, tmp_path):  # noqa: F811
    pinned_now.now = SCAN_TIME
    settings = make_settings(tmp_path / "probe")
    provider, _ = sim_provider(settings, SCAN_TIME)
    import asyncio

    bars = closed_by(asyncio.run(provider.get_bars("SPY", SCAN_TIME - timedelta(days=1), SCAN_TIME, "5min")),
                     SCAN_TIME, settings.bar_minutes)
    open_, close = float(bars["open"].iloc[-1]), float(bars["close"].iloc[-1])
    cli_env.mkdir(parents=True, exist_ok=True)
    with StateDB(cli_env / "tradebot.sqlite3") as db:
        db.subscribe("console:console", "SPY", 0)
        db.subscribe_levels("console:console", "SPY")
        db.record_level_snapshot(snapshot(bars.index[-1].to_pydatetime().astimezone(NY), (open_ + close) / 2))
    assert cli_main(["scan", "--once", "--at", SCAN_TIME.isoformat()]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(x["kind"] for x in result["sent"]) == ["level", "score"]
    level = next(x for x in result["sent"] if x["kind"] == "level")
    assert level["level_kind"] == "zero_gamma" and level["crossing"] in ("up", "down")
