"""Text of the command-line tools (`tradebot train`, `models`, `evaluate`, `backtest`, `archive --check`,
`levels-history`): tables for a terminal, not chat messages (those live in bot/formatting.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.formatting import SIMULATED_BANNER, _levels, _num
from core.options.snapshot import NO_OPTION_DATA, LevelsSnapshot
from core.types import NY

if TYPE_CHECKING:
    from core.marketdata.archive import ArchiveReport


SUMMARY_KEYS = ("profit_target.auc", "trade_quality.auc", "trade_quality.brier", "future_high.relative_mae",
                "future_low.relative_mae")


def version_summary(metrics: dict[str, Any], complete: bool) -> str:
    """One short line per version for `tradebot models`, e.g. "auc=0.612 brier=0.231"."""
    keys = [k for k in SUMMARY_KEYS if k in metrics] or sorted(metrics)
    parts = [f"{k}={metrics[k]:.3f}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}" for k in keys]
    text = " ".join(parts[:6])
    return text if complete else f"{text} (incomplete)".strip()


def _fmt(value: object, fmt: str = "{:.3f}") -> str:
    return fmt.format(value) if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _ci(value: object) -> str:
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return f"{value[0]:.2f}-{value[1]:.2f}"
    return "-"


def _at_80(m: dict) -> dict:
    return next((r for r in m.get("thresholds") or [] if r.get("threshold") == 80), {})


def _classifier_rows(models: dict[str, dict]) -> list[str]:
    head = (f"  {'classifier':<15}{'AUC':>7}{'AUC 95%':>11}{'Bskill':>8}{'Brier':>7}{'base':>7}{'max p':>7}"
            f"{'prec@80':>9}{'95%':>11}{'n@80':>6}")
    rows = [head]
    for name, m in models.items():
        at80 = _at_80(m)
        rows.append(f"  {name:<15}{_fmt(m.get('auc')):>7}{_ci(m.get('auc_ci95')):>11}"
                    f"{_fmt(m.get('brier_skill'), '{:+.3f}'):>8}{_fmt(m.get('brier')):>7}"
                    f"{_fmt(m.get('base_rate')):>7}{_fmt(m.get('max_probability'), '{:.2f}'):>7}"
                    f"{_fmt(m.get('precision_at_80')):>9}{_ci(at80.get('precision_ci95')):>11}"
                    f"{_fmt(m.get('count_at_80'), '{:d}'):>6}")
    return rows


def _direction_row(m: dict) -> str:
    return f"  direction (picking the side): AUC {_fmt(m.get('auc'))}, 95% {_ci(m.get('auc_ci95'))}, n {m.get('n', 0):,}"


def _edge_row(edge: dict | None) -> str:
    if not isinstance(edge, dict):
        return "  edge: not evaluated"
    state = "alerts ENABLED" if edge.get("alerts_enabled") else "alerts DISABLED: no demonstrated edge"
    return "\n".join([f"  edge: {state}", *(f"    {reason}" for reason in edge.get("reasons") or [])])


def _regressor_rows(models: dict[str, dict]) -> list[str]:
    # The regressors predict returns, so an MAE of 0.0012 is 0.12 % of the price.
    # rel vol: MAE / MAE of the volatility rule (scale x ATR% x time-of-day profile); < 1 beats it.
    rows = [f"  {'regressor':<15}{'MAE %':>8}{'naive %':>9}{'rel MAE':>9}{'rel vol':>9}"]
    for name, m in models.items():
        mae, base = m.get("mae"), m.get("baseline_mae")
        rows.append(f"  {name:<15}{_fmt(mae, '{:.3%}'):>8}{_fmt(base, '{:.3%}'):>9}"
                    f"{_fmt(m.get('relative_mae')):>9}{_fmt(m.get('relative_mae_vol')):>9}")
    return rows


def format_metrics_table(results: list, *, data_source: str) -> str:
    """Walk-forward metrics per symbol as two narrow tables, classifiers then regressors
    (results: training.pipeline.TrainResult). MAE is in % of price; rel MAE < 1 beats the naive baseline."""
    lines = []
    if data_source == "simulated":
        lines.append(f"[{SIMULATED_BANNER}]")
    for res in results:
        window = res.window or {}
        state = f"published {res.version}" if res.published else "NOT published"
        lines.append("")
        lines.append(f"{res.symbol} {res.timeframe} · {window.get('sessions', 0)} sessions, "
                     f"{window.get('bars', 0):,} bars · {state}")
        for reason in res.reasons:
            lines.append(f"  ! {reason}")
        for warning in res.warnings:
            lines.append(f"  ~ {warning}")
        models = {k: v for k, v in (res.metrics or {}).items() if isinstance(v, dict)}
        classifiers = {k: v for k, v in models.items() if ("auc" in v or "brier" in v) and k != "direction"}
        regressors = {k: v for k, v in models.items() if "mae" in v and k not in classifiers}
        if classifiers:
            lines += _classifier_rows(classifiers)
        if isinstance((res.metrics or {}).get("direction"), dict):
            lines.append(_direction_row(res.metrics["direction"]))
        if res.metrics:
            lines.append(_edge_row(getattr(res, "edge", None)))
        if regressors:
            lines += _regressor_rows(regressors)
    return "\n".join(lines).lstrip("\n")


def format_archive_report(report: ArchiveReport, *, limit: int = 10) -> str:
    """`tradebot archive SYMBOL --check`: coverage, then every kind of problem with its first few."""
    head = f"{report.symbol} {report.timeframe}"
    if report.bars == 0 or report.first is None or report.last is None:
        return f"{head}: archive is empty"
    lines = [f"{head}: {report.bars:,} bars in {report.sessions:,} sessions, "
             f"{report.first:%Y-%m-%d %H:%M} to {report.last:%Y-%m-%d %H:%M}"]

    def section(title: str, items: list[str]) -> None:
        lines.append(f"{title}: {len(items):,}")
        lines.extend(f"  {item}" for item in items[:limit])
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit:,} more")

    section("sessions with no bars", [d.isoformat() for d in report.missing_sessions])
    section("sessions with too few bars", [f"{d.isoformat()}: {have} of {want}"
                                           for d, have, want in report.short_sessions])
    section("bars the import rules now refuse", [f"{t:%Y-%m-%d %H:%M}: {why}" for t, why in report.refused])
    if report.refused:
        lines.append("repair: tradebot archive SYMBOL --drop FROM TO (whole sessions, ISO dates, inclusive)")
    return "\n".join(lines)


def format_evaluation(result: dict) -> str:
    """`tradebot evaluate` as text: the published model scored after its training window."""
    metrics = result.get("metrics") or {}
    window = metrics.get("window") or {}
    lines = []
    if result.get("data_source") == "simulated":
        lines.append(f"[{SIMULATED_BANNER}]")
    lines.append(f"{result.get('symbol')} model {result.get('version')}, trained through "
                 f"{str(window.get('trained_through', '?'))[:16]}, scored out of time on "
                 f"{window.get('sessions', 0)} sessions, {window.get('bars', 0):,} bars "
                 f"({str(window.get('start', '?'))[:10]}..{str(window.get('end', '?'))[:10]})")
    classifiers = {k: v for k, v in metrics.items() if k in ("profit_target", "trade_quality")}
    lines += _classifier_rows(classifiers)
    if isinstance(metrics.get("direction"), dict):
        lines.append(_direction_row(metrics["direction"]))
    regressors = {k: v for k, v in metrics.items() if k in ("future_high", "future_low")}
    lines += _regressor_rows(regressors)
    return "\n".join(lines)


def format_levels_history(symbol: str, snapshots: list[LevelsSnapshot], *, data_source: str) -> str:
    if data_source == "csv":
        return f"{symbol}: {NO_OPTION_DATA} (CSV data has no option chains)."
    if not snapshots:
        return f"{symbol}: no levels snapshots in that range."
    lines = [f"[{SIMULATED_BANNER}]"] if data_source == "simulated" else []
    lines.append(f"{symbol} levels snapshots ({len(snapshots)}), New York time:")
    for x in snapshots:
        lines.append(f"{x.taken_at.astimezone(NY):%Y-%m-%d %H:%M} spot {x.spot:.2f} · call wall {_num(x.call_wall)} · "
                     f"put wall {_num(x.put_wall)} · zero gamma {_num(x.zero_gamma)} · "
                     f"vanna S {_levels(x.vanna_support, 1)} R {_levels(x.vanna_resistance, 1)} · "
                     f"GEX {x.total_gex / 1e6:+.1f}M VEX {x.total_vex / 1e6:+.1f}M")
    lines.append(f"Convention: {snapshots[-1].convention}")
    return "\n".join(lines)


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
