"""Walk-forward metrics of the full training recipe on data with and without an edge.

Honest numbers: a pure random walk, and the simulated market with its planted pattern switched off,
must show no edge (AUC ~0.5, regressors no better than the naive baseline); the default simulated
market (planted intraday momentum, see core/marketdata/simulated.py) must show one.

    .venv/bin/python bench/honesty.py [--sessions 180]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import load_settings  # noqa: E402
from core.marketdata.simulated import SimulatedProvider  # noqa: E402
from core.model.features import atr, build_features  # noqa: E402
from core.types import NY  # noqa: E402
from tests.fakes.synthetic_bars import random_walk_bars  # noqa: E402
from training.labels import build_labels  # noqa: E402
from training.pipeline import label_params  # noqa: E402
from training.walkforward import evaluate_walk_forward  # noqa: E402

NOW = datetime(2026, 11, 24, 16, 30, tzinfo=NY)


def metrics_row(name: str, bars, settings) -> str:  # type: ignore[no-untyped-def]
    params = label_params(settings)
    wf = evaluate_walk_forward(build_features(bars, settings.bar_minutes), build_labels(bars, params, atr(bars)),
                               params)
    m = wf.metrics
    return (f"{name:34} {len(bars):>7,} {m['profit_target']['auc']:>8.3f} {m['trade_quality']['auc']:>8.3f} "
            f"{m['profit_target']['brier']:>7.3f} {m['future_high']['relative_mae']:>8.3f} "
            f"{m['future_low']['relative_mae']:>8.3f}")


async def sim_bars(edge: float, sessions: int):  # type: ignore[no-untyped-def]
    provider = SimulatedProvider(seed=7, planted_edge=edge, clock=lambda: NOW)
    bars = await provider.get_bars("SPY", datetime(2024, 1, 1, tzinfo=NY), NOW, "5min")
    days = sorted(set(bars.index.date))[-sessions:]
    return bars[bars.index.date >= days[0]]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=180)
    args = ap.parse_args()
    settings = load_settings(_env_file=None, market_data="simulated")
    print(f"{'data':34} {'bars':>7} {'AUC win':>8} {'AUC qual':>8} {'Brier':>7} {'MAE hi':>8} {'MAE lo':>8}")
    print("(AUC: walk-forward out of sample, 5 purged folds; MAE: relative to the naive baseline)")
    print(metrics_row("random walk", random_walk_bars(args.sessions, 5, seed=3), settings))
    print(metrics_row("simulated SPY, planted_edge=0", asyncio.run(sim_bars(0.0, args.sessions)), settings))
    print(metrics_row("simulated SPY, default (0.35)", asyncio.run(sim_bars(0.35, args.sessions)), settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
