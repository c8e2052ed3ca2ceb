"""Walk-forward metrics of the full training recipe on data with and without an edge.

Honest numbers: a pure random walk, and the simulated market with its planted pattern switched off,
must show no edge (AUC interval around 0.5, Brier skill ~0, no score near 80, alerts disabled); the
default simulated market (planted intraday momentum, see core/marketdata/simulated.py) must show one,
with alerts enabled. Prints a markdown table (the README's).

    .venv/bin/python bench/honesty.py [--sessions 180]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import load_settings  # noqa: E402
from core.marketdata.simulated import SimulatedProvider  # noqa: E402
from core.model.features import atr, build_features  # noqa: E402
from core.types import NY  # noqa: E402
from tests.fakes.synthetic_bars import random_walk_bars  # noqa: E402
from training.gate import edge_verdict  # noqa: E402
from training.labels import build_labels  # noqa: E402
from training.pipeline import label_params  # noqa: E402
from training.walkforward import evaluate_walk_forward  # noqa: E402

NOW = datetime(2026, 11, 24, 16, 30, tzinfo=NY)
DEFAULT_EDGE = inspect.signature(SimulatedProvider).parameters["planted_edge"].default


def _ci(values: object) -> str:
    return f"[{values[0]:.3f}, {values[1]:.3f}]" if isinstance(values, list) and len(values) == 2 else "n/a"


def _num(value: object, fmt: str = "{:.3f}") -> str:
    return fmt.format(value) if isinstance(value, int | float) else "n/a"


COLUMNS = ["data", "bars", "AUC win [95%]", "AUC quality [95%]", "time-of-day AUC win / qual.",
           "Brier skill win / qual.", "max p qual.",
           "≥80 per session, precision [95%]", "direction AUC [95%]", "alerts", "MAE high / naive (/ vol)",
           "MAE low / naive (/ vol)"]


def metrics_row(name: str, bars, settings) -> list[str]:  # type: ignore[no-untyped-def]
    params = label_params(settings)
    wf = evaluate_walk_forward(build_features(bars, settings.bar_minutes), build_labels(bars, params, atr(bars)),
                               params)
    m = wf.metrics
    win, qual, direction = m["profit_target"], m["trade_quality"], m["direction"]
    at80 = next(r for r in qual["thresholds"] if r["threshold"] == 80)
    prec = (f"{at80['per_session']:.2f}, {at80['precision']:.2f} {_ci(at80['precision_ci95'])}"
            if at80["count"] else "0 (none)")

    def mae(key: str) -> str:
        vol = m[key].get("relative_mae_vol")  # the volatility baseline, where the regressors report it
        return _num(m[key]["relative_mae"]) + (f" / {vol:.3f}" if isinstance(vol, int | float) else "")

    edge = edge_verdict(m)["alerts_enabled"]
    return [name, f"{len(bars):,}", f"{_num(win['auc'])} {_ci(win['auc_ci95'])}",
            f"{_num(qual['auc'])} {_ci(qual['auc_ci95'])}",
            f"{_num(win.get('auc_time_of_day'))} / {_num(qual.get('auc_time_of_day'))}",
            f"{_num(win['brier_skill'], '{:+.4f}')} / {_num(qual['brier_skill'], '{:+.4f}')}",
            _num(qual["max_probability"]), prec, f"{_num(direction['auc'])} {_ci(direction['auc_ci95'])}",
            "enabled" if edge else "disabled", mae("future_high"), mae("future_low")]


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
    rows = [
        metrics_row("random walk", random_walk_bars(args.sessions, 5, seed=3), settings),
        metrics_row("simulated SPY, planted_edge=0", asyncio.run(sim_bars(0.0, args.sessions)), settings),
        metrics_row(f"simulated SPY, default planted edge ({DEFAULT_EDGE:g})",
                    asyncio.run(sim_bars(DEFAULT_EDGE, args.sessions)), settings),
    ]
    print(f"{args.sessions} sessions of 5-minute bars; walk-forward out of sample, 5 purged folds; 95% intervals "
          "resample sessions (AUC) or are Wilson (precision); MAE relative to the naive baseline "
          "(and to the volatility baseline)")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
