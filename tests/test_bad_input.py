"""Bad input everywhere a user or operator can type: chat commands (property-based with Hypothesis, plus
hand-written nasties), button callback data, CSV imports and configuration values.

The rule each test checks: a clear short answer, no exception, and nothing written for input that
was refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cli import main
from bot.command_specs import COMMANDS
from bot.commands import CommandLayer
from bot.reply import Reply, Requester
from bot.services import build_services
from bot.state import StateDB
from tests.fakes.bot_stack import make_settings, sim_provider
from tests.fakes.outbox import outbox_counts

ALLOWED_CHAT = 8080
MAX_REPLY = 600


class SteppingClock:
    """A monotonic clock that moves 7 s per reading, so the per-chat limit never trips while fuzzing."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 7.0
        return self.t


@dataclass
class Stack:
    loop: asyncio.AbstractEventLoop
    layer: CommandLayer
    state: StateDB

    def handle(self, text: str, who: Requester | None = None) -> Reply:
        who = who or Requester("telegram", str(ALLOWED_CHAT), user_id="1")
        return self.loop.run_until_complete(self.layer.handle(who, text))

    def snapshot(self) -> tuple:
        subs = sorted((s.recipient, s.symbol, s.threshold) for s in self.state.subscriptions())
        return subs, len(self.state.all_predictions()), tuple(sorted(outbox_counts(self.state).items()))


@pytest.fixture(scope="module")
def stack(tmp_path_factory, trained_store) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("bad-input")
    cfg = make_settings(tmp, telegram_allowed_chat_ids=[ALLOWED_CHAT], discord_guild_ids=[77])
    loop = asyncio.new_event_loop()
    provider, _ = sim_provider(cfg)
    services = build_services(cfg, provider)
    loop.run_until_complete(services.registry.reload())
    state = StateDB(cfg.state_dir / "tradebot.sqlite3")
    layer = CommandLayer(services, state, clock=SteppingClock())
    try:
        yield Stack(loop, layer, state)
    finally:
        loop.run_until_complete(services.close())
        state.close()
        loop.close()


def check_reply(stack: Stack, text: str, who: Requester | None = None) -> Reply:
    before = stack.snapshot()
    reply = stack.handle(text, who)
    assert isinstance(reply, Reply)
    if not reply.ok:
        assert 0 < len(reply.text) < MAX_REPLY, reply.text
        assert "\n" not in reply.text.strip(), reply.text
        assert stack.snapshot() == before, f"refused {text[:80]!r} but state changed"
    return reply


# ---------------------------------------------------------------- commands, property-based

NAMES = [f"/{c.name}" for c in COMMANDS] + ["/bogus", "/", "predict", "//predict", "/PREDICT", "/予測"]
SUFFIXES = ["", "@fake_test_bot", "@other_bot", "@", "@@x", "@" + "b" * 300]
META = ["<b>x</b>", "<script>alert(1)</script>", "&amp;", "*bold*", "_it_", "`code`", "[x](http://e.vil)",
        "||spoiler||", "~strike~", "\\", "\x00", "\x1b[31m", "\u202e", "\ufeff", "\r\n", "\t", "🙂", "ß"]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), suffix=st.sampled_from(SUFFIXES),
       args=st.lists(st.one_of(st.text(max_size=40), st.sampled_from(META),
                               st.from_regex(r"[A-Za-z0-9.\-]{1,14}", fullmatch=True)), max_size=4),
       sep=st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", ""]))
def test_any_command_text_gets_a_short_reply_and_refusals_write_nothing(stack, name, suffix, args, sep):
    check_reply(stack, name + suffix + sep + sep.join(args))


@settings(max_examples=120, deadline=None)
@given(text=st.text(max_size=400))
def test_any_text_at_all_gets_a_short_reply(stack, text):
    check_reply(stack, text)


@pytest.mark.parametrize("text", [
    "/predict " + "A" * 10_000,
    "/subscribe " + "x" * 10_000,
    "/" + "p" * 10_000,
    "x" * 10_000,
    "/log " + "9" * 5000,
    "/subscribe SPY 1e400",
    "/subscribe SPY nan",
    "/subscribe SPY -0",
    "/subscribe SPY 100.0000001",
    "/subscribe all inf",
    "/log 0",
    "/log -1",
    "/log 51",
    "/predict SPY QQQ",
    "/predict ../../etc/passwd",
    "/predict SPY\x00",
    "/predict <b>SPY</b>",
    "/levels DIA",
    "/unsubscribe DIA",
    "/reload",  # a non-admin chat
    "/predict@other_bot SPY",
    "",
    "   ",
    "/",
    "\x00\x01\x02",
])
def test_hand_written_nasties(stack, text):
    reply = check_reply(stack, text)
    assert "Traceback" not in reply.text and "Sorry" not in reply.text


def test_valid_commands_still_work_with_a_botname_suffix(stack):
    reply = check_reply(stack, "/subscribe@fake_test_bot spy 75")
    assert reply.ok
    assert ("telegram:8080", "SPY", 75.0) in stack.snapshot()[0]
    assert check_reply(stack, "/unsubscribe@fake_test_bot all").ok


# ---------------------------------------------------------------- button callback data

@pytest.mark.parametrize("data", [
    "/predict DIA",  # a stale button: DIA was dropped from SYMBOLS since it was drawn
    "/subscribe SPY 101",  # forged: a threshold no button ever carries
    "/reload",  # forged: an admin command from a user's chat
    "/subscribe SPY 80 extra",
    "x" * 64,
    "/predict\u0000SPY",
    "/levels SPY;rm -rf /",
])
def test_stale_or_forged_button_data_is_refused_and_writes_nothing(stack, data):
    reply = check_reply(stack, data)
    assert not reply.ok


