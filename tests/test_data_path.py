"""The data path on real-world inputs: a historical CSV trains on its own window and predicts as of its
last bar, a CSV without VIX warns, a file's name sets its symbol, and a new Tradier user's first training
uses every session Tradier still serves, whatever TRAIN_DAYS says."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from core.marketdata.archive import BarArchive
from core.marketdata.csv_file import CsvProvider
from core.predictor import Predictor
from core.store import ModelStore
from core.store.blobs import LocalBlobStore
from core.types import NY, UnknownSymbolError
from tests.fakes.bot_stack import base_settings
from tests.fakes.synthetic_bars import random_walk_bars
from tests.fakes.tradier_training import train_from_tradier_fake
from training import pipeline

TOKEN = "data-path-token"
WALL = datetime(2026, 12, 1, 11, 0, tzinfo=NY)  # the wall clock, long after the historical file ends
TRADIER_NOW = datetime(2026, 11, 30, 10, 0, tzinfo=NY)  # a Monday morning
FEW_TREES = 15


@pytest.fixture
def few_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training-based tests stay fast: the pipeline's fits use a handful of trees."""
    make_job = pipeline.make_fit_job
    monkeypatch.setattr(pipeline, "make_fit_job",
                        lambda *a, **k: dataclasses.replace(make_job(*a, **k), num_trees=FEW_TREES))


def write_csv(path: Path, bars: pd.DataFrame) -> Path:
    out = bars.copy()
    out.insert(0, "time", [ts.strftime("%Y-%m-%d %H:%M:%S") for ts in out.index])  # zone-less New York
    out.to_csv(path, index=False)
    return path


def stores(tmp: Path) -> tuple[ModelStore, BarArchive]:
    blobs = LocalBlobStore(tmp / "models")
    return ModelStore(blobs), BarArchive(blobs)


async def test_historical_csv_without_vix_trains_on_its_own_window_and_warns(tmp_path, few_trees) -> None:
    bars = random_walk_bars(n_sessions=30, bar_minutes=5, seed=4, start=date(2019, 3, 4)).drop(columns="vix")
    path = write_csv(tmp_path / "SPY.csv", bars)
    settings = base_settings(tmp_path, market_data=f"csv:{path}", train_days=25, symbols=["SPY"])
    provider = CsvProvider(path, clock=lambda: WALL)
    store, archive = stores(tmp_path)
    lines: list[str] = []
    [result] = await pipeline.train_symbols(settings, store, archive, provider=provider, now=WALL,
                                            progress=lines.append)
    assert result.published, result.reasons
    days = sorted(set(bars.index.date))
    assert result.window["sessions"] == 25
    assert result.window["end"] == bars.index[-1].isoformat()
    assert result.window["start"].startswith(days[5].isoformat())
    assert any("no VIX" in w for w in result.warnings)
    assert any("warning: no VIX" in line for line in lines)
    manifest = store.load("SPY", "5min").manifest
    assert any("no VIX" in w for w in manifest["warnings"])
    assert manifest["trained_with_vix"] is False


async def test_historical_csv_predicts_as_of_its_last_bar(tmp_path) -> None:
    bars = random_walk_bars(n_sessions=3, bar_minutes=5, seed=4, start=date(2019, 3, 4))
    path = write_csv(tmp_path / "SPY.csv", bars)
    provider = CsvProvider(path, clock=lambda: WALL)
    predictor = Predictor(base_settings(tmp_path, market_data=f"csv:{path}", symbols=["SPY"]), provider,
                          registry=None)  # type: ignore[arg-type]
    warnings: list[str] = []
    as_of = predictor._data_now("SPY", WALL, warnings)
    assert as_of == (bars.index[-1] + pd.Timedelta(minutes=5)).to_pydatetime()
    assert len(warnings) == 1 and warnings[0].startswith("historical data:")
    assert not (await predictor.bars.get("SPY", as_of)).empty
    # Data that reaches the latest close is live: no warning, the wall clock stands.
    current = CsvProvider(path, clock=lambda: as_of)
    live = Predictor(predictor.settings, current, registry=None)  # type: ignore[arg-type]
    assert live._data_now("SPY", as_of, warnings) == as_of and len(warnings) == 1


def test_a_single_misnamed_file_says_how_to_name_it(tmp_path) -> None:
    path = write_csv(tmp_path / "prices.csv", random_walk_bars(n_sessions=1, bar_minutes=5, seed=1))
    with pytest.raises(UnknownSymbolError, match=r"prices\.csv holds PRICES.*name it SPY\.csv"):
        CsvProvider(path).bars("SPY")


def test_vix_warning_only_when_vix_is_missing() -> None:
    bars = random_walk_bars(n_sessions=2, bar_minutes=5, seed=1)
    assert pipeline.vix_warning(bars) is None
    assert "no VIX" in pipeline.vix_warning(bars.drop(columns="vix"))
    assert "no VIX" in pipeline.vix_warning(bars.assign(vix=float("nan")))


@pytest.mark.parametrize("train_days", [30, 180])
async def test_first_tradier_training_uses_every_session_on_offer(tmp_path, few_trees, train_days) -> None:
    settings = base_settings(tmp_path, market_data="tradier", tradier_token=TOKEN, train_days=train_days,
                             symbols=["SPY"])
    store, archive = stores(tmp_path)
    result, _ = await train_from_tradier_fake(settings, store, archive, TRADIER_NOW, TOKEN)
    # 40 calendar days of 5-minute bars before Mon 30 Nov 10:00: a part session (21 Oct, from 10:00), 26
    # whole ones and today's first half hour. The window ends at the last completed session (Fri 27 Nov),
    # so every completed session on offer is 27, whatever TRAIN_DAYS says.
    assert result.window["sessions"] == 27, result.window
    assert result.published, result.reasons
    assert result.metrics["n_oos"] > 0.75 * result.window["bars"]
