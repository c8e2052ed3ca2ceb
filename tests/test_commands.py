"""The command layer, for real: the simulated market on a fixed clock, the trained model store, real
SQLite state. Every command, every bad argument, the allow-lists, admin rights and the rate limit."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from bot.app import BotApp
from bot.commands import CommandLayer
from bot.formatting import SIMULATED_BANNER
from bot.reply import Requester
from bot.scheduler import build_scheduler
from bot.services import Services, build_services
from bot.state import StateDB
from config import Settings
from core.types import NY
from tests.fakes.bot_stack import CLOSED_TIME, OPEN_TIME, FixedClock, make_settings, sim_provider

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONSOLE = Requester("console", "console", user_id="console")
MEMBER = Requester("telegram", "111", user_id="111")  # allowed, not admin
ADMIN = Requester("telegram", "222", user_id="222")
STRANGER = Requester("telegram", "999", user_id="999")


class MinuteClock:
    """A monotonic clock the rate-limit test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Stack:
    settings: Settings
    services: Services
    state: StateDB
    layer: CommandLayer
    clock: FixedClock
    tick: MinuteClock


@pytest.fixture
def settings(tmp_path, trained_store) -> Settings:
    return make_settings(tmp_path, telegram_allowed_chat_ids=[111], telegram_admin_chat_ids=[222])


@pytest.fixture
async def stack(settings):
    provider, clock = sim_provider(settings, OPEN_TIME)
    services = build_services(settings, provider)
    report = await services.registry.reload()
    assert report.ok and not report.missing, report
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    tick = MinuteClock()
    layer = CommandLayer(services, state, clock=tick)
    yield Stack(settings, services, state, layer, clock, tick)
    await services.close()
    state.close()


# ---------------------------------------------------------------- help and start

@pytest.mark.parametrize("command", ["/start", "/help"])
async def test_start_and_help_explain_and_disclaim(stack, command):
    reply = await stack.layer.handle(CONSOLE, command)
    assert reply.ok and reply.image is None
    assert "not financial advice" in reply.text.lower()
    assert "SIMULATED" in reply.text
    for name in ("predict", "levels", "subscribe", "unsubscribe", "status", "performance", "log", "reload"):
        assert f"/{name}" in reply.text
    for symbol in stack.settings.symbols:
        assert symbol in reply.text


# ---------------------------------------------------------------- predict

async def test_predict_has_chart_every_field_and_is_logged(stack):
    reply = await stack.layer.handle(MEMBER, "/predict QQQ")
    assert reply.ok, reply.text
    assert reply.image is not None and reply.image.startswith(PNG_MAGIC) and len(reply.image) > 5000
    model = stack.services.registry.get("QQQ")
    text = reply.text
    assert re.search(r"Trade quality: \d+/100 · direction (LONG|SHORT)", text)
    assert re.search(r"Win probability: \d+%", text)
    assert re.search(r"high \d+\.\d\d / low \d+\.\d\d", text)
    assert re.search(r"Target \d+\.\d\d · stop \d+\.\d\d", text)
    assert "Vanna support:" in text and "Vanna resistance:" in text
    assert f"Model {model.version}" in text
    assert "SIMULATED" in text
    assert reply.title.startswith("QQQ ") and "score" in reply.title
    assert [b.data for b in reply.buttons] == ["refresh:QQQ", "/levels QQQ", "/subscribe QQQ"]

    [row] = stack.state.recent_predictions(5)
    assert (row.symbol, row.model_version, row.source, row.requested_by) == ("QQQ", model.version, "command",
                                                                              "telegram:111")
    assert row.as_of == datetime(2026, 11, 24, 10, 30, tzinfo=NY)  # last CLOSED bar at 10:32:05
    assert row.horizon_end == row.as_of + timedelta(minutes=stack.settings.horizon_bars * 5)
    assert f"{row.quality_score:.0f}/100" in text
    assert f"Win probability: {100 * row.win_probability:.0f}%" in text
    assert f"direction {row.direction.upper()}" in text


