"""The alert engine on a real bot stack, for the alert tests: the simulated market on a fixed clock
(SCAN_TIME, mid-session), the trained models, real SQLite state, a console adapter and a notifier that
records what Telegram would have been sent."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from bot.alerts import AlertEngine
from bot.commands import CommandLayer
from bot.console import ConsoleAdapter
from bot.reply import Reply
from bot.services import Services, build_services
from bot.state import StateDB
from config import Settings
from core.types import NY
from tests.fakes.bot_stack import FixedClock, sim_provider

SCAN_TIME = datetime(2026, 11, 24, 10, 35, 20, tzinfo=NY)  # 20 s after the 10:35 bar closed
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALLOWED_CHATS = [1, 2, 111, 222]


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Reply]] = []

    async def send(self, chat_id: str, reply: Reply) -> None:
        self.sent.append((chat_id, reply))


class Crash(BaseException):
    """Stands in for the process dying mid-send: nothing after it runs, not even except-Exception."""


class CrashingNotifier:
    async def send(self, chat_id: str, reply: Reply) -> None:
        raise Crash


@dataclass
class AlertStack:
    settings: Settings
    services: Services
    state: StateDB
    layer: CommandLayer
    clock: FixedClock
    telegram: RecordingNotifier
    console_out: io.StringIO
    engine: AlertEngine

    async def close(self) -> None:
        await self.services.close()
        self.state.close()


def open_alert_stack(settings: Settings, clock_time: datetime = SCAN_TIME) -> AlertStack:
    """A stack over `settings`' state file; models not loaded yet."""
    provider, clock = sim_provider(settings, clock_time)
    services = build_services(settings, provider)
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    layer = CommandLayer(services, state)
    out = io.StringIO()
    console = ConsoleAdapter(layer, settings.state_dir / "charts", stdout=out)
    telegram = RecordingNotifier()
    engine = AlertEngine(layer, state, {"telegram": telegram, "console": console})
    return AlertStack(settings, services, state, layer, clock, telegram, out, engine)


@asynccontextmanager
async def running_alert_stack(settings: Settings) -> AsyncIterator[AlertStack]:
    """A stack with its models loaded, closed on the way out (a second one over the same settings is
    the bot after a restart: only the SQLite file carries over)."""
    stack = open_alert_stack(settings)
    try:
        assert (await stack.services.registry.reload()).ok
        yield stack
    finally:
        await stack.close()


async def scan_at(stack: AlertStack, at: datetime):
    stack.clock.now = at  # the provider only has bars up to its own "now"
    return await stack.engine.scan(at)


def record_chart_renders(stack: AlertStack) -> list[dict]:
    """From now on, the keyword arguments of every prediction chart the stack renders (still rendered)."""
    renders: list[dict] = []
    render = stack.services.prediction_png

    async def recording(bundle, **kw):  # type: ignore[no-untyped-def]
        renders.append(kw)
        return await render(bundle, **kw)

    stack.services.prediction_png = recording  # type: ignore[method-assign]
    return renders
