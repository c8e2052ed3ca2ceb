"""`tradebot train`, `models` and `import-bars` end to end, in-process through `bot.cli.main`, on the
simulated market (wall clock) into a temporary folder store or a real S3-compatible server (moto)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.cli import main
from core import calendar
from core.store import ModelStore, open_blob_store
from core.types import NY
from tests.fakes.bot_stack import OPEN_TIME
from tests.fakes.s3_server import make_bucket, s3_endpoint  # noqa: F401
from tests.fakes.synthetic_bars import random_walk_bars

MANIFEST_KEYS = {"version", "trained_at", "data_window", "data_source", "feature_names", "label_params",
                 "metrics", "package_versions", "files"}


def _env(monkeypatch: pytest.MonkeyPatch, tmp: Path, **values: str) -> None:
    monkeypatch.chdir(tmp)  # no developer .env can leak in
    env = {"MODEL_STORE": str(tmp / "models"), "STATE_DIR": str(tmp / "state"), "TRAIN_DAYS": "30",
           "MARKET_DATA": "simulated", **values}
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _store(url: str, endpoint: str | None = None) -> ModelStore:
    return ModelStore(open_blob_store(url, endpoint))


def recent_sessions(n: int, today: date = OPEN_TIME.date()) -> list[date]:
    """The n NYSE sessions that ended before `today` (the CLI runs on the pinned clock, OPEN_TIME)."""
    days = calendar.sessions_between(today - timedelta(days=3 * n + 20), today - timedelta(days=1))
    return days[-n:]


def write_bars_csv(path: Path, bars: pd.DataFrame) -> Path:
    out = bars.copy()
    out.insert(0, "time", [ts.isoformat() for ts in out.index])
    out.to_csv(path, index=False)
    return path


def recent_random_walk(n_sessions: int, seed: int = 3) -> pd.DataFrame:
    return random_walk_bars(n_sessions=n_sessions, seed=seed, start=recent_sessions(n_sessions)[0])


def test_train_publishes_a_complete_version_and_models_lists_it(tmp_path, monkeypatch, capsys):
    _env(monkeypatch, tmp_path)
    assert main(["train", "--symbol", "SPY"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("[SIMULATED DATA")
    assert "SPY 5min · 30 sessions" in out and "published 2" in out
    for column in ("AUC", "Brier", "prec@80", "MAE %", "rel MAE", "rel vol"):
        assert column in out
    assert max(len(line) for line in out.splitlines()) < 100
    assert "SPY: published version" in err

    store = _store(str(tmp_path / "models"))
    loaded = store.load("SPY", "5min")
    manifest = loaded.manifest
    assert MANIFEST_KEYS <= set(manifest)
    assert manifest["data_source"] == "simulated"
    window = manifest["data_window"]
    assert window["sessions"] == 30 and window["bars"] > 29 * 42
    assert pd.Timestamp(window["start"]) < pd.Timestamp(window["end"]) <= pd.Timestamp(OPEN_TIME)
    assert manifest["feature_names"] and manifest["label_params"]["horizon_bars"] == 12
    assert {"profit_target", "trade_quality", "future_high", "future_low"} <= set(manifest["metrics"])
    assert {"lightgbm", "pandas", "numpy"} <= set(manifest["package_versions"])
    assert set(manifest["files"]) == set(loaded.files)
    assert all(len(meta["sha256"]) == 64 for meta in manifest["files"].values())
    assert f"published {loaded.version}" in out
    assert store.latest_version("QQQ", "5min") is None  # only the symbol asked for

    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "* SPY" in listing and loaded.version in listing
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["symbol"], r["version"], r["is_latest"]) for r in rows] == [("SPY", loaded.version, True)]


def test_train_into_s3_publishes_lists_and_loads(tmp_path, monkeypatch, capsys, s3_endpoint):  # noqa: F811
    bucket = make_bucket(s3_endpoint)
    _env(monkeypatch, tmp_path, MODEL_STORE=f"s3://{bucket}/prod", S3_ENDPOINT_URL=s3_endpoint, TRAIN_DAYS="25")
    assert main(["train", "--symbol", "SPY"]) == 0
    out = capsys.readouterr().out
    assert "published 2" in out
    assert not (tmp_path / "models").exists()

    store = _store(f"s3://{bucket}/prod", s3_endpoint)
    loaded = store.load("SPY", "5min")
    assert loaded.manifest["data_window"]["sessions"] == 25
    keys = store.blobs.list("")
    assert f"SPY/5min/{loaded.version}/manifest.json" in keys and "SPY/5min/latest.json" in keys

    assert main(["models", "--symbol", "SPY"]) == 0
    assert loaded.version in capsys.readouterr().out

    from core.model_registry import ModelRegistry

    registry = ModelRegistry(store, ["SPY"], "5min")
    import asyncio

    report = asyncio.run(registry.reload())
    assert report.loaded == {"SPY": loaded.version} and report.ok


def _publish_unbeatable(store: ModelStore, *, same_method: bool = True) -> str:
    """A published version whose metrics no new training can reach (the gate only reads metrics and
    the method: labels and calibration); `same_method=False` is a set from before the edge gate."""
    from core.model.model_set import LabelParams
    from training.models import CALIBRATION_METHOD

    perfect = {"auc": 0.99, "brier": 0.01}
    metrics = {"profit_target": perfect, "trade_quality": perfect,
               "future_high": {"relative_mae": 0.05}, "future_low": {"relative_mae": 0.05}}
    manifest = {"trained_at": "2026-11-20T11:00:00+00:00", "data_source": "simulated", "metrics": metrics,
                "label_params": LabelParams().to_dict()}
    if same_method:
        manifest["calibration_method"] = CALIBRATION_METHOD
    return store.publish("SPY", "5min", {"model_meta.json": b"{}"}, manifest)


def test_a_set_made_with_another_method_is_not_a_yardstick(tmp_path, monkeypatch, capsys):
    _env(monkeypatch, tmp_path, TRAIN_DAYS="25")
    store = _store(str(tmp_path / "models"))
    old = _publish_unbeatable(store, same_method=False)
    assert main(["train", "--symbol", "SPY"]) == 0
    out = capsys.readouterr().out
    assert "calibration changed" in out and "gate comparison skipped" in out
    new = store.load("SPY", "5min")
    assert new.version != old and new.manifest["gate"]["compared"] is False
    assert "calibration changed" in new.manifest["gate"]["note"]
    assert set(new.manifest["edge"]) == {"alerts_enabled", "reasons"}


def test_publish_gate_refuses_worse_models_and_force_overrides(tmp_path, monkeypatch, capsys):
    _env(monkeypatch, tmp_path, TRAIN_DAYS="25")
    store = _store(str(tmp_path / "models"))
    unbeatable = _publish_unbeatable(store)

    assert main(["train", "--symbol", "SPY"]) == 0  # a refusal is an outcome, not a crash
    out, err = capsys.readouterr()
    assert "NOT published" in out
    assert "profit_target AUC" in out and "published 0.990" in out
    assert "future_high relative MAE" in out
    assert "not published" in err
    assert store.latest_version("SPY", "5min") == unbeatable
    assert len(store.list_versions("SPY", "5min")) == 1

    assert main(["train", "--symbol", "SPY", "--force"]) == 0
    out = capsys.readouterr().out
    forced = store.latest_version("SPY", "5min")
    assert forced != unbeatable and f"published {forced}" in out
    assert "profit_target AUC" in out  # the override still says what the gate objected to
    assert store.load("SPY", "5min").manifest["metrics"]["profit_target"]["auc"] < 0.99
    assert len(store.list_versions("SPY", "5min")) == 2


def test_train_days_beyond_the_data_warns_and_still_trains(tmp_path, monkeypatch, capsys):
    csv = write_bars_csv(tmp_path / "SPY.csv", recent_random_walk(22))
    _env(monkeypatch, tmp_path, MARKET_DATA=f"csv:{csv}", SYMBOLS="SPY")
    broken = tmp_path / "models" / "SPY" / "5min" / "latest.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")  # a broken published set must not block its replacement
    assert main(["train"]) == 0
    out, err = capsys.readouterr()
    assert "published model unreadable" in out and "published 2" in out
    assert "only 22 of TRAIN_DAYS=30 sessions" in out
    assert "only 22 of TRAIN_DAYS=30 sessions" in err
    assert "SIMULATED" not in out
    manifest = _store(str(tmp_path / "models")).load("SPY", "5min").manifest
    assert manifest["data_source"] == "csv" and manifest["data_window"]["sessions"] == 22
    assert any("only 22 of TRAIN_DAYS=30" in w for w in manifest["warnings"])


@pytest.mark.parametrize("moment", [datetime(2026, 12, 1, 4, 40, tzinfo=NY), datetime(2026, 12, 1, 11, 0, tzinfo=NY)],
                         ids=["before-the-open", "mid-session"])
def test_training_window_ends_at_the_last_completed_session(tmp_path, monkeypatch, capsys, pinned_now, moment):
    pinned_now.now = moment  # Tuesday: 22 full sessions up to Monday's close, and today's bars so far
    days = recent_sessions(22, today=moment.date())
    bars = random_walk_bars(n_sessions=23, seed=3, start=days[0])
    bars = bars.loc[bars.index + pd.Timedelta(minutes=5) <= pd.Timestamp(moment)]  # closed bars only
    assert days[-1] == date(2026, 11, 30)
    csv = write_bars_csv(tmp_path / "SPY.csv", bars)
    _env(monkeypatch, tmp_path, MARKET_DATA=f"csv:{csv}", SYMBOLS="SPY", TRAIN_DAYS="22")
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    assert "only" not in out and "published 2" in out
    window = _store(str(tmp_path / "models")).load("SPY", "5min").manifest["data_window"]
    assert window["sessions"] == 22 and pd.Timestamp(window["end"]).date() == days[-1]


def test_train_with_too_little_data_publishes_nothing(tmp_path, monkeypatch, capsys):
    csv = write_bars_csv(tmp_path / "SPY.csv", recent_random_walk(5))
    _env(monkeypatch, tmp_path, MARKET_DATA=f"csv:{csv}", SYMBOLS="SPY")
    assert main(["train"]) == 1
    out = capsys.readouterr().out
    assert "too little data: 5 sessions" in out and "NOT published" in out
    assert _store(str(tmp_path / "models")).list_all() == []


def test_import_bars_archives_once_and_counts(tmp_path, monkeypatch, capsys):
    bars = recent_random_walk(3)
    csv = write_bars_csv(tmp_path / "spy_5min.csv", bars)
    _env(monkeypatch, tmp_path)
    assert main(["import-bars", str(csv), "--symbol", "spy"]) == 0
    out = capsys.readouterr().out
    n = len(bars)
    assert f"{n:,} bars read, {n:,} new bars archived" in out
    assert f"archive holds {n:,} bars" in out

    assert main(["import-bars", str(csv), "--symbol", "SPY"]) == 0
    out = capsys.readouterr().out
    assert f"{n:,} bars read, 0 new bars archived" in out and f"archive holds {n:,} bars" in out
    archived = sorted(k for k in open_blob_store(str(tmp_path / "models")).list("archive/"))
    assert archived and all(k.startswith("archive/SPY/5min/") for k in archived)


def test_import_bars_rejects_a_bad_csv_naming_the_line(tmp_path, monkeypatch, capsys):
    bars = recent_random_walk(2)
    csv = write_bars_csv(tmp_path / "SPY.csv", bars)
    lines = csv.read_text().splitlines()
    fields = lines[6].split(",")
    fields[2] = str(float(fields[4]) / 2)  # high below the close
    lines[6] = ",".join(fields)
    csv.write_text("\n".join(lines) + "\n")
    _env(monkeypatch, tmp_path)
    assert main(["import-bars", str(csv), "--symbol", "SPY"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "line 7" in err and "high" in err
    assert not (tmp_path / "models").exists()


def test_import_bars_rejects_the_wrong_bar_length(tmp_path, monkeypatch, capsys):
    bars = random_walk_bars(n_sessions=2, bar_minutes=15, start=recent_sessions(2)[0])
    csv = write_bars_csv(tmp_path / "SPY.csv", bars)
    _env(monkeypatch, tmp_path)
    assert main(["import-bars", str(csv), "--symbol", "SPY"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "15-minute bars but TIMEFRAME is 5min" in err
    assert not (tmp_path / "models").exists()


def test_import_bars_unknown_symbol_changes_nothing(tmp_path, monkeypatch, capsys):
    csv = write_bars_csv(tmp_path / "SPY.csv", recent_random_walk(1))
    _env(monkeypatch, tmp_path)
    assert main(["import-bars", str(csv), "--symbol", "TSLA"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown symbol 'TSLA'" in err
    assert not (tmp_path / "models").exists()