async def test_predict_defaults_to_first_symbol_and_accepts_lower_case(stack):
    default = await stack.layer.handle(CONSOLE, "/predict")
    lower = await stack.layer.handle(CONSOLE, "/predict spy")
    assert default.ok and lower.ok
    assert default.title.startswith("SPY ") and lower.title.startswith("SPY ")
    assert [r.symbol for r in stack.state.recent_predictions(5)] == ["SPY", "SPY"]


async def test_predict_when_market_closed_carries_a_warning(stack):
    stack.clock.now = CLOSED_TIME
    reply = await stack.layer.handle(CONSOLE, "/predict SPY")
    assert reply.ok, reply.text
    assert ("⚠ market closed: last in-session prediction, made Wed 25 Nov 15:55 ET; its band ends at the close"
            in reply.text)


async def test_predict_unknown_symbol_is_one_line_listing_symbols(stack):
    for command in ("/predict TSLA", "/levels tsla", "/subscribe TSLA", "/unsubscribe TSLA"):
        reply = await stack.layer.handle(CONSOLE, command)
        assert not reply.ok and reply.image is None
        assert "\n" not in reply.text and len(reply.text) < 120
        assert "TSLA" in reply.text.upper() and "SPY, QQQ, IWM" in reply.text
    assert stack.state.recent_predictions(5) == []
    assert stack.state.subscriptions() == []


# ---------------------------------------------------------------- levels

async def test_levels_has_chart_and_walls(stack):
    reply = await stack.layer.handle(MEMBER, "/levels IWM")
    assert reply.ok, reply.text
    assert reply.image is not None and reply.image.startswith(PNG_MAGIC)
    assert reply.title == "IWM options levels"
    for part in ("Call wall", "put wall", "zero gamma", "Vanna support:", "Vanna resistance:", "Expirations:",
                 "SIMULATED"):
        assert part in reply.text
    assert [b.data for b in reply.buttons] == ["/predict IWM"]
    assert stack.state.recent_predictions(5) == []  # levels are not predictions


# ---------------------------------------------------------------- subscribe / unsubscribe

async def test_subscribe_defaults_to_alert_threshold(stack):
    reply = await stack.layer.handle(MEMBER, "/subscribe SPY")
    assert reply.ok and "SPY" in reply.text and "80" in reply.text
    [sub] = stack.state.subscriptions("telegram:111")
    assert (sub.symbol, sub.threshold) == ("SPY", stack.settings.alert_threshold)


async def test_subscribe_all_with_threshold_and_resubscribe_updates(stack):
    reply = await stack.layer.handle(MEMBER, "/subscribe all 65.5")
    assert reply.ok and "65.5" in reply.text
    subs = stack.state.subscriptions("telegram:111")
    assert sorted((s.symbol, s.threshold) for s in subs) == [("IWM", 65.5), ("QQQ", 65.5), ("SPY", 65.5)]
    await stack.layer.handle(MEMBER, "/subscribe qqq 0")
    await stack.layer.handle(MEMBER, "/subscribe IWM 100")
    got = {s.symbol: s.threshold for s in stack.state.subscriptions("telegram:111")}
    assert got == {"SPY": 65.5, "QQQ": 0.0, "IWM": 100.0}
    assert stack.state.subscriptions("telegram:222") == []  # per chat


@pytest.mark.parametrize("threshold", ["101", "-1", "abc", "nan", "inf", "1e9", "100.01"])
async def test_subscribe_bad_threshold_changes_nothing(stack, threshold):
    await stack.layer.handle(MEMBER, "/subscribe SPY 70")
    reply = await stack.layer.handle(MEMBER, f"/subscribe QQQ {threshold}")
    assert not reply.ok
    assert "0 to 100" in reply.text or reply.text.startswith("Usage:")
    assert [(s.symbol, s.threshold) for s in stack.state.subscriptions("telegram:111")] == [("SPY", 70.0)]


