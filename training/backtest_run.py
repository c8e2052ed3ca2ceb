"""`tradebot backtest`: replay the walk-forward out-of-sample predictions over the available bars and
report what following the alerts would have done. Always reports, even when the answer is no edge."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd

from config import Settings
from core.marketdata import make_provider
from core.marketdata.archive import BarArchive
from core.model.features import atr, build_features
from training.labels import build_labels
from training.pipeline import label_params, load_training_bars
from training.walkforward import evaluate_walk_forward

REPORT_LINES = (
    ("bars", "out-of-sample bars"), ("threshold", "alert threshold"), ("alerts", "alerts"),
    ("long_alerts", "long alerts"), ("short_alerts", "short alerts"), ("hit_rate", "hit rate"),
    ("avg_r", "average R after costs"), ("avg_r_ci95", "average R, 95% session-bootstrap interval"),
    ("avg_gross_r", "average R before costs"), ("cost_per_share", "cost per share (round trip, $)"),
    ("avg_cost_r", "average cost R"), ("total_r", "total R"), ("max_drawdown_r", "max drawdown R"),
    ("verdict", "verdict"),
)


def format_backtest(report: dict, *, symbol: str, data_source: str) -> str:
    lines = []
    if data_source == "simulated":
        lines.append("[SIMULATED DATA: not real market prices]")
    lines.append(f"{symbol} walk-forward backtest (out-of-sample predictions only)")
    for key, label in REPORT_LINES:
        if key in report:
            val = report[key]
            if isinstance(val, list) and len(val) == 2:
                shown = f"[{val[0]:+.3f}, {val[1]:+.3f}]"
            else:
                shown = f"{val:.3f}" if isinstance(val, float) else "n/a" if val is None else val
            lines.append(f"  {label}: {shown}")
    cal = report.get("calibration") or {}
    # run_backtest gives one table per probability ({"win_probability": rows, "quality": rows}).
    tables = cal.items() if isinstance(cal, dict) else [("win_probability", cal)]
    for name, rows in tables:
        if not rows:
            continue
        lines.append(f"  calibration of {name.replace('_', ' ')} (predicted vs realised, by decile):")
        lines.append("    decile  predicted  realised  count")
        for row in rows:
            lines.append(f"    {row.get('decile', '?'):>6}  {_pct(row.get('predicted')):>9}  "
                         f"{_pct(row.get('realised')):>8}  {row.get('count', 0):>5}")
    return "\n".join(lines)


def _pct(value: object) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "n/a"


async def run_symbol_backtest(settings: Settings, archive: BarArchive, symbol: str, *, chart: Path | None,
                              as_json: bool) -> int:
    import sys

    from training.backtest import run_backtest

    provider = make_provider(settings)
    try:
        now = provider.now()
        bars = await load_training_bars(settings, provider, archive, symbol, now,
                                        lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        await provider.close()
    params = label_params(settings)

    def compute() -> dict:
        features = build_features(bars, settings.bar_minutes)
        labels = build_labels(bars, params, atr(bars))
        wf = evaluate_walk_forward(features, labels, params)
        return run_backtest(wf.oos, labels, threshold=settings.alert_threshold,
                            cooldown=pd.Timedelta(minutes=settings.alert_cooldown_minutes),
                            cost_per_share=settings.backtest_cost_per_share,
                            risk_per_share=params.stop_atr * atr(bars))

    report = await asyncio.to_thread(compute)
    if as_json:
        print(json.dumps(report, default=str))
    else:
        print(format_backtest(report, symbol=symbol, data_source=provider.source))
    if chart is not None:
        from charts.backtest_chart import render_backtest_chart

        png = render_backtest_chart(report.get("calibration", []), report.get("equity_curve", []),
                                    title=f"{symbol} walk-forward backtest", data_source=provider.source,
                                    window=report.get("window"))
        chart.parent.mkdir(parents=True, exist_ok=True)
        chart.write_bytes(png)
        print(f"Chart: {chart}")
    return 0
