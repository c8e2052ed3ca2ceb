"""The edge gate end to end: a model trained on a pure random walk is published with alerts disabled,
its predictions say "no demonstrated edge", scans skip it, /subscribe says alerts are paused; a model
with an edge (the simulated market's) alerts; an operator can override; old models say "retrain"."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.alerts import AlertEngine
from bot.commands import CommandLayer
from bot.console import ConsoleAdapter
from bot.formatting import score_history_text, threshold_meaning_text
from bot.reply import Requester
from bot.services import build_services
from bot.state import StateDB
from core.edge import NOT_EVALUATED, edge_status, score_bucket, side_favoured, threshold_stats
from core.marketdata.csv_file import CsvProvider
from core.store import ModelStore
from core.stores import open_store
from tests.fakes.bot_stack import FixedClock, base_settings, sim_provider, trained_models_dir
from tests.fakes.synthetic_bars import random_walk_bars
from training.pipeline import train_symbols

SCAN_TIME = datetime.fromisoformat("2026-11-24T10:35:20-05:00")  # 20 s after the 10:35 bar closed
CONSOLE = Requester("console", "console", "console")


@pytest.fixture(scope="module")
def no_edge_store(tmp_path_factory) -> Path:
    """The session's simulated-market store, with SPY retrained on a 60-session seeded random walk."""
    root = tmp_path_factory.mktemp("no-edge")
    shutil.copytree(trained_models_dir(), root / "models")
    bars = random_walk_bars(n_sessions=60, bar_minutes=5, seed=5)
    csv = root / "SPY.csv"
    bars.rename_axis("time").to_csv(csv)
    now = bars.index[-1].to_pydatetime() + timedelta(hours=1)
    settings = base_settings(root, market_data=f"csv:{csv}", train_days=60)
    store, archive = open_store(settings)
    provider = CsvProvider(csv, clock=FixedClock(now))
    [result] = asyncio.run(train_symbols(settings, store, archive, symbols=["SPY"], provider=provider,
                                         now=now, force=True, progress=lambda m: None))
    # the gate compares with the published simulated-market SPY (same method) and refuses: forced
    assert result.published and any("AUC" in r for r in result.reasons), result.reasons
    return root / "models"


def _manifest(models: Path, symbol: str) -> dict:
    settings = base_settings(models.parent)
    store, _ = open_store(settings)
    assert isinstance(store, ModelStore)
    return store.load(symbol, settings.timeframe).manifest


def _stack(tmp_path: Path, models: Path, **overrides: object):
    shutil.copytree(models, tmp_path / "models", dirs_exist_ok=True)
    settings = base_settings(tmp_path, **overrides)
    provider, _ = sim_provider(settings, SCAN_TIME)
    services = build_services(settings, provider)
    state = StateDB(settings.state_dir / "tradebot.sqlite3")
    layer = CommandLayer(services, state)
    console = ConsoleAdapter(layer, settings.state_dir / "charts", stdout=io.StringIO())
    return services, state, layer, AlertEngine(layer, state, {"console": console})


def test_random_walk_model_is_published_with_alerts_disabled(no_edge_store) -> None:
    manifest = _manifest(no_edge_store, "SPY")
    assert manifest["edge"]["alerts_enabled"] is False
    assert manifest["edge"]["reasons"] and "trade_quality AUC" in manifest["edge"]["reasons"][0]
    for name in ("profit_target", "trade_quality"):
        m = manifest["metrics"][name]
        assert m["max_probability"] < 0.8  # no out-of-sample score could reach an alert at 80
        assert m["brier_skill"] >= -0.002
        assert next(r for r in m["thresholds"] if r["threshold"] == 80)["count"] == 0
    assert manifest["calibration_method"] and manifest["gate"] == {"compared": True, "note": None}
    # the simulated market's planted edge passes the same rule
    assert _manifest(no_edge_store, "QQQ")["edge"]["alerts_enabled"] is True


