"""One full /predict: Predictor.predict (bars, levels, features, 4 models) + Services.prediction_png,
with the models loaded and the market data already in memory, on SPY at a fixed open-market time.

Three paths, each timed over --runs runs after one warm-up:
  cached    the options levels come from the predictor's 60 s cache and the last bar's features
            and model outputs are reused (any repeat within the same bar and minute)
  uncached  `predictor._levels_cache` is cleared first, so the chain is fetched and the levels
            recomputed (the first /predict of a minute)
  new bar   both caches are cleared: features, models, chain and levels all computed (the first
            /predict after a bar closes)
Targets (2 cores): median < 150 ms, p95 < 300 ms.

    .venv/bin/python bench/predict.py [--runs 50] [--symbol SPY] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import OPEN_TIME, Stack, bench_dir, load_line, print_table, summary_ms

TARGET_MEDIAN_MS = 150.0
TARGET_P95_MS = 300.0


class Timed:
    """Wraps an async callable and keeps the wall time of each call (for the levels' share)."""

    def __init__(self, fn: Callable[..., Awaitable[Any]]):
        self.fn = fn
        self.times: list[float] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await self.fn(*args, **kwargs)
        finally:
            self.times.append(time.perf_counter() - t0)


async def measure(stack: Stack, symbol: str, runs: int, clear_levels: bool,
                  clear_scores: bool = False) -> dict[str, list[float]]:
    predictor, services = stack.services.predictor, stack.services
    levels = Timed(predictor.levels)
    predictor.levels = levels  # type: ignore[method-assign]  # predict() calls self.levels
    out: dict[str, list[float]] = {"total": [], "predict": [], "chart": [], "cpu": []}
    try:
        for _ in range(runs):
            if clear_levels:
                predictor._levels_cache.clear()
            if clear_scores:
                predictor._scored.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            bundle = await predictor.predict(symbol, now=OPEN_TIME)
            t1 = time.perf_counter()
            png = await services.prediction_png(bundle)
            t2 = time.perf_counter()
            assert png.startswith(b"\x89PNG") and bundle.levels is not None, "prediction without levels"
            out["total"].append(t2 - t0)
            out["predict"].append(t1 - t0)
            out["chart"].append(t2 - t1)
            out["cpu"].append(time.process_time() - c0)
    finally:
        del predictor.levels  # back to the class method
    out["levels"] = levels.times
    return out


async def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    stack = await Stack.create(bench_dir("predict"))
    print(f"setup (trained store copy, models loaded): {time.perf_counter() - t0:.1f} s")
    predictor = stack.services.predictor
    # Warm-up: the first call fetches ~38 days of bars, generates the simulated market, fills the
    # level cache and loads matplotlib's fonts. None of that is the steady state we measure.
    t0 = time.perf_counter()
    bundle = await predictor.predict(args.symbol, now=OPEN_TIME)
    await stack.services.prediction_png(bundle)
    strikes = len(bundle.levels.strikes) if bundle.levels else 0
    print(f"warm-up (first prediction, cold caches): {(time.perf_counter() - t0) * 1000:.0f} ms; "
          f"{len(bundle.bars)} bars in memory, levels over {strikes} strikes")

    results = {}
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        # cProfile sees only the thread that enabled it: run the to_thread work inline instead.
        async def inline(fn: Callable[..., Any], /, *a: Any, **kw: Any) -> Any:
            return fn(*a, **kw)

        asyncio.to_thread = inline  # type: ignore[assignment]
    for label, clear, clear_scores in (("cached levels", False, False), ("uncached levels", True, False),
                                       ("new bar", True, True)):
        if profiler:
            profiler.enable()
        results[label] = await measure(stack, args.symbol, args.runs, clear, clear_scores)
        if profiler:
            profiler.disable()

    rows = []
    ok = True
    for label, r in results.items():
        med, p95, worst = summary_ms(r["total"])
        ok &= med < TARGET_MEDIAN_MS and p95 < TARGET_P95_MS
        chart_med = statistics.median(r["chart"]) * 1000
        lev_med = statistics.median(r["levels"]) * 1000
        rows.append([label, f"{med:.1f}", f"{p95:.1f}", f"{worst:.1f}",
                     f"{statistics.median(r['cpu']) * 1000:.1f}",
                     f"{statistics.median(r['predict']) * 1000:.1f}",
                     f"{lev_med:.1f} ({lev_med / med:.0%})", f"{chart_med:.1f} ({chart_med / med:.0%})"])
    print(f"\n{args.symbol} at {OPEN_TIME:%Y-%m-%d %H:%M:%S %Z}, {args.runs} runs per path; times in ms")
    print_table(rows, ["path", "median", "p95", "max", "cpu med", "predict med", "levels med (share)",
                       "chart med (share)"])
    print(f"targets: median < {TARGET_MEDIAN_MS:.0f} ms, p95 < {TARGET_P95_MS:.0f} ms -> "
          f"{'OK' if ok else 'OVER TARGET'}")
    print(load_line())
    if profiler:
        print("\ncProfile of both paths (thread work run inline), top 30 by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        print("top 20 by own time:")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    await stack.services.close()
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--symbol", default="SPY")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the measured runs")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