async def test_unsubscribe_one_and_all(stack):
    await stack.layer.handle(MEMBER, "/subscribe all 50")
    await stack.layer.handle(ADMIN, "/subscribe SPY 50")
    one = await stack.layer.handle(MEMBER, "/unsubscribe qqq")
    assert one.ok and "QQQ" in one.text and "1 subscription removed" in one.text
    assert sorted(s.symbol for s in stack.state.subscriptions("telegram:111")) == ["IWM", "SPY"]
    rest = await stack.layer.handle(MEMBER, "/unsubscribe")
    assert rest.ok and "2 subscriptions removed" in rest.text
    assert stack.state.subscriptions("telegram:111") == []
    again = await stack.layer.handle(MEMBER, "/unsubscribe all")
    assert again.ok and "0 subscriptions removed" in again.text
    assert [s.recipient for s in stack.state.subscriptions()] == ["telegram:222"]  # other chats untouched


# ---------------------------------------------------------------- status

async def test_status_lists_models_source_market_jobs_and_subscriptions(stack):
    app = BotApp(stack.settings, stack.services, stack.state)
    app.scheduler = build_scheduler(app)
    app.scheduler.start()
    try:
        await app.layer.handle(MEMBER, "/subscribe IWM 72")
        reply = await app.layer.handle(MEMBER, "/status")
    finally:
        app.scheduler.shutdown(wait=False)
    assert reply.ok, reply.text
    text = reply.text
    for symbol, model in stack.services.registry.all().items():
        window = model.manifest["data_window"]
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{symbol}: model {model.version}"))
        assert f"trained {model.manifest['trained_at']}" in line
        assert f"{window['sessions']} sessions {window['start'][:10]}..{window['end'][:10]}" in line
        metrics = text.splitlines()[text.splitlines().index(line) + 1]
        # every figure with its uncertainty or its baseline
        assert re.search(r"trade_quality AUC 0\.\d{3} \[0\.\d{3}–0\.\d{3}\] Brier 0\.\d{3}", metrics), metrics
        assert re.search(r"direction AUC 0\.\d{3} \[0\.\d{3}–0\.\d{3}\]", metrics), metrics
        for regressor in ("future_high", "future_low"):
            assert re.search(rf"{regressor} MAE/naive \d+\.\d\d, /volatility rule \d+\.\d\d", metrics), metrics
    assert "Data source: simulated" in text
    assert "Market: OPEN until 16:00 ET · next session opens Wed 25 Nov 09:30 ET" in text
    jobs = [ln for ln in text.splitlines() if ln.startswith("Job: ")]
    assert len(jobs) == 9 and any("alert scan" in j for j in jobs) and all(" next " in j for j in jobs)
    assert any(j.startswith("Job: options-levels snapshot every 30 min") for j in jobs)
    assert "· Score alerts, on: IWM ≥72" in text


async def test_status_when_closed_names_next_session_and_no_subscriptions(stack):
    stack.clock.now = CLOSED_TIME
    reply = await stack.layer.handle(ADMIN, "/status")
    assert "Market: closed · next session opens Fri 27 Nov 09:30 ET" in reply.text
    assert reply.text.splitlines()[-4:] == [
        "This chat receives (change with /settings):",
        "· Score alerts, on: no subscriptions (/subscribe SYMBOL [THRESHOLD])",
        "· Level alerts, on: no subscriptions (/subscribe SYMBOL levels)",
        "· Digests, on: not subscribed (/subscribe digest)",
    ]


