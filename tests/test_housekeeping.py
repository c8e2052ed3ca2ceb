"""Old charts are deleted, recent ones and other files kept; ages are measured from an injected now,
never the machine's clock (file times are set explicitly, so the kernel's clock does not matter)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from bot.app import BotApp
from bot.housekeeping import delete_old_files
from bot.services import build_services
from bot.state import StateDB
from core.types import NY
from tests.fakes.bot_stack import base_settings, sim_provider

NOW = datetime(2026, 11, 24, 5, 30, tzinfo=NY)


def _touch(path, when: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (when.timestamp(), when.timestamp()))


def test_deletes_only_old_pngs(tmp_path):
    old = tmp_path / "alerts" / "SPY_old.png"
    new = tmp_path / "SPY_new.png"
    other = tmp_path / "notes.txt"
    _touch(old, NOW - timedelta(days=8))
    _touch(new, NOW - timedelta(days=1))
    _touch(other, NOW - timedelta(days=8))
    assert delete_old_files(tmp_path, 7, now=NOW.timestamp()) == 1
    assert not old.exists() and new.exists() and other.exists()
    assert delete_old_files(tmp_path / "missing", 7, now=NOW.timestamp()) == 0


async def test_the_bots_housekeeping_measures_ages_on_its_own_clock(tmp_path):
    settings = base_settings(tmp_path, symbols=["SPY"])
    later = datetime(2031, 3, 4, 5, 30, tzinfo=NY)  # far from both the machine's and the pinned clock
    provider, _ = sim_provider(settings, later)
    charts = settings.state_dir / "charts"
    _touch(charts / "alerts" / "SPY_old.png", later - timedelta(days=8))
    _touch(charts / "SPY_new.png", later - timedelta(days=1))
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    app = BotApp(settings, build_services(settings, provider), state)
    try:
        await app.housekeeping()
    finally:
        await app.services.close()
        state.close()
    assert sorted(p.name for p in charts.rglob("*.png")) == ["SPY_new.png"]
