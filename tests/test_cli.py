"""`tradebot` subcommands in-process through `bot.cli.main`, configured only by environment variables,
on the simulated market (wall clock) and a private copy of the session's trained store."""

from __future__ import annotations

import asyncio
import csv
import json
import struct
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from core import calendar
from core.store import ModelStore, open_blob_store
from tests.fakes.bot_stack import OPEN_TIME, make_settings, sim_provider
from tests.fakes.s3_server import DUMMY_ENV, free_port
from tests.fakes.synthetic_bars import random_walk_bars

PREDICTION_KEYS = {"symbol", "as_of", "price", "vix", "direction", "quality_score", "win_probability",
                   "predicted_high", "predicted_low", "target", "stop", "vanna_support", "vanna_resistance",
                   "call_wall", "put_wall", "zero_gamma", "model_version", "model_trained_at", "data_source",
                   "warnings", "side_favoured", "alerts_enabled", "score_history"}
LEVELS_KEYS = {"symbol", "as_of", "spot", "convention", "expirations", "strikes", "call_wall", "put_wall",
               "zero_gamma", "vanna_support", "vanna_resistance", "skipped", "data_source", "other_convention"}
STRIKE_KEYS = {"strike", "call_oi", "put_oi", "call_gex", "put_gex", "net_gex", "call_vex", "put_vex", "net_vex"}