async def test_status_lists_this_chats_subscriptions_and_settings_and_no_other_chats(stack):
    for command in ("/subscribe IWM 72", "/subscribe SPY 80", "/subscribe SPY levels", "/subscribe digest",
                    "/settings level silent", "/settings digest off"):
        assert (await stack.layer.handle(MEMBER, command)).ok, command
    # another chat's subscriptions and settings, which MEMBER's /status must not show
    for command in ("/subscribe QQQ 55", "/subscribe all levels", "/settings score off"):
        assert (await stack.layer.handle(ADMIN, command)).ok, command

    member = (await stack.layer.handle(MEMBER, "/status")).text.splitlines()
    assert member[-4:] == [
        "This chat receives (change with /settings):",
        "· Score alerts, on: IWM ≥72, SPY ≥80",
        "· Level alerts, silent (no notification sound): SPY",
        "· Digests, off (nothing is sent): pre-open brief and close recap",
    ]
    other = (await stack.layer.handle(ADMIN, "/status")).text
    assert "· Score alerts, off (nothing is sent): QQQ ≥55" in other and "· Level alerts, on: all symbols" in other
    assert "IWM ≥72" not in other and "SPY" not in other.split("This chat receives")[1]
    assert "QQQ" not in "\n".join(member[-4:]) and "Digests, on: not subscribed" in other


# ---------------------------------------------------------------- performance and log

def _scored(state: StateDB, n: int, win_every: int) -> None:
    start = datetime(2026, 11, 23, 10, 0, tzinfo=NY)
    for i in range(n):
        as_of = start + timedelta(minutes=5 * i)
        pred = {"symbol": "SPY", "as_of": as_of, "price": 600.0, "vix": 18.0, "direction": "long",
                "quality_score": 85.0, "win_probability": 0.62, "predicted_high": 601.0, "predicted_low": 599.0,
                "target": 601.5, "stop": 599.0, "model_version": "v-test", "data_source": "simulated"}
        pid = state.log_prediction(pred, "command", "telegram:111", horizon_end=as_of + timedelta(hours=1))
        win = i % win_every == 0
        state.record_outcome(pid, 601.6 if win else 600.2, 599.5 if win else 598.9, "target" if win else "stop",
                             1.5 if win else -1.0, as_of + timedelta(hours=2), bars=12)


async def test_performance_empty(stack):
    reply = await stack.layer.handle(MEMBER, "/performance")
    assert reply.ok and reply.image is None
    assert "no prediction has been scored yet" in reply.text


async def test_performance_with_scored_predictions(stack):
    _scored(stack.state, 12, win_every=3)  # 4 wins of 12
    reply = await stack.layer.handle(MEMBER, "/performance")
    assert reply.ok, reply.text
    assert reply.image is not None and reply.image.startswith(PNG_MAGIC)
    assert "no prediction has been scored yet" not in reply.text
    assert "33%" in reply.text  # the hit rate 4/12
    assert reply.text.startswith(SIMULATED_BANNER)  # the logged predictions were made on simulated data


async def test_log_default_n_and_bounds(stack):
    empty = await stack.layer.handle(MEMBER, "/log")
    assert empty.ok and empty.text == "No predictions logged yet."
    _scored(stack.state, 12, win_every=3)
    default = await stack.layer.handle(MEMBER, "/log")
    banner, *lines = default.text.splitlines()
    assert default.title == "Last 10 predictions" and banner == SIMULATED_BANNER and len(lines) == 10
    three = await stack.layer.handle(MEMBER, "/log 3")
    banner, *lines = three.text.splitlines()
    assert len(lines) == 3 and lines[0].startswith("2026-11-23 10:55 SPY LONG score 85 win 62%")
    assert lines[0].endswith("stop -1.00R") and lines[2].endswith("target +1.50R")
    assert (await stack.layer.handle(MEMBER, "/log 50")).ok
    for bad in ("0", "51", "abc", "-3", "2.5", "1000"):
        reply = await stack.layer.handle(MEMBER, f"/log {bad}")
        assert not reply.ok and reply.text == "Usage: /log [N] with N from 1 to 50", bad


# ---------------------------------------------------------------- reload and admin rights