def test_button_from_a_chat_that_is_not_allowed_writes_nothing(stack):
    stranger = Requester("telegram", "99999", user_id="5")
    reply = check_reply(stack, "/subscribe SPY 50", stranger)
    assert not reply.ok and "not allowed" in reply.text


# ---------------------------------------------------------------- CSV import (`tradebot import-bars`)

@pytest.fixture
def cli_env(tmp_path, monkeypatch, trained_store) -> Path:
    make_settings(tmp_path)
    monkeypatch.chdir(tmp_path)
    for key, value in {"MODEL_STORE": str(tmp_path / "models"), "STATE_DIR": str(tmp_path / "state"),
                       "MARKET_DATA": "simulated", "TRAIN_DAYS": "25"}.items():
        monkeypatch.setenv(key, value)
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield tmp_path
    root.handlers[:] = saved
    root.setLevel(level)


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def csv_text(*rows: str, header: str = "time,open,high,low,close,volume") -> str:
    return "\n".join([header, *rows]) + "\n"


GOOD = ["2026-11-23 09:30,100,101,99.5,100.5,1000", "2026-11-23 09:35,100.5,101.2,100.1,101,1200",
        "2026-11-23 09:40,101,101.5,100.7,101.1,900"]
BAD_CSVS = {
    "wrong columns": (csv_text(*GOOD, header="when,o,h,l,c,v"), "missing column"),
    "missing volume": (csv_text("2026-11-23 09:30,100,101,99.5,100.5", header="time,open,high,low,close"),
                       "volume"),
    "text in prices": (csv_text(GOOD[0], "2026-11-23 09:35,abc,101.2,100.1,101,1200"), "line 3"),
    "bad time": (csv_text(GOOD[0], "yesterday,100.5,101.2,100.1,101,1200"), "line 3"),
    "unsorted": (csv_text(GOOD[1], GOOD[0], GOOD[2]), "line 3"),
    "duplicated": (csv_text(GOOD[0], GOOD[0], GOOD[1]), "line 3"),
    "negative volume": (csv_text(GOOD[0], "2026-11-23 09:35,100.5,101.2,100.1,101,-5"), "negative"),
    "binary junk": ("\x00\xff\xfe" * 100, ""),
    "empty": ("", "empty"),
}


@pytest.mark.parametrize("case", list(BAD_CSVS))
def test_bad_csv_import_is_one_line_exit_1_and_archive_unchanged(cli_env, capsys, case):
    body, needle = BAD_CSVS[case]
    path = cli_env / "SPY.csv"
    path.write_bytes(body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body)
    before = tree(cli_env / "models")
    assert main(["import-bars", str(path), "--symbol", "SPY"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert needle in err and len(err) < 400, err
    assert tree(cli_env / "models") == before


def test_2gb_file_is_refused_by_size_before_reading(cli_env, capsys, monkeypatch):
    path = cli_env / "huge.csv"
    with open(path, "wb") as fh:
        fh.truncate(2 * 1024**3)  # sparse: costs no disk
    opened: list[str] = []
    real_open = open

    def spying_open(file, *a, **kw):  # type: ignore[no-untyped-def]
        opened.append(str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr("builtins.open", spying_open)
    before = tree(cli_env / "models")
    assert main(["import-bars", str(path), "--symbol", "SPY"]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "huge.csv" in err and "bytes" in err and "limit" in err, err
    assert str(path) not in opened  # never read, only stat-ed
    assert tree(cli_env / "models") == before
    assert os.stat(path).st_blocks == 0


# ---------------------------------------------------------------- configuration values

@pytest.mark.parametrize("var, value", [
    ("STATE_DIR", ""),
    ("MODEL_STORE", "  "),
    ("SYMBOLS", ""),
    ("TRAIN_DAYS", "-30"),
    ("HORIZON_BARS", "twelve"),
    ("ALERT_THRESHOLD", "-1"),
    ("ALERT_THRESHOLD", "NaN"),
    ("TARGET_ATR", "inf"),
    ("STOP_ATR", "-inf"),
    ("ALERT_COOLDOWN_MINUTES", "1.5"),
    ("COMMAND_RATE_PER_MINUTE", "0"),
    ("TRADIER_REQUESTS_PER_MINUTE", "-110"),
    ("RELOAD_AT", "6pm"),
    ("TELEGRAM_ALLOWED_CHAT_IDS", "123;456"),
    ("TELEGRAM_ADMIN_CHAT_IDS", "me"),
    ("DISCORD_GUILD_IDS", "guild"),
    ("S3_ENDPOINT_URL", "minio:9000"),
    ("TELEGRAM_API_BASE_URL", "api.telegram.org"),
    ("DISCORD_GATEWAY_URL", "gateway"),
    ("TRADIER_BASE_URL", "api.tradier.com"),
    ("LOG_LEVEL", "verbose"),
    ("TIMEFRAME", "5m"),
    ("KEEP_VERSIONS", "0"),
])
def test_bad_configuration_exits_2_with_one_line_naming_the_variable(cli_env, monkeypatch, capsys, var, value):
    monkeypatch.setenv(var, value)
    before = tree(cli_env)
    assert main(["models"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("config error: ") and var in err and len(err) < 300, err
    assert tree(cli_env) == before