@pytest.fixture
def cli_env(tmp_path, monkeypatch, trained_store) -> Path:
    """Environment for a CLI over a private copy of the trained store; returns the temp folder."""
    make_settings(tmp_path)  # copies the store into tmp_path/models
    monkeypatch.chdir(tmp_path)  # no developer .env can leak in
    for key, value in {"MODEL_STORE": str(tmp_path / "models"), "STATE_DIR": str(tmp_path / "state"),
                       "MARKET_DATA": "simulated", "TRAIN_DAYS": "25"}.items():
        monkeypatch.setenv(key, value)
    return tmp_path


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def tree(folder: Path) -> dict[str, int]:
    """Every file under folder with its size and mtime, to prove nothing changed."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------ happy paths


def test_predict_json_prints_one_object_and_writes_the_chart(cli_env, capsys):
    chart = cli_env / "out" / "spy.png"
    assert main(["predict", "SPY", "--json", "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    pred = json.loads(out)
    assert set(pred) == PREDICTION_KEYS
    assert pred["symbol"] == "SPY" and pred["data_source"] == "simulated"
    assert pred["predicted_low"] <= pred["price"] <= pred["predicted_high"]
    width, height = png_size(chart.read_bytes())
    assert 1000 <= width <= 1200 and height > 500
    assert not list(chart.parent.glob("*.tmp"))


def test_predict_text_shows_the_banner_and_saves_the_chart_in_the_state_dir(cli_env, capsys):
    assert main(["predict", "spy"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SIMULATED DATA")
    assert "Trade quality:" in out and "Win probability:" in out
    chart = Path(out.strip().splitlines()[-1].removeprefix("Chart: "))
    assert chart.parent == cli_env / "state" / "charts" and png_size(chart.read_bytes())[0] > 1000


def test_levels_json_has_exactly_the_documented_keys(cli_env, capsys):
    chart = cli_env / "levels.png"
    assert main(["levels", "SPY", "--json", "--chart", str(chart)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == LEVELS_KEYS and report["data_source"] == "simulated"
    assert report["strikes"] and all(set(row) == STRIKE_KEYS for row in report["strikes"])
    spot = report["spot"]
    for level in (report["call_wall"], report["put_wall"], report["zero_gamma"]):
        assert level is None or abs(level / spot - 1) < 0.1
    assert report["expirations"] == sorted(report["expirations"])
    assert png_size(chart.read_bytes())[0] > 1000
    other = report["other_convention"]
    assert set(other) == {"convention", "call_wall", "put_wall", "zero_gamma", "vanna_support", "vanna_resistance"}
    assert other["convention"] == "short_calls_short_puts"
    assert (other["call_wall"], other["put_wall"]) == (report["call_wall"], report["put_wall"])


def test_backtest_reports_and_draws(cli_env, capsys):
    chart = cli_env / "bt" / "spy.png"
    assert main(["backtest", "SPY", "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    for label in ("alerts:", "hit rate:", "average R after costs:", "average R, 95% session-bootstrap interval:",
                  "cost per share", "verdict:", "calibration of win probability"):
        assert label in out, out
    assert out.startswith("[SIMULATED DATA")
    assert png_size(chart.read_bytes())[0] > 1000


def recent_sessions(n: int) -> list[date]:
    today = OPEN_TIME.date()  # the pinned clock (tests/conftest.py)
    return calendar.sessions_between(today - timedelta(days=3 * n + 20), today - timedelta(days=1))[-n:]


def test_backtest_reports_even_without_an_edge(cli_env, monkeypatch, capsys):
    bars = random_walk_bars(n_sessions=24, seed=11, start=recent_sessions(24)[0])
    bars.insert(0, "time", [ts.isoformat() for ts in bars.index])
    bars.to_csv(cli_env / "SPY.csv", index=False)
    monkeypatch.setenv("MARKET_DATA", f"csv:{cli_env / 'SPY.csv'}")
    assert main(["backtest", "SPY", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"alerts", "hit_rate", "avg_r", "avg_r_ci95", "cost_per_share", "calibration", "verdict"} <= set(report)
    assert isinstance(report["verdict"], str) and report["calibration"]["win_probability"]
    assert (report["hit_rate"] is None) == (report["alerts"] == 0)


def test_backtest_text_without_alerts_still_reports():
    from bot.cli_text import format_backtest

    report = {"bars": 900, "threshold": 80, "alerts": 0, "hit_rate": None, "avg_r": None, "total_r": 0.0,
              "verdict": "no alerts at score >= 80 in 900 out-of-sample bars",
              "calibration": {"win_probability": [{"decile": 1, "predicted": 0.42, "realised": 0.4, "count": 90}],
                              "quality": []}}
    text = format_backtest(report, symbol="SPY", data_source="csv")
    assert "alerts: 0" in text and "hit rate: n/a" in text and "average R after costs: n/a" in text
    assert "no alerts at score >= 80" in text and "42.0%" in text and "SIMULATED" not in text


async def _log_two_predictions(settings) -> list[dict]:
    from bot.services import build_services
    from bot.state import StateDB

    provider, _ = sim_provider(settings, OPEN_TIME)
    services = build_services(settings, provider)
    await services.registry.reload()
    db = StateDB(settings.state_dir / "tradebot.sqlite3")
    logged = []
    try:
        for symbol in ("SPY", "QQQ"):
            pred = (await services.predictor.predict(symbol, with_levels=False)).prediction
            db.log_prediction(pred.to_dict(), "command", "console:1", horizon_end=pred.as_of + timedelta(hours=1))
            logged.append(pred.to_dict())
    finally:
        db.close()
    return logged


def test_export_log_writes_every_logged_prediction(cli_env, capsys):
    settings = make_settings(cli_env)
    logged = asyncio.run(_log_two_predictions(settings))
    target = cli_env / "export" / "log.csv"
    assert main(["export-log", str(target)]) == 0
    assert "2 predictions written" in capsys.readouterr().out
    with target.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["symbol"] for r in rows] == ["SPY", "QQQ"]
    assert [float(r["price"]) for r in rows] == [p["price"] for p in logged]
    assert rows[0]["requested_by"] == "console:1"


def test_performance_on_simulated_predictions_says_so(cli_env, capsys):
    settings = make_settings(cli_env)
    asyncio.run(_log_two_predictions(settings))
    assert main(["performance"]) == 0
    assert capsys.readouterr().out.startswith("SIMULATED DATA")


def test_models_promote_rolls_back(cli_env, capsys):
    store = ModelStore(open_blob_store(str(cli_env / "models")))
    first = store.latest_version("SPY", "5min")
    loaded = store.load("SPY", "5min")
    manifest = {k: v for k, v in loaded.manifest.items() if k not in ("version", "files")}
    second = store.publish("SPY", "5min", loaded.files, manifest)
    assert second != first

    assert main(["predict", "SPY", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_version"] == second

    assert main(["models", "--promote", first, "--symbol", "spy"]) == 0
    assert f"latest is now {first}" in capsys.readouterr().out
    assert store.latest_version("SPY", "5min") == first
    assert main(["models", "--symbol", "SPY"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert any(line.startswith("*") and first in line for line in listing)
    assert any(line.startswith(" ") and second in line for line in listing)

    assert main(["predict", "SPY", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_version"] == first


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("argv, message", [
    (["predict", "XYZ"], "unknown symbol 'XYZ'"),
    (["levels", "XYZ"], "unknown symbol 'XYZ'"),
    (["backtest", "XYZ"], "unknown symbol 'XYZ'"),
    (["predict", "DIA"], "no published model for DIA 5min: run `tradebot train`"),
])
def test_bad_symbol_is_one_line_and_writes_nothing(cli_env, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("SYMBOLS", "SPY,QQQ,IWM,DIA")
    before = tree(cli_env)
    chart = cli_env / "never.png"
    assert main([*argv, "--chart", str(chart)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert message in one_error_line(err)
    assert tree(cli_env) == before and not chart.exists()


def test_empty_store_is_one_line_and_writes_nothing(cli_env, monkeypatch, capsys):
    monkeypatch.setenv("MODEL_STORE", str(cli_env / "empty"))
    chart = cli_env / "never.png"
    assert main(["predict", "SPY", "--json", "--chart", str(chart)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "run `tradebot train`" in one_error_line(err)
    assert not chart.exists() and not (cli_env / "empty").exists() and not (cli_env / "state").exists()

    assert main(["models"]) == 0
    assert "no models in" in capsys.readouterr().out


def test_unreachable_store_fails_fast_with_one_line(cli_env, monkeypatch, capsys):
    for key, value in DUMMY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MODEL_STORE", "s3://nobucket/x")
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    chart = cli_env / "never.png"
    for argv in (["predict", "SPY", "--chart", str(chart)], ["models"], ["train", "--symbol", "SPY"]):
        assert main(argv) == 1
        out, err = capsys.readouterr()
        if argv[0] == "train":  # training names its executor first; the failure is still one line
            err = "\n".join(x for x in err.splitlines() if not x.startswith("training "))
        line = one_error_line(err)
        assert "unreachable" in line and "nobucket" in line, line
        assert DUMMY_ENV["AWS_SECRET_ACCESS_KEY"] not in err
        assert "building features" not in out + err  # the store is read first, before any fit
    assert not chart.exists() and not (cli_env / "state").exists()


def test_bad_promote_changes_nothing(cli_env, capsys):
    store = ModelStore(open_blob_store(str(cli_env / "models")))
    latest = store.latest_version("SPY", "5min")
    before = tree(cli_env / "models")
    for version, message in (("20200101T000000Z", "no such version"), ("../../x", "invalid model version")):
        assert main(["models", "--promote", version, "--symbol", "SPY"]) == 1
        assert message in one_error_line(capsys.readouterr().err)
    assert main(["models", "--promote", latest, "--symbol", "TSLA"]) == 1
    assert "unknown symbol" in one_error_line(capsys.readouterr().err)
    assert tree(cli_env / "models") == before


def test_export_log_to_an_unwritable_place_is_one_line(cli_env, capsys):
    blocker = cli_env / "a_file"
    blocker.write_text("x")
    assert main(["export-log", str(blocker / "log.csv")]) == 1
    assert "cannot write" in one_error_line(capsys.readouterr().err)


def test_chart_to_an_unwritable_place_is_one_line(cli_env, capsys):
    blocker = cli_env / "a_file"
    blocker.write_text("x")
    assert main(["predict", "SPY", "--chart", str(blocker / "p.png")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "cannot write" in one_error_line(err)


@pytest.mark.parametrize("var, value, named", [
    ("TRAIN_DAYS", "abc", "TRAIN_DAYS"),
    ("MODEL_STORE", "s3://Bad_Bucket/x", "MODEL_STORE"),
    ("SYMBOLS", "SPY,S P Y", "SYMBOLS"),
    ("MARKET_DATA", "bloomberg", "MARKET_DATA"),
])
def test_config_errors_exit_2_with_one_line(cli_env, monkeypatch, capsys, var, value, named):
    monkeypatch.setenv(var, value)
    before = tree(cli_env)
    assert main(["predict", "SPY"]) == 2
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert out == "" and line.startswith("config error:") and named in line
    assert tree(cli_env) == before
