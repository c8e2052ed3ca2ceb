"""Options-levels snapshots: due on the session grid only, recorded in SQLite by the scheduled job
(on the simulated market, fixed clock), archived to the model store on live data (local folder and
S3 via moto), read back by `tradebot levels-history`, and "no option data" on CSV data."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import BotApp
from bot.cli import main
from bot.level_record import level_scorecard, take_snapshots
from bot.scheduler import build_scheduler, session_grid_trigger, snapshot_times
from bot.services import build_services
from bot.state import StateDB
from core import calendar
from core.marketdata.simulated import SimulatedProvider
from core.options.snapshot import NO_OPTION_DATA, LevelsSnapshot, StrikeNet
from core.options.snapshot_archive import SnapshotArchive
from core.types import NY, Level
from tests.fakes.bot_stack import FixedClock, base_settings
from tests.fakes.s3_server import make_bucket, s3_endpoint  # noqa: F401

TUESDAY = date(2026, 11, 24)
THANKSGIVING, HALF_DAY = date(2026, 11, 26), date(2026, 11, 27)


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)


class LiveLabelledProvider(SimulatedProvider):
    """The simulated market, labelled as live data: the one thing the archive path looks at."""

    source = "tradier"


class CsvLabelledProvider(SimulatedProvider):
    source = "csv"


def test_snapshot_times_follow_the_exchange_calendar():
    assert [f"{t:%H:%M}" for t in snapshot_times(TUESDAY, 30)] == [
        "09:35", "10:05", "10:35", "11:05", "11:35", "12:05", "12:35", "13:05", "13:35", "14:05", "14:35",
        "15:05", "15:35"]
    assert snapshot_times(THANKSGIVING, 30) == []
    assert f"{snapshot_times(HALF_DAY, 30)[-1]:%H:%M}" == "12:35"  # 13:00 close
    assert len(snapshot_times(TUESDAY, 45)) == 9  # 09:35 .. 15:35 every 45 min


def test_trigger_fires_only_in_session_over_a_holiday_week():
    trig = session_grid_trigger(30)
    fires, t = [], trig.get_next_fire_time(None, at(date(2026, 11, 22), 0, 0))
    while t is not None and t < at(date(2026, 11, 30), 0, 0):
        fires.append(t)
        t = trig.get_next_fire_time(t, t)
    assert all(calendar.is_open(f) for f in fires)
    assert len(fires) == 3 * 13 + 7  # Mon-Wed full sessions, Thanksgiving none, Friday until 13:00
    assert fires[0] == at(date(2026, 11, 23), 9, 35)
    assert trig.get_next_fire_time(None, at(HALF_DAY, 12, 40)) == at(date(2026, 11, 30), 9, 35)


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "local":
        yield str(tmp_path / "models"), None
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        yield f"s3://{make_bucket(endpoint)}/prod", endpoint


async def run_job_over_a_day(tmp_path: Path, provider_cls: type, store: tuple[str, str | None]):
    settings = base_settings(tmp_path, symbols="SPY,QQQ", model_store=store[0], s3_endpoint_url=store[1])
    clock = FixedClock(at(TUESDAY, 8, 0))
    provider = provider_cls(seed=settings.simulated_seed, symbols=settings.symbols, clock=clock)
    services = build_services(settings, provider)
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    app = BotApp(settings, services, state)
    sched = build_scheduler(app)
    job = sched.get_job("levels_snapshot")
    assert job is not None and job.func.__wrapped__ == app.snapshot_levels
    due = snapshot_times(TUESDAY, settings.levels_snapshot_minutes)
    # the job runs at every due time, and (as a misfire or by hand) outside the session too
    for when in [at(TUESDAY, 8, 0), *due, at(TUESDAY, 16, 5), at(THANKSGIVING, 10, 5)]:
        clock.now = when + timedelta(seconds=2)
        await app.snapshot_levels()
    return settings, services, state, due


async def test_job_records_every_due_snapshot_and_archives_live_ones(tmp_path, store_url):
    settings, services, state, due = await run_job_over_a_day(tmp_path, LiveLabelledProvider, store_url)
    try:
        for symbol in settings.symbols:
            rows = state.level_snapshots(symbol)
            assert [r.taken_at for r in rows] == due  # in session only, one per due time
            first = rows[0]
            assert first.convention.startswith("dealers long calls") and first.data_source == "tradier"
            assert first.strikes and first.total_gex == pytest.approx(sum(s.net_gex for s in first.strikes))
            assert first.call_wall is not None and first.spot > 0
            archived = services.level_archive.load(symbol)
            assert [a.to_dict() for a in archived] == [r.to_dict() for r in rows]
        blobs = services.level_archive.blobs
        assert blobs.list("levels/") == ["levels/QQQ/2026-11.jsonl.gz", "levels/SPY/2026-11.jsonl.gz"]
        # a fresh deployment (empty SQLite) still has the history through the store
        fresh = StateDB(tmp_path / "fresh.sqlite3")
        try:
            from bot.level_record import snapshot_history

            history = await snapshot_history(services, fresh, "SPY", at(TUESDAY, 10, 0), at(TUESDAY, 11, 0))
            assert [f"{s.taken_at:%H:%M}" for s in history] == ["10:05", "10:35"]
        finally:
            fresh.close()
    finally:
        await services.close()
        state.close()


async def test_simulated_snapshots_stay_in_sqlite(tmp_path):
    settings, services, state, due = await run_job_over_a_day(tmp_path, SimulatedProvider,
                                                              (str(tmp_path / "models"), None))
    try:
        assert len(state.level_snapshots("SPY")) == len(due)
        assert services.level_archive.blobs.list("levels/") == []
        card = await level_scorecard(services, state, at(TUESDAY, 16, 30))
        assert card is not None and card.all_time.sessions == 1 and card.symbols == ["QQQ", "SPY"]
    finally:
        await services.close()
        state.close()


async def test_csv_data_says_no_option_data(tmp_path):
    settings = base_settings(tmp_path, symbols="SPY")
    provider = CsvLabelledProvider(seed=7, symbols=settings.symbols, clock=FixedClock(at(TUESDAY, 10, 5)))
    services = build_services(settings, provider)
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    try:
        run = await take_snapshots(services, state, at(TUESDAY, 10, 5))
        assert run.taken == [] and run.skipped == {"SPY": NO_OPTION_DATA}
        assert state.level_snapshots("SPY") == []
        assert await level_scorecard(services, state, at(TUESDAY, 16, 30)) is None
        from bot.cli_text import format_levels_history
        from bot.formatting import format_level_scorecard

        assert NO_OPTION_DATA in format_level_scorecard(None, data_source="csv")
        assert NO_OPTION_DATA in format_levels_history("SPY", [], data_source="csv")
    finally:
        await services.close()
        state.close()


def snap(taken_at: datetime, symbol: str = "SPY", zero_gamma: float | None = 601.25) -> LevelsSnapshot:
    return LevelsSnapshot(symbol=symbol, taken_at=taken_at, spot=600.5, call_wall=605.0, put_wall=595.0,
                          zero_gamma=zero_gamma, vanna_support=[Level(598.0, 1.0), Level(596.0, 0.4)],
                          vanna_resistance=[Level(603.0, 0.7)], total_gex=1.5e9, total_vex=-3.2e7,
                          convention="dealers long calls, short puts (call exposure +, put exposure −)",
                          data_source="tradier", strikes=[StrikeNet(600.0, 1e8, -2e6), StrikeNet(605.0, 4e8, 1e6)])


def test_archive_round_trip_months_and_idempotent_merge(blobs):
    archive = SnapshotArchive(blobs)
    items = [snap(at(date(2026, 10, 30), 15, 35)), snap(at(TUESDAY, 9, 35), zero_gamma=None),
             snap(at(TUESDAY, 10, 5)), snap(at(TUESDAY, 10, 5), symbol="IWM")]
    assert archive.merge(items) == 4
    assert blobs.list("levels/") == ["levels/IWM/2026-11.jsonl.gz", "levels/SPY/2026-10.jsonl.gz",
                                     "levels/SPY/2026-11.jsonl.gz"]
    before = blobs.get("levels/SPY/2026-11.jsonl.gz")
    assert archive.merge(items[1:3]) == 0 and blobs.get("levels/SPY/2026-11.jsonl.gz") == before
    lines = gzip.decompress(before).decode().splitlines()
    assert [json.loads(x)["taken_at"] for x in lines] == ["2026-11-24T09:35:00-05:00", "2026-11-24T10:05:00-05:00"]
    back = archive.load("SPY")
    assert [b.to_dict() for b in back] == [i.to_dict() for i in items[:3]]
    assert back[1].zero_gamma is None and back[2].strikes[1] == StrikeNet(605.0, 4e8, 1e6)
    assert [b.taken_at for b in archive.load("SPY", at(TUESDAY, 0, 0), at(TUESDAY, 9, 59))] == [items[1].taken_at]
    assert archive.load("QQQ") == []


def test_levels_history_cli_reads_back(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for key, value in {"MODEL_STORE": str(tmp_path / "models"), "STATE_DIR": str(tmp_path / "state"),
                       "MARKET_DATA": "simulated"}.items():
        monkeypatch.setenv(key, value)
    state = StateDB(tmp_path / "state" / "tradebot.sqlite3")
    for t in (at(date(2026, 11, 23), 15, 35), at(TUESDAY, 9, 35), at(TUESDAY, 10, 5)):
        state.record_level_snapshot(snap(t))
    assert not state.record_level_snapshot(snap(at(TUESDAY, 10, 5)))  # one per symbol and time
    state.close()
    assert main(["levels-history", "spy", "--from", "2026-11-24", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["symbol"] == "SPY" and body["note"] is None
    assert [s["taken_at"] for s in body["snapshots"]] == ["2026-11-24T09:35:00-05:00", "2026-11-24T10:05:00-05:00"]
    assert set(body["snapshots"][0]) >= {"spot", "call_wall", "put_wall", "zero_gamma", "vanna_support",
                                         "vanna_resistance", "total_gex", "total_vex", "strikes", "convention"}
    assert main(["levels-history", "SPY", "--to", "2026-11-23"]) == 0
    text = capsys.readouterr().out
    assert "2026-11-23 15:35 spot 600.50" in text and "2026-11-24" not in text
    assert main(["levels-history", "SPY", "--from", "yesterday"]) == 1
    assert "--from 'yesterday' is not a date" in capsys.readouterr().err


async def test_performance_levels_and_levels_reply_in_chat(tmp_path):
    from bot.commands import CommandLayer
    from bot.reply import Requester

    console = Requester("console", "console", user_id="console")
    settings = base_settings(tmp_path, symbols="SPY")
    clock = FixedClock(at(TUESDAY, 10, 5))
    services = build_services(settings, SimulatedProvider(seed=7, symbols=settings.symbols, clock=clock))
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    layer = CommandLayer(services, state)
    try:
        empty = await layer.handle(console, "/performance levels")
        assert empty.ok and "Last 20 sessions: no sessions with snapshots yet" in empty.text
        for when in snapshot_times(TUESDAY, 30):
            clock.now = when
            await take_snapshots(services, state, when)
        clock.now = at(TUESDAY, 16, 30)
        reply = await layer.handle(console, "/performance LEVELS")
        assert reply.ok and "Last 20 sessions: 1 sessions, 24 Nov – 24 Nov 2026" in reply.text
        for name in ("Call wall", "Put wall", "Zero gamma", "Vanna support", "Vanna resist.", "Round numbers*",
                     "Prior day H/L*"):
            assert sum(line.startswith(name) for line in reply.text.splitlines()) == 2, name
        bad = await layer.handle(console, "/performance nonsense")
        assert not bad.ok and bad.text == "Usage: /performance [levels]"
        clock.now = at(TUESDAY, 10, 5)
        levels = await layer.handle(console, "/levels SPY")
        line = next(x for x in levels.text.splitlines() if x.startswith("If short_calls_short_puts: zero gamma"))
        assert "vanna support" in line and "walls are convention-free" in line
    finally:
        await services.close()
        state.close()


def test_performance_levels_cli_json_and_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for key, value in {"MODEL_STORE": str(tmp_path / "models"), "STATE_DIR": str(tmp_path / "state"),
                       "MARKET_DATA": "simulated"}.items():
        monkeypatch.setenv(key, value)
    assert main(["performance", "--levels", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["data_source"] == "simulated" and body["note"] is None and body["symbols"] == []
    for window in ("last_20_sessions", "all_time"):
        assert body[window]["sessions"] == 0
        assert [k["kind"] for k in body[window]["kinds"]] == [
            "call_wall", "put_wall", "zero_gamma", "vanna_support", "vanna_resistance", "round_number",
            "prior_day_high_low"]
        assert {k["kind"] for k in body[window]["kinds"] if k["baseline"]} == {"round_number", "prior_day_high_low"}
    assert main(["performance", "--levels", "--chart", str(tmp_path / "x.png")]) == 1
    assert "--chart is for the prediction scorecard" in capsys.readouterr().err
