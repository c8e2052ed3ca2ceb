"""Where each symbol's fit runs: this process (`local`), a pool of spawned processes (`processes`), or an
existing Dask distributed cluster (`dask`).

A fit is a `FitJob` in and a `FitOutcome` out, both small and picklable: the job carries the bars and the
few parameters the fit needs, never a Settings object (it holds secrets), and the outcome carries the
model files as bytes. So a worker needs no credentials, no market data access and no store access: the
parent fetches every symbol's bars through its one pacer and publishes what comes back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Awaitable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pandas as pd

from config import Settings
from core.model.features import DailyHistory
from core.model.model_set import LabelParams


class ExecutorUnavailable(RuntimeError):
    """The configured executor cannot start (Dask missing or its scheduler unreachable)."""


@dataclass(frozen=True)
class FitJob:
    symbol: str
    timeframe: str
    bar_minutes: int
    label_params: LabelParams
    data_source: str
    trained_at: datetime
    num_trees: int
    bars: pd.DataFrame = field(repr=False)
    daily: DailyHistory | None = field(default=None, repr=False)  # fetched by the parent, like the bars


@dataclass
class FitOutcome:
    symbol: str
    files: dict[str, bytes]  # ModelSet.to_files(); empty when `error` is set
    metrics: dict
    manifest: dict
    log: list[str]  # the fit's progress lines, replayed by the parent (a worker has no console)
    error: str | None = None  # too few usable rows: a data verdict, not a crash


def run_fit(job: FitJob) -> FitOutcome:
    """The worker's whole job. Module-level so a spawned process or a Dask worker can import it."""
    from training.models import TrainingDataError
    from training.pipeline import fit_on_bars
    from training.walkforward import WalkForwardError

    log: list[str] = []
    try:
        models, metrics, manifest = fit_on_bars(job, log.append)
    except (TrainingDataError, WalkForwardError) as exc:
        return FitOutcome(job.symbol, {}, {}, {}, log, str(exc))
    return FitOutcome(job.symbol, models.to_files(), metrics, manifest, log)


class FitExecutor(Protocol):
    name: str
    workers: int

    def submit(self, job: FitJob) -> Awaitable[FitOutcome]: ...

    async def close(self) -> None: ...


class PoolExecutor:
    """`local` (one thread in this process, one symbol at a time) or `processes` (spawned workers)."""

    def __init__(self, name: str, pool: Executor, workers: int):
        self.name, self.workers, self._pool = name, workers, pool

    def submit(self, job: FitJob) -> Awaitable[FitOutcome]:
        return asyncio.get_running_loop().run_in_executor(self._pool, run_fit, job)

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)


class DaskExecutor:
    """Each fit is one task on an existing Dask distributed cluster."""

    name = "dask"

    def __init__(self, client: object, workers: int):
        self._client, self.workers = client, workers

    @classmethod
    async def connect(cls, address: str, timeout: float = 30) -> DaskExecutor:
        try:
            from distributed import Client
        except ImportError:
            raise ExecutorUnavailable("TRAIN_EXECUTOR=dask needs the dask extra: pip install 'tradebot[dask]'") from None
        try:
            client = await Client(address, asynchronous=True, timeout=timeout)
        except OSError as exc:
            raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        # the cluster's threads, asked of the scheduler: the client's cached view is empty at first, and a
        # zero here would let no fit be submitted at all
        threads = sum((await client.nthreads()).values())
        return cls(client, max(1, threads))

    def submit(self, job: FitJob) -> Awaitable[FitOutcome]:
        # pure=False: two jobs with equal bars (a retrain) must both run, not share a cached result
        future = self._client.submit(run_fit, job, key=f"tradebot-fit-{job.symbol}-{os.urandom(4).hex()}",
                                     pure=False)
        return _result(future)

    async def close(self) -> None:
        await self._client.close()


async def _result(future: object) -> FitOutcome:
    return await future  # type: ignore[misc]  # a distributed.Future is awaitable under an async client


def resolve_workers(settings: Settings, default: int) -> int:
    """TRAIN_WORKERS when set, else `default` (the caller's: all cores for `tradebot train`, 1 inside the
    running bot so its own loop is never starved)."""
    return max(1, settings.train_workers if settings.train_workers is not None else default)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


async def open_executor(settings: Settings, default_workers: int) -> FitExecutor:
    if settings.train_executor == "dask":
        assert settings.dask_scheduler_address is not None  # the settings validator guarantees it
        return await DaskExecutor.connect(settings.dask_scheduler_address)
    workers = resolve_workers(settings, default_workers)
    if settings.train_executor == "local" or workers == 1:
        # one worker gains nothing from a process but its start-up cost
        return PoolExecutor("local", ThreadPoolExecutor(max_workers=1, thread_name_prefix="fit"), 1)
    # spawn, never fork: forking a process with a running event loop and threads copies their locks
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    return PoolExecutor("processes", pool, workers)
