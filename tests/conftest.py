"""Shared fixtures. Every test runs with chat/market tokens removed from the environment, so a
developer's real `.env` or shell can never make a test talk to Telegram, Discord or Tradier."""

from __future__ import annotations

import logging
import os

import pytest

from core import clock as wall
from tests.fakes.bot_stack import OPEN_TIME, FixedClock

os.environ.setdefault("MPLBACKEND", "Agg")

_SCRUB = ("TRADIER_", "TELEGRAM_", "DISCORD_", "MARKET_DATA", "MODEL_STORE", "S3_ENDPOINT_URL", "STATE_DIR",
          "SYMBOLS", "TIMEFRAME", "TRAIN_DAYS", "HORIZON_BARS", "ALERT_")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith(_SCRUB):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(autouse=True)
def pinned_now(monkeypatch) -> FixedClock:
    """Every default clock in the code (`core.clock.wall_clock`) reads this, never the machine's, so
    no test depends on the hour, TZ or weekday it runs at. The default is a Tuesday mid-session; a test
    that cares about the time of day names its moment: `pinned_now.now = datetime(..., tzinfo=NY)`."""
    pinned = FixedClock(OPEN_TIME)
    monkeypatch.setattr(wall, "_source", pinned)
    return pinned


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


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    """One blob store per run: a local folder, then S3 through moto (the module imports `s3_endpoint`)."""
    from core.store import LocalBlobStore, open_blob_store
    from tests.fakes.s3_server import make_bucket

    if request.param == "local":
        yield LocalBlobStore(tmp_path / "store")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        yield open_blob_store(f"s3://{make_bucket(endpoint)}/prod", endpoint)
