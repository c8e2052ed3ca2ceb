"""Training cost for one symbol: features + labels + purged walk-forward + final fit on 180 sessions of
5-minute bars (~14,000 bars), generated synthetically. Target: < 20 s wall and < 1 GB peak RSS.

Run: .venv/bin/python bench/train.py [--sessions 180] [--seed 0]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.model.features import atr, build_features  # noqa: E402
from core.model.model_set import LabelParams  # noqa: E402
from tests.fakes.synthetic_bars import planted_pattern_bars  # noqa: E402
from training.labels import build_labels  # noqa: E402
from training.models import fit_model_set  # noqa: E402
from training.walkforward import evaluate_walk_forward  # noqa: E402

TARGET_SECONDS = 20.0
TARGET_MB = 1024.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=180)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    bars = planted_pattern_bars(n_sessions=args.sessions, bar_minutes=5, seed=args.seed)
    params = LabelParams()
    stages: list[tuple[str, float]] = []
    start = time.perf_counter()
    features = build_features(bars, 5)
    stages.append(("features", time.perf_counter()))
    labels = build_labels(bars, params, atr(bars))
    stages.append(("labels", time.perf_counter()))
    wf = evaluate_walk_forward(features, labels, params, seed=args.seed)
    stages.append(("walk-forward (5 folds)", time.perf_counter()))
    models = fit_model_set(features, labels, params, seed=args.seed)
    stages.append(("final fit", time.perf_counter()))
    total = time.perf_counter() - start
    size_kb = sum(len(b) for b in models.to_files().values()) / 1024

    print(f"bars: {len(bars):,} ({args.sessions} sessions of 5-minute bars)")
    previous = start
    for name, at in stages:
        print(f"  {name:<24} {at - previous:7.2f} s")
        previous = at
    print(f"wall time: {total:.2f} s (target < {TARGET_SECONDS:.0f} s)")
    print(f"peak RSS:  {peak_rss_mb():.0f} MB (target < {TARGET_MB:.0f} MB)")
    print(f"model files: {size_kb:.0f} KiB")
    for name in ("profit_target", "trade_quality"):
        print(f"  {name} walk-forward AUC {wf.metrics[name]['auc']}")
    ok = total < TARGET_SECONDS and peak_rss_mb() < TARGET_MB
    print("OK" if ok else "OVER TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
