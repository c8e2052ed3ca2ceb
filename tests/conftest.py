"""Shared fixtures. Every test runs with chat/market tokens removed from the environment, so a
developer's real `.env` or shell can never make a test talk to Telegram, Discord or Tradier."""

from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

_SCRUB = ("TRADIER_", "TELEGRAM_", "DISCORD_", "MARKET_DATA", "MODEL_STORE", "S3_ENDPOINT_URL", "STATE_DIR",
          "SYMBOLS", "TIMEFRAME", "TRAIN_DAYS", "HORIZON_BARS", "ALERT_")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith(_SCRUB):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(autouse=True)
def _restore_logging():
    """`tradebot` entry points install their own root handler; put pytest's capture back after."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    root.handlers[:] = saved
    root.setLevel(level)


@pytest.fixture(scope="session")
def trained_store():
    from tests.fakes.bot_stack import trained_models_dir

    return trained_models_dir()


@pytest.fixture
def bot_settings(tmp_path, trained_store):
    from tests.fakes.bot_stack import make_settings

    return make_settings(tmp_path)
