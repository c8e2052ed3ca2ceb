"""A real bot stack for tests: settings in a temp dir, the simulated market on a fixed clock, a model
store trained once per test session (short window, so it is quick), real SQLite state.

`trained_models_dir()` trains once and caches the folder; `make_settings()` points a Settings at a
fresh copy of it so tests never share mutable state.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from config import Settings, load_settings
from core.marketdata.simulated import SimulatedProvider
from core.types import NY

# A regular Tuesday session, mid-morning: the market is open and bars exist up to 10:30.
OPEN_TIME = datetime(2026, 11, 24, 10, 32, 5, tzinfo=NY)
CLOSED_TIME = datetime(2026, 11, 26, 12, 0, tzinfo=NY)  # Thanksgiving
TRAIN_DAYS = 40
_TRAINED: Path | None = None


class FixedClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def base_settings(tmp: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "market_data": "simulated",
        "model_store": str(tmp / "models"),
        "state_dir": tmp / "state",
        "train_days": TRAIN_DAYS,
        "tradier_token": None,
        "telegram_bot_token": None,
        "discord_bot_token": None,
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


def trained_models_dir() -> Path:
    """Train SPY, QQQ and IWM once (per test session) on the simulated market at OPEN_TIME."""
    global _TRAINED
    if _TRAINED is not None and _TRAINED.exists():
        return _TRAINED
    from core.stores import open_store
    from training.pipeline import train_symbols

    root = Path(tempfile.mkdtemp(prefix="tradebot-models-"))
    settings = base_settings(root)
    provider = SimulatedProvider(seed=settings.simulated_seed, symbols=settings.symbols,
                                 clock=FixedClock(OPEN_TIME))
    store, archive = open_store(settings)
    results = asyncio.run(train_symbols(settings, store, archive, provider=provider, progress=lambda m: None))
    assert all(r.published for r in results), [r.reasons for r in results]
    _TRAINED = root / "models"
    return _TRAINED


def make_settings(tmp: Path, **overrides: object) -> Settings:
    """Settings over a private copy of the trained store."""
    shutil.copytree(trained_models_dir(), tmp / "models", dirs_exist_ok=True)
    return base_settings(tmp, **overrides)


def sim_provider(settings: Settings, now: datetime = OPEN_TIME) -> tuple[SimulatedProvider, FixedClock]:
    clock = FixedClock(now)
    return SimulatedProvider(seed=settings.simulated_seed, symbols=settings.symbols, clock=clock), clock
