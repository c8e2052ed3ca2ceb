"""Plain-text renderings of predictions, levels and training metrics, shared by the CLI and the chats.

Plain text only: each chat adapter escapes it for its own markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from core.clock import wall_clock_ny
from core.options.level_scorecard import KindStats, LevelScorecard, ScorecardWindow
from core.options.snapshot import NO_OPTION_DATA, LevelsSnapshot
from core.types import NY, Level, LevelsReport, Prediction

if TYPE_CHECKING:
    from core.marketdata.archive import ArchiveReport

SIMULATED_BANNER = "SIMULATED DATA: not real market prices"
INVALID_UTF8_LINE = "That line is not valid UTF-8 text; it was ignored."


def alert_threshold_line(threshold: float) -> str:
    """The caption line naming this recipient's own threshold (the alert chart marks none)."""
    return f"Your alert threshold: score ≥ {threshold:g}"


def mark_if_simulated(text: str, data_sources: Iterable[str]) -> str:
    """Every output made from simulated data says so, first: the README promises it."""
    return f"{SIMULATED_BANNER}\n{text}" if "simulated" in set(data_sources) else text


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


NO_SIDE = "no side favoured"


def side_text(pred: Prediction) -> str:
    return pred.direction.upper() if pred.side_favoured else NO_SIDE


def prediction_title(pred: Prediction) -> str:
    return f"{pred.symbol} {side_text(pred)} · score {pred.quality_score:.0f}/100"


def _interval_text(ci: object) -> str:
    """'±3 %' from a [low, high] proportion interval (half its width), or ''."""
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(isinstance(v, int | float) for v in ci):
        return f"±{100 * (ci[1] - ci[0]) / 2:.0f} %"
    return ""


def score_history_text(score: float, row: dict | None) -> str | None:
    """What a score meant in walk-forward testing, from its bucket's stats."""
    if not row:
        return None
    low, high, n = row.get("low"), row.get("high"), row.get("count") or 0
    if not n or row.get("precision") is None:
        return (f"score {score:.0f}: in walk-forward testing no setup scored {low}–{high}; "
                "nothing is known about this score")
    spread = _interval_text(row.get("precision_ci95"))
    return (f"score {score:.0f}: in walk-forward testing, setups scoring {low}–{high} worked "
            f"{100 * row['precision']:.0f} % of the time ({spread + ', ' if spread else ''}n = {n:,})")


def threshold_meaning_text(threshold: float, row: dict | None) -> str:
    """What alerts at a threshold meant out of sample (row: core.edge.threshold_stats)."""
    if not row:
        return "Out of sample: no threshold statistics stored for this model (retrain)."
    at = row.get("threshold")
    if row.get("lowest_tabulated"):
        at = f"{at} (the lowest threshold tabulated)"
    if not row.get("count"):
        top = row.get("max_score")
        seen = f"; the highest score seen was {top:.0f}" if isinstance(top, int | float) else ""
        return f"Out of sample at ≥ {at}: no setup ever scored that high{seen}, so no alert would have fired."
    spread = _interval_text(row.get("precision_ci95"))
    return (f"Out of sample at ≥ {at}: {row.get('per_session', 0):.1f} alerts per session, "
            f"{100 * (row.get('precision') or 0):.0f} % worked{', ' + spread if spread else ''}.")


def format_prediction(pred: Prediction, *, horizon_minutes: int, now: datetime | None = None,
                      full: bool = True) -> str:
    now = now or wall_clock_ny()
    lines = []
    if pred.data_source == "simulated":
        lines.append(SIMULATED_BANNER)
    lines += [
        f"{pred.symbol} as of {pred.as_of.astimezone(NY):%a %d %b %Y %H:%M} ET · price {pred.price:.2f}"
        + (f" · VIX {pred.vix:.2f}" if pred.vix is not None else ""),
        f"Trade quality: {pred.quality_score:.0f}/100 · "
        + (f"direction {pred.direction.upper()}" if pred.side_favoured else NO_SIDE),
        f"Win probability: {100 * pred.win_probability:.0f}%",
        f"Next {horizon_minutes} min: high {pred.predicted_high:.2f} / low {pred.predicted_low:.2f}",
        f"Target {pred.target:.2f} · stop {pred.stop:.2f}",
        f"Vanna support: {_levels(pred.vanna_support, 3 if full else 1)}",
        f"Vanna resistance: {_levels(pred.vanna_resistance, 3 if full else 1)}",
    ]
    if full:
        lines.append(f"Call wall {_num(pred.call_wall)} · put wall {_num(pred.put_wall)} · "
                     f"zero gamma {_num(pred.zero_gamma)}")
    history = score_history_text(pred.quality_score, pred.score_history)
    if history:
        lines.append(history)
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
    if report.other_convention is not None:
        lines += _other_convention_lines(report)
    skipped = sum(report.skipped.values())
    if skipped:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items()) if v)
        lines.append(f"Skipped {skipped} contracts ({reasons})")
    return "\n".join(lines)


