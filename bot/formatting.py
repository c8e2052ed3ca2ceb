"""Plain-text renderings of predictions, levels and training metrics, shared by the CLI and the chats.

Plain text only: each chat adapter escapes it for its own markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from bot.scorecard import MIN_SCORED
from bot.state import PredictionRow
from core.clock import wall_clock_ny
from core.options.level_scorecard import KindStats, LevelScorecard, ScorecardWindow
from core.options.snapshot import NO_OPTION_DATA
from core.types import NY, Level, LevelsReport, Prediction

if TYPE_CHECKING:
    from bot.digest import Digest
    from bot.state.digests import DeliveredAlert

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


# ---- the live scorecard, /status and /log

def _rate_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _r_text(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2f}R"


def _scorecard_window_lines(label: str, w: dict[str, Any], threshold: float) -> list[str]:
    lines = [f"{label}: {w['scored']} scored of {w['predictions']} predictions, {w['alerts']} alerts"]
    if w["scored"] == 0:
        lines.append("  nothing scored yet")
        return lines
    if w["scored"] < MIN_SCORED:
        lines.append(f"  too little data to judge ({w['scored']} scored, {MIN_SCORED} needed)")
    lines.append(f"  alerts: hit {_rate_pct(w['alert_hit_rate'])} of {w['alerts_scored']}, avg {_r_text(w['alert_avg_r'])}")
    lines.append(
        f"  score >= {threshold:g}: hit {_rate_pct(w['high_quality_hit_rate'])} of {w['high_quality_scored']}, "
        f"avg {_r_text(w['high_quality_avg_r'])}"
    )
    lines.append(f"  all: hit {_rate_pct(w['hit_rate'])}, avg {_r_text(w['avg_r'])}")
    mae = w["mae"]
    if mae["n"]:
        verdict = "model better" if mae["beats_naive"] else "naive better"
        lines.append(
            f"  high/low error: model {mae['model_high']:.2f}/{mae['model_low']:.2f} vs naive "
            f"{mae['naive_high']:.2f}/{mae['naive_low']:.2f} ({verdict}, n={mae['n']})"
        )
    return lines


def format_scorecard(card: dict[str, Any]) -> str:
    """A short plain-text scorecard for a chat message."""
    threshold = card["threshold"]
    all_time = card["all_time"]
    if all_time["scored"] == 0:
        return (f"Scorecard: too little data - no prediction has been scored yet "
                f"({all_time['predictions']} logged; outcomes are known once each horizon ends).")
    lines = ["Scorecard (hit = target before stop; R = risk to the stop)"]
    lines += _scorecard_window_lines(f"Last {card['last_sessions']} sessions", card["recent"], threshold)
    lines += _scorecard_window_lines("All time", all_time, threshold)
    buckets = [b for b in all_time["calibration"] if b["count"]]
    if buckets:
        parts = [f"{b['bucket']}: {_rate_pct(b['predicted'])}->{_rate_pct(b['realised'])} (n={b['count']})" for b in buckets]
        lines.append("Calibration, predicted->realised win rate: " + "; ".join(parts))
    return "\n".join(lines)


def metric_summary(metrics: dict) -> str:
    parts = []
    for name, m in metrics.items():
        if not isinstance(m, dict):
            continue
        if isinstance(m.get("auc"), int | float):
            brier, ci = m.get("brier"), m.get("auc_ci95")
            parts.append(f"{name} AUC {m['auc']:.3f}"
                         + (f" [{ci[0]:.3f}–{ci[1]:.3f}]" if isinstance(ci, list) and len(ci) == 2 else "")
                         + (f" Brier {brier:.3f}" if isinstance(brier, int | float) else ""))
        elif isinstance(m.get("relative_mae"), int | float):  # the key training/walkforward.py writes
            vol = m.get("relative_mae_vol")
            parts.append(f"{name} MAE/naive {m['relative_mae']:.2f}"
                         + (f", /volatility rule {vol:.2f}" if isinstance(vol, int | float) else ""))
    return "walk-forward: " + ("; ".join(parts) if parts else "n/a")


def log_line(r: PredictionRow) -> str:
    outcome, outcome_r = r.first_hit, r.outcome_r
    result = "pending" if outcome is None else f"{outcome} {outcome_r:+.2f}R" if outcome_r is not None else str(outcome)
    return (f"{r.as_of:%Y-%m-%d %H:%M} {r.symbol} {r.direction.upper()} score {r.quality_score:.0f} "
            f"win {100 * r.win_probability:.0f}% → {result}")


def digest_subscribed_text(added: bool, open_at: time, close_offset_minutes: int) -> str:
    first = "This chat now gets" if added else "This chat already gets"
    return (f"{first} the digests on every trading day: the pre-open brief at {open_at:%H:%M} ET and the "
            f"close recap {close_offset_minutes} min after the close. /unsubscribe digest stops them.")


def digest_unsubscribed_text(removed: bool) -> str:
    return "Digests stopped for this chat." if removed else "This chat was not getting the digests."


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def _alert_outcome(a: DeliveredAlert) -> str:
    if a.kind == "level":
        return "a level alert, no trade to score"
    if a.first_hit is None:
        return "outcome pending"
    if a.first_hit == "none":
        return f"neither target nor stop ({a.outcome_r:+.2f} R)" if a.outcome_r is not None else "no outcome"
    return f"{a.first_hit} hit ({a.outcome_r:+.2f} R)" if a.outcome_r is not None else f"{a.first_hit} hit"


def _alert_line(a: DeliveredAlert) -> str:
    when = datetime.fromisoformat(a.created_at).astimezone(NY)
    score = "no score" if a.quality_score is None else f"score {a.quality_score:.0f}"
    return f"  {when:%H:%M} {a.title or a.symbol} · {score}: {_alert_outcome(a)}"


def digest_title(digest: Digest) -> str:
    what = "Pre-open brief" if digest.kind == "open" else "Close recap"
    return f"{what} · {digest.day:%a %d %b %Y}"


def format_brief(digest: Digest) -> str:
    lines = []
    for r in digest.brief:
        gap = r.gap_note if r.gap is None else f"pre-market gap {_signed(r.gap)}"
        lines.append(f"{r.symbol}: last close {_num(r.last_close)} · {gap}")
        if r.levels_note:
            lines.append(f"  levels: {r.levels_note}")
        else:
            lines.append(f"  call wall {_num(r.call_wall)} · put wall {_num(r.put_wall)} · "
                         f"zero gamma {_num(r.zero_gamma)}")
        rng = ("n/a" if r.first_hour_range is None else f"{r.first_hour_range:.2f}")
        lines.append(f"  first-hour range, median of last {r.range_sessions} sessions (plain statistic): {rng}")
        if r.model is not None:
            if r.model.version is None:
                lines.append("  model: none loaded")
            else:
                lines.append(f"  model {r.model.version}, {age_text(r.model.trained_at, digest.at)}: {r.model.verdict}")
        prev = f"{digest.previous_session:%a %d %b}" if digest.previous_session else "previous session"
        lines.append(f"  alerts {prev}: " + ("none" if not r.alerts else str(len(r.alerts))))
        lines += [_alert_line(a) for a in r.alerts]
    return mark_if_simulated("\n".join(lines), [digest.data_source])


def _day_levels(stats: list[KindStats]) -> str:
    touched = [k for k in stats if k.touches]
    if not touched:
        return "no level touched"
    return " · ".join(f"{_KIND_NAMES.get(k.kind, k.kind)} {k.touches} touch{'es' if k.touches != 1 else ''}, "
                      f"{k.holds} held" for k in touched)


def scorecard_line(window: ScorecardWindow | None, note: str | None) -> str:
    if window is None or window.sessions == 0:
        return f"Level scorecard, last 20 sessions: {note or 'no sessions with snapshots yet'}"
    parts = []
    for k in window.kinds:
        resolved = k.holds + k.breaks
        if k.hold_rate is None or k.ci_low is None or k.ci_high is None:
            rate = "n/a"
        else:
            rate = f"{100 * k.hold_rate:.0f}% [{100 * k.ci_low:.0f}–{100 * k.ci_high:.0f}%] of {resolved}"
        parts.append(f"{_KIND_NAMES.get(k.kind, k.kind)} {rate}")
    span = "the last session" if window.sessions == 1 else f"the last {window.sessions} sessions"
    return (f"Level hold rates over {span}, 95% interval (* = naive baseline): " + ", ".join(parts))


def format_recap(digest: Digest) -> str:
    lines = []
    for r in digest.recap:
        lines.append(f"{r.symbol}: close {_num(r.close)} ({_signed(r.change)})")
        lines.append(f"  alerts today: {'none' if not r.alerts else len(r.alerts)}")
        lines += [_alert_line(a) for a in r.alerts]
        lines.append(f"  levels today: {r.levels_note if r.levels is None else _day_levels(r.levels)}")
    lines.append(scorecard_line(digest.scorecard, digest.scorecard_note))
    return mark_if_simulated("\n".join(lines), [digest.data_source])


def format_digest(digest: Digest) -> str:
    return format_brief(digest) if digest.kind == "open" else format_recap(digest)


def _short_verdict(verdict: str) -> str:
    if verdict.startswith("no demonstrated edge"):
        return "no edge shown"
    return "edge not evaluated" if verdict.startswith("edge not evaluated") else verdict


def _touch_cell(stats: list[KindStats] | None, kind: str, note: str | None) -> str:
    if stats is None:
        return "no data" if note == NO_OPTION_DATA else "n/a"
    k = next(s for s in stats if s.kind == kind)
    return f"{k.holds}/{k.touches} held"


def digest_card_rows(digest: Digest) -> list[tuple[str, list[tuple[str, str]], str]]:
    """(symbol, six (label, value) cells, one note line) per symbol, for the digest card."""
    out = []
    if digest.kind == "open":
        for r in digest.brief:
            gap = "no data" if r.gap is None else _signed(r.gap)
            rng = "n/a" if r.first_hour_range is None else f"{r.first_hour_range:.2f}"
            cells = [("Last close", _num(r.last_close)), ("Pre-mkt gap", gap),
                     (f"1st-hr range ({r.range_sessions}d)", rng)]
            cells += [("Call wall", _num(r.call_wall)), ("Put wall", _num(r.put_wall)),
                      ("Zero gamma", _num(r.zero_gamma))]
            model = "no model" if r.model is None or r.model.version is None else (
                f"{r.model.version} · {_short_verdict(r.model.verdict)}")
            out.append((r.symbol, cells, f"{model} · alerts last session: {len(r.alerts)}"))
        return out
    for r in digest.recap:
        scored = [a for a in r.alerts if a.kind == "score"]
        hits = sum(a.first_hit == "target" for a in scored)
        alerts = f"{len(scored)}, {hits} won" if scored else "0"
        cells = [("Close", _num(r.close)), ("Change", _signed(r.change)), ("Score alerts", alerts)]
        cells += [(_KIND_NAMES[k], _touch_cell(r.levels, k, r.levels_note))
                  for k in ("call_wall", "put_wall", "zero_gamma")]
        notes = [f"level alerts {len(r.alerts) - len(scored)}"]
        if r.levels is None:
            notes.append(r.levels_note or "")
        else:
            notes += [f"{'vanna support' if k.kind == 'vanna_support' else 'vanna resist.'} {k.holds}/{k.touches} held"
                      for k in r.levels if k.kind.startswith("vanna")]
        out.append((r.symbol, cells, " · ".join(n for n in notes if n)))
    return out


def digest_card_subtitle(digest: Digest) -> str:
    if digest.kind == "open":
        return f"{digest.at:%H:%M} ET · 1st-hr range = median of past sessions, a plain statistic"
    return f"{digest.at:%H:%M} ET · level touches and holds today"


CHAT_SETTING_NAMES = {"score": "Score alerts", "level": "Level alerts", "digest": "Digests"}
MODE_MEANINGS = {"on": "on", "silent": "silent (no notification sound)", "off": "off (nothing is sent)"}


def format_chat_settings(modes: dict[str, str]) -> str:
    """What a chat receives, one line per alert kind, and how to change it."""
    lines = [f"{CHAT_SETTING_NAMES.get(kind, kind)}: {MODE_MEANINGS.get(mode, mode)}" for kind, mode in modes.items()]
    lines += ["", "Off keeps your subscriptions and thresholds; /unsubscribe deletes them.",
              "Change one: /settings score|level|digest on|silent|off"]
    return "\n".join(lines)


def _symbol_name(symbol: str) -> str:
    return "all symbols" if symbol == "*" else symbol


def format_chat_receives(score: list[tuple[str, float]], levels: list[str], digest: bool,
                         modes: dict[str, str]) -> list[str]:
    """/status' lines on what this chat gets: each kind's subscriptions under its /settings mode.
    `score` is (symbol, threshold) pairs, symbol "*" meaning every traded symbol."""
    held = {
        "score": ", ".join(f"{_symbol_name(sym)} ≥{threshold:g}" for sym, threshold in score)
        or "no subscriptions (/subscribe SYMBOL [THRESHOLD])",
        "level": ", ".join(_symbol_name(sym) for sym in levels) or "no subscriptions (/subscribe SYMBOL levels)",
        "digest": "pre-open brief and close recap" if digest else "not subscribed (/subscribe digest)",
    }
    lines = ["This chat receives (change with /settings):"]
    for kind, mode in modes.items():
        lines.append(f"· {CHAT_SETTING_NAMES.get(kind, kind)}, {MODE_MEANINGS.get(mode, mode)}: {held.get(kind, '')}")
    return lines


def refreshed_title(title: str | None, at: datetime) -> str:
    """A refreshed reply's headline: it replaces an older message, so it says when it was made."""
    return f"{title or 'Prediction'} · refreshed {at:%H:%M}"


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
