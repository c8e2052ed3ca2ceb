"""Chart render timings (median and p95 over 30 renders) and, with --samples DIR, sample PNGs to look at.

    .venv/bin/python bench/charts.py [--runs 30] [--samples /tmp/chart_samples]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charts import (  # noqa: E402
    render_backtest_chart,
    render_levels_chart,
    render_performance_chart,
    render_prediction_chart,
)
from tests.fakes import chart_inputs as fx  # noqa: E402


def _cases() -> dict[str, Callable[[], bytes]]:
    day = fx.session_bars()
    both = fx.two_sessions()
    first = fx.two_sessions(n_today=1)
    nan_vix = fx.session_bars(vix=None)
    warn = ["model is 3 sessions old", "VIX data missing: features use the last known value",
            "option greeks are 20 minutes old", "spread wide"]
    calib, equity = fx.calibration_rows(), fx.equity_points()
    cum = [v for _, v in equity]
    return {
        "prediction_day": lambda: render_prediction_chart(fx.prediction(day), day, prev_close=597.4,
                                                          horizon_bars=6, bar_minutes=5),
        "prediction_two_sessions_short": lambda: render_prediction_chart(
            fx.prediction(both, direction="short", quality=71), both, prev_close=None, horizon_bars=6,
            bar_minutes=5),
        "prediction_first_bar": lambda: render_prediction_chart(fx.prediction(first, quality=52), first,
                                                                prev_close=None, horizon_bars=6, bar_minutes=5),
        "prediction_no_levels_nan_vix": lambda: render_prediction_chart(
            fx.prediction(nan_vix, levels=False, vix=None, warnings=warn), nan_vix, prev_close=None,
            horizon_bars=6, bar_minutes=5),
        "prediction_simulated": lambda: render_prediction_chart(fx.prediction(day, data_source="simulated"), day,
                                                                prev_close=597.4, horizon_bars=6, bar_minutes=5),
        "levels": lambda: render_levels_chart(fx.levels_report(), data_source="tradier"),
        "levels_empty_simulated": lambda: render_levels_chart(fx.levels_report(empty=True), data_source="simulated"),
        "backtest": lambda: render_backtest_chart(calib, equity, title="SPY backtest · Aug–Nov 2026",
                                                  data_source="simulated"),
        "backtest_empty": lambda: render_backtest_chart([], [], title="SPY backtest", data_source="tradier"),
        "performance": lambda: render_performance_chart(calib, cum, title="Live performance · 30 days"),
        "performance_empty": lambda: render_performance_chart([], [], title="Live performance"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--samples", type=Path, default=None, help="write one PNG per case here")
    parser.add_argument("--only", default=None, help="substring of the case names to run")
    args = parser.parse_args()
    cases = {k: v for k, v in _cases().items() if args.only is None or args.only in k}
    if args.samples:
        args.samples.mkdir(parents=True, exist_ok=True)
    for name, render in cases.items():
        png = render()  # warm-up: font cache, first canvas
        if args.samples:
            (args.samples / f"{name}.png").write_bytes(png)
        times, cpu = [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            render()
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        # CPU time next to wall time: on a shared machine the wall clock also measures other processes.
        print(f"{name:30s} wall median {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms · "
              f"cpu median {statistics.median(cpu):6.1f} ms · {len(png) / 1024:4.0f} KiB")


if __name__ == "__main__":
    main()
