"""`tradebot train` wall time for many symbols with 1 and with N fit workers, on the simulated market.

Each run trains every symbol from scratch into a fresh store (the gate has nothing to compare with, so
every symbol publishes) at the same fixed moment, so the runs do the same work; only the executor's
worker count differs. Also checks that every run published byte-identical model files.

Run: .venv/bin/python bench/train_fanout.py [--symbols 50] [--train-days 40] [--num-trees 200] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OPEN_TIME, FixedClock, bench_dir  # noqa: E402
from core.marketdata.simulated import SimulatedProvider  # noqa: E402
from core.stores import open_store  # noqa: E402
from tests.fakes.bot_stack import base_settings  # noqa: E402
from training.pipeline import train_symbols  # noqa: E402


def symbol_names(n: int) -> list[str]:
    base = ["SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "AMZN", "META", "TSLA"]
    return (base + [f"S{i:03d}" for i in range(n)])[:n]


async def run(symbols: list[str], train_days: int, num_trees: int, workers: int, executor: str) -> tuple[float, dict, int]:
    root = bench_dir(f"train-fanout-{workers}-")
    settings = base_settings(root, symbols=symbols, train_days=train_days, train_workers=workers, train_num_trees=num_trees,
                             train_executor=executor)
    store, archive = open_store(settings)
    provider = SimulatedProvider(seed=settings.simulated_seed, symbols=symbols, clock=FixedClock(OPEN_TIME))
    start = time.perf_counter()
    results = await train_symbols(settings, store, archive, provider=provider, now=OPEN_TIME,
                                  progress=lambda m: print(f"    {m}", file=sys.stderr) if m.startswith("[") else None)
    wall = time.perf_counter() - start
    checksums = {r.symbol: store.load(r.symbol, settings.timeframe).manifest["files"]
                 for r in results if r.published}
    return wall, checksums, sum(r.published for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--train-days", type=int, default=40)
    parser.add_argument("--num-trees", type=int, default=200, help="TRAIN_NUM_TREES")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--executor", default="processes", choices=["local", "processes"])
    args = parser.parse_args()

    symbols = symbol_names(args.symbols)
    print(f"{len(symbols)} symbols, TRAIN_DAYS={args.train_days}, TRAIN_NUM_TREES={args.num_trees}, simulated market, executor {args.executor}")
    rows, first = [], None
    for workers in args.workers:
        wall, checksums, published = asyncio.run(run(symbols, args.train_days, args.num_trees, workers, args.executor))
        same = "reference" if first is None else ("identical" if checksums == first else "DIFFERENT")
        first = first or checksums
        rows.append((workers, wall, published, same))
        print(f"  workers={workers}: {wall:6.1f} s wall, {wall / len(symbols):5.2f} s/symbol, "
              f"{published}/{len(symbols)} published, model files {same}", flush=True)
    base = rows[0][1]
    for workers, wall, _, _ in rows[1:]:
        print(f"  speed-up {rows[0][0]} -> {workers} workers: {base / wall:.2f}x")
    return 0 if all(r[3] != "DIFFERENT" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