async def test_no_edge_predicts_with_a_warning_and_scans_skip_it(tmp_path, no_edge_store) -> None:
    services, state, layer, engine = _stack(tmp_path, no_edge_store)
    try:
        await services.registry.reload()
        reply = await layer.handle(CONSOLE, "/predict SPY")
        assert reply.ok and "no demonstrated edge" in reply.text
        bundle = await services.predictor.predict("SPY", now=SCAN_TIME, with_levels=False)
        warning = next(w for w in bundle.prediction.warnings if "no demonstrated edge" in w)
        assert "AUC" in warning and "interval" in warning
        assert bundle.prediction.alerts_enabled is False

        sub = await layer.handle(CONSOLE, "/subscribe SPY 80")
        assert sub.ok and "alerts are paused" in sub.text and "at ≥ 80" in sub.text

        await asyncio.to_thread(state.subscribe, "console:console", "QQQ", 0)
        await asyncio.to_thread(state.subscribe, "console:console", "SPY", 0)
        result = await engine.scan(SCAN_TIME)
        reasons = {(x["symbol"], x["reason"]) for x in result.skipped}
        assert ("SPY", "no demonstrated edge") in reasons
        assert [a["symbol"] for a in result.sent] == ["QQQ"]  # the model with an edge still alerts
    finally:
        await services.close()
        state.close()


async def test_operator_can_override_the_gate_knowingly(tmp_path, no_edge_store) -> None:
    services, state, layer, engine = _stack(tmp_path, no_edge_store, alerts_require_edge=False)
    try:
        await services.registry.reload()
        await asyncio.to_thread(state.subscribe, "console:console", "SPY", 0)
        result = await engine.scan(SCAN_TIME)
        assert [a["symbol"] for a in result.sent] == ["SPY"]
        bundle = await services.predictor.predict("SPY", now=SCAN_TIME, with_levels=False)
        assert any("ALERTS_REQUIRE_EDGE=false" in w for w in bundle.prediction.warnings)
    finally:
        await services.close()
        state.close()


def test_cli_scan_once_skips_a_symbol_without_edge(tmp_path, no_edge_store, monkeypatch, capsys) -> None:
    from bot.cli import main as cli_main

    shutil.copytree(no_edge_store, tmp_path / "models")
    monkeypatch.setenv("MODEL_STORE", str(tmp_path / "models"))
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state").mkdir()
    with StateDB(tmp_path / "state" / "tradebot.sqlite3") as db:
        db.subscribe("console:console", "SPY", 0)
    assert cli_main(["scan", "--once", "--at", SCAN_TIME.isoformat()]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sent"] == []
    assert [(x["symbol"], x["reason"]) for x in result["skipped"]] == [("SPY", "no demonstrated edge")]


def test_a_model_from_before_the_gate_keeps_alerting_and_says_retrain() -> None:
    old = {"metrics": {"trade_quality": {"auc": 0.6}}}
    status = edge_status(old, require_edge=True)
    assert status.alerts_enabled and not status.evaluated and status.warning == NOT_EVALUATED
    assert "retrain" in threshold_meaning_text(80, threshold_stats(old, 80))
    assert side_favoured(old, 0.9, 0.1) is False  # no direction evidence: no side claimed


def test_side_needs_direction_skill_and_a_gap() -> None:
    skilled = {"metrics": {"direction": {"auc": 0.7, "auc_ci95": [0.65, 0.75]}}}
    assert side_favoured(skilled, 0.60, 0.50) is True
    assert side_favoured(skilled, 0.51, 0.50) is False  # the sides score alike
    unskilled = {"metrics": {"direction": {"auc": 0.51, "auc_ci95": [0.49, 0.53]}}}
    assert side_favoured(unskilled, 0.90, 0.10) is False


def test_score_and_threshold_meaning_texts() -> None:
    manifest = {"metrics": {"trade_quality": {
        "max_probability": 0.734,
        "thresholds": [{"threshold": t, "count": c, "per_session": c / 100, "precision": 0.64 if c else None,
                        "precision_ci95": [0.60, 0.68] if c else None}
                       for t, c in ((50, 900, ), (60, 400), (70, 120), (80, 0), (90, 0))],
        "buckets": [{"low": 60, "high": 70, "count": 1210, "per_session": 12.1, "precision": 0.54,
                     "precision_ci95": [0.51, 0.57]}]}}}
    assert threshold_stats(manifest, 75)["threshold"] == 70  # the largest stored threshold not above
    assert threshold_meaning_text(75, threshold_stats(manifest, 75)) == (
        "Out of sample at ≥ 70: 1.2 alerts per session, 64 % worked, ±4 %.")
    never = threshold_meaning_text(85, threshold_stats(manifest, 85))
    assert "no setup ever scored" in never and "73" in never
    assert score_history_text(62, score_bucket(manifest, 62)) == (
        "score 62: in walk-forward testing, setups scoring 60–70 worked 54 % of the time (±3 %, n = 1,210)")
    assert score_bucket(manifest, 71) is None
    assert "at ≥ 50 (the lowest threshold tabulated): 9.0 alerts per session" in threshold_meaning_text(
        20, threshold_stats(manifest, 20))
