"""TRAIN_IN_PROCESS: the daily training runs in a separate process, then the bot reloads what it published."""

from __future__ import annotations

from bot.app import BotApp
from bot.services import build_services
from bot.state import StateDB
from tests.fakes.bot_stack import base_settings, sim_provider


async def test_training_in_a_worker_process_publishes_and_reloads(tmp_path, monkeypatch):
    # The worker process reads its settings from the environment, like the bot's own process.
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "models"))
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SYMBOLS", "SPY")
    monkeypatch.setenv("TRAIN_DAYS", "25")
    monkeypatch.setenv("MARKET_DATA", "simulated")
    monkeypatch.chdir(tmp_path)
    settings = base_settings(tmp_path, symbols=["SPY"], train_days=25, train_in_process=True)
    provider, _ = sim_provider(settings)
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    app = BotApp(settings, build_services(settings, provider), state)
    try:
        assert (await app.services.registry.reload()).missing == ["SPY"]
        await app.train_in_worker()
        loaded = app.services.registry.get("SPY")
        assert loaded is not None and loaded.manifest["data_source"] == "simulated"
        assert app.services.store.latest_version("SPY", "5min") == loaded.version
    finally:
        await app.services.close()
        state.close()
