"""Plain-text renderings of predictions, levels and training metrics, shared by the CLI and the chats.

Plain text only: each chat adapter escapes it for its own markup.
"""

from __future__ import annotations

from datetime import datetime

from core.types import NY, Level, LevelsReport, Prediction

SIMULATED_BANNER = "SIMULATED DATA: not real market prices"


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _levels(levels: list[Level], n: int = 3) -> str:
    if not levels:
        return "none"
    return ", ".join(f"{lv.price:.2f} ({lv.strength:.2f})" for lv in levels[:n])


def age_text(trained_at: str, now: datetime) -> str:
    try:
        then = datetime.fromisoformat(trained_at)
    except ValueError:
        return "unknown age"
    hours = max((now - then).total_seconds() / 3600.0, 0.0)
    return f"{hours:.0f} h old" if hours < 48 else f"{hours / 24:.0f} days old"


def prediction_title(pred: Prediction) -> str:
    return f"{pred.symbol} {pred.direction.upper()} · score {pred.quality_score:.0f}/100"


def format_prediction(pred: Prediction, *, horizon_minutes: int, now: datetime | None = None,
                      full: bool = True) -> str:
    now = now or datetime.now(NY)
    lines = []
    if pred.data_source == "simulated":
        lines.append(SIMULATED_BANNER)
    lines += [
        f"{pred.symbol} as of {pred.as_of.astimezone(NY):%a %d %b %Y %H:%M} ET · price {pred.price:.2f}"
        + (f" · VIX {pred.vix:.2f}" if pred.vix is not None else ""),
        f"Trade quality: {pred.quality_score:.0f}/100 · direction {pred.direction.upper()}",
        f"Win probability: {100 * pred.win_probability:.0f}%",
        f"Next {horizon_minutes} min: high {pred.predicted_high:.2f} / low {pred.predicted_low:.2f}",
        f"Target {pred.target:.2f} · stop {pred.stop:.2f}",
        f"Vanna support: {_levels(pred.vanna_support, 3 if full else 1)}",
        f"Vanna resistance: {_levels(pred.vanna_resistance, 3 if full else 1)}",
    ]
    if full:
        lines.append(f"Call wall {_num(pred.call_wall)} · put wall {_num(pred.put_wall)} · "
                     f"zero gamma {_num(pred.zero_gamma)}")
    lines.append(f"Model {pred.model_version} ({age_text(pred.model_trained_at, now)}) · data: {pred.data_source}")
    for w in pred.warnings:
        lines.append(f"⚠ {w}")
    return "\n".join(lines)


def format_levels(report: LevelsReport, *, data_source: str) -> str:
    lines = []
    if data_source == "simulated":
        lines.append(SIMULATED_BANNER)
    lines += [
        f"{report.symbol} options levels as of {report.as_of.astimezone(NY):%a %d %b %H:%M} ET · spot {report.spot:.2f}",
        f"Call wall {_num(report.call_wall)} · put wall {_num(report.put_wall)} · "
        f"zero gamma {_num(report.zero_gamma)}",
        f"Vanna support: {_levels(report.vanna_support)}",
        f"Vanna resistance: {_levels(report.vanna_resistance)}",
        f"Expirations: {', '.join(d.isoformat() for d in report.expirations) or 'none'}",
        f"Convention: {report.convention}",
    ]
    skipped = sum(report.skipped.values())
    if skipped:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items()) if v)
        lines.append(f"Skipped {skipped} contracts ({reasons})")
    return "\n".join(lines)


def _fmt_metric(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None:
        return "-"
    return str(value)


def format_metrics_table(results: list, *, data_source: str) -> str:
    """A table of walk-forward metrics, one block per symbol (results: training.pipeline.TrainResult)."""
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
        metrics = res.metrics or {}
        models = {k: v for k, v in metrics.items() if isinstance(v, dict)}
        if not models:
            continue
        columns: list[str] = []
        for m in models.values():
            for key, val in m.items():
                if key not in columns and not isinstance(val, dict | list):
                    columns.append(key)
        width = max(len(k) for k in models) + 2
        lines.append("  " + "model".ljust(width) + "".join(c[:12].rjust(13) for c in columns))
        for name, m in models.items():
            row = "  " + name.ljust(width)
            row += "".join(_fmt_metric(m.get(c)).rjust(13) for c in columns)
            lines.append(row)
    return "\n".join(lines).lstrip("\n")