async def test_reload_is_admin_only(stack):
    refused = await stack.layer.handle(MEMBER, "/reload")
    assert not refused.ok and refused.text == "/reload is for admins only."
    calls = []
    layer = CommandLayer(stack.services, stack.state, reload_models=lambda: calls.append(1))
    done = await layer.handle(ADMIN, "/reload")
    assert done.ok and calls == [1]
    for symbol, model in stack.services.registry.all().items():
        assert f"{symbol} {model.version}" in done.text
    assert (await layer.handle(CONSOLE, "/reload")).ok  # the console operator is the admin


# ---------------------------------------------------------------- access, parsing, failures

async def test_not_allowed_chat_is_told_its_id_and_nothing_runs(stack):
    for command in ("/predict SPY", "/subscribe SPY", "/help", "/nonsense"):
        reply = await stack.layer.handle(STRANGER, command)
        assert not reply.ok
        assert reply.text == "This chat (id 999) is not allowed. Add 999 to TELEGRAM_ALLOWED_CHAT_IDS."
    assert stack.state.recent_predictions(5) == [] and stack.state.subscriptions() == []


@pytest.mark.parametrize("text, expected", [
    ("/frobnicate", "Unknown command /frobnicate. Try /help."),
    ("/PrEdIcT@tradebot_bot spy extra", "Usage: /predict [symbol]"),
    ("/predict $PY", "Usage: /predict [symbol]"),
    ("/subscribe SPY 50 60", "Usage: /subscribe [symbol] [threshold|levels]"),
    ("/log 1 2", "Usage: /log [n]"),
    ("hello", "Commands start with /. Try /help."),
    ("", "Commands start with /. Try /help."),
    ("/predict " + "S" * 400, "That command is too long. Try /help."),
    ("/<script>", "Unknown command /script. Try /help."),
])
async def test_malformed_commands_get_a_usage_line(stack, text, expected):
    reply = await stack.layer.handle(MEMBER, text)
    assert not reply.ok and reply.text == expected
    assert stack.state.recent_predictions(5) == []


async def test_botname_suffix_is_ignored(stack):
    reply = await stack.layer.handle(MEMBER, "/predict@Some_Bot iwm")
    assert reply.ok and reply.title.startswith("IWM ")
    status = await stack.layer.handle(MEMBER, "/status@Some_Bot")
    assert status.ok and status.title == "tradebot status"


async def test_a_raising_handler_apologises_logs_and_the_layer_carries_on(stack, caplog, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("feature matrix went sideways")

    monkeypatch.setattr(stack.services.predictor, "predict", broken)
    with caplog.at_level(logging.ERROR, logger="bot.commands"):
        reply = await stack.layer.handle(MEMBER, "/predict SPY")
    assert not reply.ok
    assert reply.text == "Sorry, /predict failed inside the bot; the cause is logged."
    assert "feature matrix went sideways" not in reply.text
    [record] = [r for r in caplog.records if r.name == "bot.commands"]
    assert record.getMessage() == "/predict failed"
    assert "RuntimeError: feature matrix went sideways" in caplog.text  # the traceback is in the log
    monkeypatch.undo()
    assert (await stack.layer.handle(MEMBER, "/predict SPY")).ok


async def test_rate_limit_eleventh_command_in_a_minute_is_refused(stack):
    for _ in range(10):
        assert (await stack.layer.handle(MEMBER, "/help")).ok
    stack.tick.t += 20
    refused = await stack.layer.handle(MEMBER, "/predict SPY")
    assert not refused.ok
    assert refused.text == "Too many requests from this chat: try again in 40 s."
    assert stack.state.recent_predictions(5) == []
    assert (await stack.layer.handle(ADMIN, "/help")).ok  # another chat has its own budget
    assert (await stack.layer.handle(CONSOLE, "/help")).ok  # the local console is never limited
    stack.tick.t += 40
    assert (await stack.layer.handle(MEMBER, "/help")).ok
