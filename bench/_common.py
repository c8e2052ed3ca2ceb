"""Shared helpers for the bench scripts: the trained store, a simulated-market stack, process
figures (RSS, descriptors) and small statistics. Offline: every network peer is a local fake."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import psutil  # noqa: E402

from bot.services import Services, build_services  # noqa: E402
from config import Settings  # noqa: E402
from core.marketdata.simulated import SimulatedProvider  # noqa: E402
from tests.fakes.bot_stack import (  # noqa: E402
    OPEN_TIME,
    FixedClock,
    make_settings,
    sim_provider,
    trained_models_dir,
)

__all__ = ["OPEN_TIME", "ROOT", "FixedClock", "Stack", "bench_dir", "num_fds", "percentile", "print_table",
           "rss_mb", "summary_ms"]


def bench_dir(prefix: str) -> Path:
    """A temp folder removed at exit (a soak leaves ~900 MB of alert charts); TRADEBOT_BENCH_KEEP=1 keeps it."""
    path = Path(tempfile.mkdtemp(prefix=f"tradebot-bench-{prefix}-"))
    if not os.environ.get("TRADEBOT_BENCH_KEEP"):
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class Stack:
    """Settings over a private copy of the trained store (trained on first use, ~25 s), the
    simulated market on a settable clock, and the services with their models loaded."""

    def __init__(self, tmp: Path, now: datetime = OPEN_TIME, **overrides: object):
        self.settings: Settings = make_settings(tmp, **overrides)
        provider, clock = sim_provider(self.settings, now)
        self.provider: SimulatedProvider = provider
        self.clock: FixedClock = clock
        self.services: Services = build_services(self.settings, provider)

    @classmethod
    async def create(cls, tmp: Path, now: datetime = OPEN_TIME, **overrides: object) -> Stack:
        """Build (training the shared store in a thread first: it runs its own event loop) and load."""
        await asyncio.to_thread(trained_models_dir)
        return await cls(tmp, now, **overrides).load()

    async def load(self) -> Stack:
        report = await self.services.registry.reload()
        if report.missing or report.failed:
            raise SystemExit(f"models not loaded: missing={report.missing} failed={report.failed}")
        return self


def rss_mb(pid: int | None = None) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def num_fds(pid: int | None = None) -> int:
    return psutil.Process(pid).num_fds()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary_ms(seconds: Sequence[float]) -> tuple[float, float, float]:
    """(median, p95, max) in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return statistics.median(ms), percentile(ms, 95), max(ms)


def print_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                          strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
