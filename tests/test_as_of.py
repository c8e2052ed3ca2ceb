"""What-if times (`scan --once --at`): a prediction as of T uses only bars closed by T, and the
outbox expires alerts by the market's clock, never by T (issue 9, items 6 and 7)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from bot.alerts import AlertEngine
from bot.commands import CommandLayer
from bot.reply import Reply
from bot.services import Services, build_services
from bot.state import StateDB
from core.types import NY
from tests.fakes.bot_stack import FixedClock, make_settings, sim_provider
from tests.fakes.outbox import outbox_counts

TODAY = datetime(2026, 11, 24, 10, 35, 20, tzinfo=NY)  # a Tuesday session


class Recording:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, chat_id: str, reply: Reply) -> None:
        self.sent.append(chat_id)


@dataclass
class Stack:
    services: Services
    state: StateDB
    clock: FixedClock
    engine: AlertEngine
    telegram: Recording


@pytest.fixture
async def stack(tmp_path, trained_store, monkeypatch) -> AsyncIterator[Stack]:
    # what is tested is which bar is used, not speed: a loaded machine must not turn it into a timeout
    monkeypatch.setattr("bot.commands.PREDICT_TIMEOUT_SECONDS", 600.0)
    settings = make_settings(tmp_path, telegram_allowed_chat_ids="1,111")
    provider, clock = sim_provider(settings, TODAY)
    services = build_services(settings, provider)
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    telegram = Recording()
    engine = AlertEngine(CommandLayer(services, state), state, {"telegram": telegram})
    assert (await services.registry.reload()).ok
    yield Stack(services, state, clock, engine, telegram)
    await services.close()
    state.close()


async def test_prediction_as_of_t_uses_only_bars_closed_by_t(stack: Stack) -> None:
    # The market's clock is at 10:35:20, so the provider holds the 10:30 bar (closed 10:35).
    at = datetime(2026, 11, 24, 10, 30, 0, tzinfo=NY)
    bundle = await stack.services.predictor.predict("SPY", now=at, with_levels=False)
    assert bundle.prediction.as_of <= at
    assert bundle.prediction.as_of == datetime(2026, 11, 24, 10, 30, tzinfo=NY)  # the 10:25 bar
    assert bundle.bars.index[-1] == datetime(2026, 11, 24, 10, 25, tzinfo=NY)


async def test_scan_at_the_open_never_alerts_on_the_bar_still_forming(stack: Stack) -> None:
    stack.state.subscribe("telegram:111", "SPY", 0)
    at = datetime(2026, 11, 24, 9, 30, 0, tzinfo=NY)  # the 09:30 bar closes at 09:35
    result = await stack.engine.scan(at)
    assert result.market_open and result.sent == []
    assert [x["reason"] for x in result.skipped] == ["no bar closed yet this session"]
    assert stack.telegram.sent == []


async def test_a_what_if_scan_dated_tomorrow_does_not_expire_todays_alerts(stack: Stack) -> None:
    stack.state.record_alert("SPY|long|2026-11-24|10:30", "telegram:1", "SPY", "long", TODAY.date(), 90.0,
                             {"title": "t", "text": "x"}, TODAY)
    tomorrow = TODAY + timedelta(days=1)
    result = await stack.engine.scan(tomorrow)
    assert result.market_open
    assert outbox_counts(stack.state).get("dead", 0) == 0
    assert stack.telegram.sent == ["1"]  # still today by the market's clock: delivered, not expired
