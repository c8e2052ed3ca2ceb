"""Training fanned out: the fits of different symbols run in spawned processes or on a Dask cluster, and
publish exactly the model files (same sha256 checksums) that one fit at a time publishes. The parent
fetches the bars and publishes; a worker gets a small job without any Settings."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest

from config import ConfigError, load_settings
from core.marketdata.simulated import SimulatedProvider
from core.stores import open_store
from tests.fakes.bot_stack import OPEN_TIME, FixedClock, base_settings
from training.executors import FitJob, resolve_workers
from training.pipeline import make_fit_job, train_symbols

SYMBOLS = ["SPY", "QQQ"]
SMALL = {"symbols": SYMBOLS, "train_days": 25, "train_num_trees": 20}


def _train(root: Path, **overrides: object) -> tuple[dict[str, dict], list[str]]:
    """Train SYMBOLS from scratch into `root`; the published manifests' `files` and the progress lines."""
    settings = base_settings(root, **SMALL, **overrides)
    store, archive = open_store(settings)
    provider = SimulatedProvider(seed=settings.simulated_seed, symbols=SYMBOLS, clock=FixedClock(OPEN_TIME))
    lines: list[str] = []
    results = asyncio.run(train_symbols(settings, store, archive, provider=provider, now=OPEN_TIME,
                                        progress=lines.append))
    assert [r.symbol for r in results] == SYMBOLS
    assert all(r.published for r in results), [r.reasons for r in results]
    return {r.symbol: store.load(r.symbol, settings.timeframe).manifest["files"] for r in results}, lines


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory) -> dict[str, dict]:
    files, lines = _train(tmp_path_factory.mktemp("local"), train_executor="local")
    assert "training 2 symbol(s): local executor, 1 worker(s)" in lines
    return files


@pytest.mark.timeout(600)
def test_two_processes_publish_the_same_model_files_as_one(tmp_path, one_at_a_time):
    files, lines = _train(tmp_path, train_executor="processes", train_workers=2)
    assert "training 2 symbol(s): processes executor, 2 worker(s)" in lines
    assert files == one_at_a_time
    assert all(meta["sha256"] for per_symbol in files.values() for meta in per_symbol.values())
    # progress per symbol, replayed from the workers, and a count of symbols done
    for symbol in SYMBOLS:
        assert f"{symbol}: final fit on all data" in lines
    assert sorted(line.split("]")[0] for line in lines if line.startswith("[")) == ["[1/2", "[2/2"]


@pytest.mark.timeout(600)
def test_dask_local_cluster_publishes_the_same_model_files(tmp_path, one_at_a_time):
    distributed = pytest.importorskip("distributed")
    # Threads, not processes: on a loaded 2-core box spawning worker processes is the slow, flaky part,
    # and the tasks still cross the scheduler over TCP, pickled like on a real cluster.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                                  host="127.0.0.1", protocol="tcp") as cluster:
        files, lines = _train(tmp_path, train_executor="dask", dask_scheduler_address=cluster.scheduler_address)
    assert "training 2 symbol(s): dask executor, 2 worker(s)" in lines
    assert files == one_at_a_time


def test_a_fit_job_carries_no_settings_and_no_secrets(tmp_path):
    settings = base_settings(tmp_path, tradier_token="sekret-token-123", market_data="simulated")
    provider = SimulatedProvider(seed=1, symbols=["SPY"], clock=FixedClock(OPEN_TIME))
    bars = asyncio.run(provider.get_bars("SPY", OPEN_TIME.replace(hour=9), OPEN_TIME, "5min"))
    job = make_fit_job(settings, bars, "SPY", "simulated", OPEN_TIME)
    blob = pickle.dumps(job)
    assert isinstance(pickle.loads(blob), FitJob)
    assert b"sekret-token-123" not in blob and b"Settings" not in blob


def test_train_workers_defaults_to_the_callers_choice_and_the_setting_wins(tmp_path):
    assert resolve_workers(base_settings(tmp_path), default=8) == 8
    assert resolve_workers(base_settings(tmp_path), default=1) == 1
    assert resolve_workers(base_settings(tmp_path, train_workers=3), default=8) == 3


@pytest.mark.parametrize(("values", "message"), [
    ({"train_executor": "dask"}, "TRAIN_EXECUTOR: dask needs DASK_SCHEDULER_ADDRESS"),
    ({"dask_scheduler_address": "host:8786"}, "DASK_SCHEDULER_ADDRESS: must look like tcp://host:8786"),
    ({"train_executor": "threads"}, "TRAIN_EXECUTOR"),
    ({"train_workers": 0}, "TRAIN_WORKERS"),
])
def test_bad_executor_settings_are_one_line_errors(values, message):
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None, market_data="simulated", **values)
    assert message in str(err.value) and "\n" not in str(err.value)
