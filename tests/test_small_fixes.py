"""Small defects from issue 9: a console line that is not UTF-8, "-0" thresholds, control characters
after a command name, log times without a zone, and a shutdown that cancels a running job."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from types import SimpleNamespace

import pytest

from bot.commands import ArgumentError, parse_command, parse_threshold
from bot.console import ConsoleAdapter
from bot.logs import setup_logging
from bot.reply import Reply
from bot.scheduler import build_scheduler
from tests.fakes.bot_stack import base_settings


class EchoLayer:
    async def handle(self, who, text: str) -> Reply:  # type: ignore[no-untyped-def]
        return Reply(f"ran {text}")


async def test_one_invalid_utf8_line_is_answered_and_the_console_keeps_going(tmp_path):
    stdin = io.TextIOWrapper(io.BytesIO(b"/help\n/predict \xff\xfeSPY\n/status\n"), encoding="utf-8")
    out = io.StringIO()
    await asyncio.wait_for(ConsoleAdapter(EchoLayer(), tmp_path, stdin=stdin, stdout=out).run(), 5)
    lines = out.getvalue().splitlines()
    assert lines[1:] == ["ran /help", "That line is not valid UTF-8 text; it was ignored.", "ran /status"]


def test_minus_zero_threshold_is_zero():
    value = parse_threshold("-0")
    assert value == 0 and f"{value:g}" == "0"


@pytest.mark.parametrize("text", ["/help\x00", "/help\x07", "/predict\x00SPY", "/predict SPY\x1b[31m"])
def test_control_characters_are_named_not_an_unknown_command(text):
    with pytest.raises(ArgumentError) as info:
        parse_command(text)
    assert str(info.value) == "Commands cannot contain control characters. Try /help."


def test_tabs_and_line_ends_are_spaces():
    spec, args = parse_command("/predict\tSPY\r\n")
    assert spec.name == "predict" and args == ["SPY"]


def test_log_lines_carry_their_zone(tmp_path):
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        setup_logging(base_settings(tmp_path), stream)
        logging.getLogger("tradebot.test").warning("hello")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} WARNING tradebot.test: hello", stream.getvalue())


async def test_shutdown_during_a_scan_logs_no_error(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    started = asyncio.Event()

    async def slow_scan() -> None:
        started.set()
        await asyncio.sleep(60)

    async def idle() -> None:
        return None

    app = SimpleNamespace(settings=base_settings(tmp_path), scheduled_scan=slow_scan, reload_models=idle,
                          poll_store=idle, snapshot_levels=idle, send_open_digest=idle, send_close_digest=idle, score_outcomes=idle, retry_outbox=idle, housekeeping=idle,
                          train_in_worker=idle)
    sched = build_scheduler(app)  # type: ignore[arg-type]
    sched.start()
    try:
        sched.add_job(sched.get_job("scan").func, id="scan-now")  # the scan job's own callable, due now
        await asyncio.wait_for(started.wait(), 5)
    finally:
        sched.shutdown(wait=False)  # what BotApp.shutdown does on SIGTERM
    await asyncio.sleep(0.1)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "interrupted by shutdown" in caplog.text