def _shift(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "none" if theirs is None else f"{theirs:.2f}"
    return f"{theirs:.2f} ({theirs - ours:+.2f})"


def _top(levels: list[Level]) -> float | None:
    return levels[0].price if levels else None


def _other_convention_lines(report: LevelsReport) -> list[str]:
    """How much the dealer-positioning assumption matters: the same chain under the other convention."""
    other = report.other_convention
    assert other is not None
    return [
        f"If {other.convention}: zero gamma {_shift(report.zero_gamma, other.zero_gamma)} · "
        f"vanna support {_shift(_top(report.vanna_support), _top(other.vanna_support))} · "
        f"resistance {_shift(_top(report.vanna_resistance), _top(other.vanna_resistance))} "
        "(change vs the configured convention; walls are convention-free)",
    ]


_KIND_NAMES = {
    "call_wall": "Call wall", "put_wall": "Put wall", "zero_gamma": "Zero gamma",
    "vanna_support": "Vanna support", "vanna_resistance": "Vanna resist.",
    "round_number": "Round numbers*", "prior_day_high_low": "Prior day H/L*",
}


def _kind_row(k: KindStats) -> str:
    if k.hold_rate is None or k.ci_low is None or k.ci_high is None:
        rate = "   n/a"
    else:
        rate = f"{100 * k.hold_rate:5.0f}% [{100 * k.ci_low:.0f}-{100 * k.ci_high:.0f}]"
    return f"{_KIND_NAMES.get(k.kind, k.kind):<15}{k.touches:>4} {k.holds:>3}/{k.breaks:<3}{k.unresolved:>3}  {rate}"


def _window_lines(title: str, window: ScorecardWindow) -> list[str]:
    if window.sessions == 0:
        return [f"{title}: no sessions with snapshots yet"]
    span = f"{window.first_session:%d %b} – {window.last_session:%d %b %Y}"
    lines = [f"{title}: {window.sessions} sessions, {span}",
             f"{'level':<15}{'tch':>4} {'H':>3}/{'B':<3}{'unr':>3}  hold rate [95% CI]"]
    return lines + [_kind_row(k) for k in window.kinds]


def format_level_scorecard(card: LevelScorecard | None, *, data_source: str) -> str:
    """`/performance levels`: hold rates with Wilson intervals, the naive baseline (*) beside them."""
    if card is None:
        return f"Level scorecard: {NO_OPTION_DATA} ({data_source} data has no option chains)."
    lines = [f"[{SIMULATED_BANNER}]"] if data_source == "simulated" else []
    lines.append("Options levels: touch = bar within LEVEL_TOUCH_ATR of the level; hold = 0.5 ATR back away "
                 "before a close 0.5 ATR through (break). H/B = holds/breaks, unr = unresolved at the close.")
    lines += _window_lines("Last 20 sessions", card.last_20_sessions)
    lines += _window_lines("All time", card.all_time)
    lines.append("* naive baseline. A level kind is worth drawing only if it holds more often than these.")
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
    return f"  edge: {state} ({'; '.join(edge.get('reasons') or [])})"


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


def duration_text(seconds: float) -> str:
    """'45 s', '12 min', '3.5 h': a rough outage length for people."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def transport_status(name: str, up: bool, down_seconds: float, reason: str) -> str:
    if up:
        return f"{name}: connected"
    if reason == "starting":  # the first attempt has not finished yet
        return f"{name}: connecting"
    return f"{name}: DOWN for {duration_text(down_seconds)} ({reason}), reconnecting"


def transport_back_text(name: str, outage_seconds: float) -> str:
    return f"{name} was unreachable for {duration_text(outage_seconds)} and works again; alerts held meanwhile go out now."


def rate_limited_text(wait_seconds: float) -> str:
    return f"Too many requests from this chat: try again in {wait_seconds:.0f} s."


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


_CROSS_NAMES = {"call_wall": "call wall", "put_wall": "put wall", "zero_gamma": "zero gamma"}


def level_subscribed_text(symbols: list[str], *, has_option_data: bool) -> str:
    text = (f"Subscribed to level alerts for {', '.join(symbols)}: one message when a bar closes across the "
            "call wall, the put wall or zero gamma, once per level and direction per session.")
    if not has_option_data:
        text += f" This data source has {NO_OPTION_DATA}: no level alerts until it has."
    return text


def level_alert_title(symbol: str, kind: str, direction: str) -> str:
    return f"LEVEL · {symbol} closed {'above' if direction == 'up' else 'below'} the {_CROSS_NAMES.get(kind, kind)}"


def level_alert_text(cross: dict, edge_line: str, prediction_text: str | None) -> str:
    """`cross` is LevelCross.to_dict(); the model's current prediction follows, when there is one."""
    start = datetime.fromisoformat(str(cross["bar_start"])).astimezone(NY)
    close = datetime.fromisoformat(str(cross["bar_close"])).astimezone(NY)
    drawn = datetime.fromisoformat(str(cross["snapshot_at"])).astimezone(NY)
    name = _CROSS_NAMES.get(str(cross["level_kind"]), str(cross["level_kind"]))
    lines = [f"{cross['symbol']} bar {start:%H:%M}-{close:%H:%M} ET opened {cross['open']:.2f} and closed "
             f"{cross['close']:.2f}, {'above' if cross['crossing'] == 'up' else 'below'} the {name} "
             f"{cross['level']:.2f} (levels of {drawn:%H:%M} ET).",
             f"Model: {edge_line}."]
    if prediction_text:
        lines += ["", prediction_text]
    return "\n".join(lines)
