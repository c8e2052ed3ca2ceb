"""The /predict chart: today's candles, VWAP, the predicted band over the horizon, target/stop, options
levels and a score panel, as one 1080 x 1350 PNG."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon, Rectangle
from matplotlib.ticker import MaxNLocator

from charts import style
from charts.style import ChartError
from core import calendar
from core.types import NY, Level, Prediction

PRICE_AXES = (0.105, 0.320, 0.685, 0.585)  # left, bottom, width, height (figure fractions)
LEVEL_TOLERANCE = 0.015  # levels this far (fraction of price) outside the price range still get shown
MIN_SPAN_BARS = 20  # keeps the first bars of a session from being drawn absurdly wide
MAX_VANNA_LINES = 3  # per side, strongest first: more only adds clutter at phone size
NOTE_LINES = 4  # warnings + the off-chart line that fit under the gauge


@dataclass
class _LevelLine:
    price: float
    label: str
    color: str
    linewidth: float
    alpha: float
    linestyle: str | tuple = "-"


def build_prediction_figure(pred: Prediction, bars: pd.DataFrame, *, prev_close: float | None,
                            horizon_bars: int, bar_minutes: int, threshold: float | None = 80.0) -> Figure:
    """The prediction chart as a Figure (for inspection in tests); `render_prediction_chart` encodes it.
    threshold None: no alert marker (an alert's one chart serves recipients with different thresholds)."""
    if horizon_bars < 1 or bar_minutes < 1:
        raise ChartError("horizon_bars and bar_minutes must be at least 1")
    session, earlier = _split_last_session(bars)
    horizon_bars = bars_before_close(pred.as_of, horizon_bars, bar_minutes)
    if prev_close is None and not earlier.empty:
        closes = style.finite(earlier["close"].tolist()[-1:])
        prev_close = closes[0] if closes else None

    fig = style.new_figure()
    vix = f"VIX {pred.vix:.1f}" if _is_finite(pred.vix) else "VIX n/a"
    style.add_title(fig, f"{pred.symbol} · {style.ny_stamp(pred.as_of)}",
                    f"model {_short(pred.model_version, 32)} · {bar_minutes}-min · {vix} · {pred.data_source}")
    ax = fig.add_axes(PRICE_AXES)
    off_chart = _draw_price_panel(ax, pred, session, prev_close, horizon_bars, bar_minutes)
    _draw_score_panel(fig, pred, threshold, off_chart)
    style.maybe_watermark(fig, pred.data_source)
    return fig


def render_prediction_chart(pred: Prediction, bars: pd.DataFrame, *, prev_close: float | None,
                            horizon_bars: int, bar_minutes: int, threshold: float | None = 80.0) -> bytes:
    """PNG bytes of the prediction chart (about 1080 x 1350). Raises ChartError on unusable input."""
    with style.rendering():
        fig = build_prediction_figure(pred, bars, prev_close=prev_close, horizon_bars=horizon_bars,
                                      bar_minutes=bar_minutes, threshold=threshold)
        return style.to_png(fig)


def _split_last_session(bars: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(bars of the last bar's New York calendar day with usable OHLC, everything before that day)."""
    missing = {"open", "high", "low", "close"} - set(bars.columns)
    if missing:
        raise ChartError(f"bars lack columns: {', '.join(sorted(missing))}")
    if bars.empty:
        raise ChartError("no bars to chart")
    idx = pd.DatetimeIndex(bars.index)
    idx = idx.tz_localize(NY) if idx.tz is None else idx.tz_convert(NY)
    frame = bars.set_axis(idx)
    if not idx.is_monotonic_increasing:
        frame = frame.sort_index()
    day_start = frame.index[-1].normalize()
    today = frame[frame.index >= day_start]
    today = today[np.isfinite(today[["open", "high", "low", "close"]].to_numpy(dtype="float64")).all(axis=1)]
    if today.empty:
        raise ChartError("no bars with prices in the last session")
    return today, frame[frame.index < day_start]


def bars_before_close(as_of: pd.Timestamp | object, horizon_bars: int, bar_minutes: int) -> int:
    """The forecast's bars that lie before its session's close: the label windows stop there, so the band
    is drawn no further (none at all for a prediction made at the close)."""
    moment = pd.Timestamp(as_of).tz_convert(NY)
    day = moment.date()
    left = (calendar.session_bounds(day)[1] - moment.to_pydatetime()).total_seconds() / 60.0 \
        if calendar.is_session(day) else -1.0
    if left < 0:  # no session, or bars past the calendar's close (odd data): nothing to cut at
        return horizon_bars
    return min(horizon_bars, int(left // bar_minutes))


def _draw_price_panel(ax: Axes, pred: Prediction, session: pd.DataFrame, prev_close: float | None,
                      horizon_bars: int, bar_minutes: int) -> list[str]:
    """Candles, VWAP, forecast and levels. Returns the labels of levels left off the visible range.

    Axis ticks, grid and frame are drawn by hand: matplotlib's Tick objects (five artists each, built per
    render) cost more than everything else on this panel together."""
    o, h, low, c = (session[k].to_numpy(dtype="float64") for k in ("open", "high", "low", "close"))
    n = len(c)
    last_close = float(c[-1])
    x_last = n - 1 + 0.45  # right edge of the last candle: where its close happened
    x_end = n - 1 + horizon_bars + 0.5 if horizon_bars else x_last
    ph, pl = _finite_or(pred.predicted_high, last_close), _finite_or(pred.predicted_low, last_close)

    lo, hi = _core_range(low, h, pred)
    levels = _level_lines(pred, prev_close)
    tolerance = LEVEL_TOLERANCE * last_close
    shown = [lv for lv in levels if lo - tolerance <= lv.price <= hi + tolerance]
    shown_ids = {id(lv) for lv in shown}
    off_chart = [f"{lv.label} {lv.price:.2f} {'↑' if lv.price > hi else '↓'}"
                 for lv in levels if id(lv) not in shown_ids]
    if shown:
        lo, hi = min(lo, *(lv.price for lv in shown)), max(hi, *(lv.price for lv in shown))
    pad = max((hi - lo) * 0.06, last_close * 0.0008)
    y0, y1 = lo - pad, hi + pad
    x0, x1 = -0.8, max(n - 1 + horizon_bars, MIN_SPAN_BARS) + 0.9
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_axis_off()
    ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, facecolor=style.PANEL, edgecolor=style.GRID,
                           linewidth=1.2, zorder=0))
    x_ticks = _time_ticks(session.index, bar_minutes, x1)
    y_ticks = [float(v) for v in MaxNLocator(nbins=6, min_n_ticks=3).tick_values(y0, y1) if y0 <= v <= y1]
    _draw_grid_and_ticks(ax, x_ticks, y_ticks, (x0, x1, y0, y1))

    _draw_candles(ax, o, h, low, c)
    vwap = _session_vwap(session)
    if vwap is not None and np.isfinite(vwap).any():
        ax.plot(np.arange(n), vwap, color=style.VWAP, linewidth=2.6, zorder=3, solid_capstyle="round")

    # One collection for every full-width level line (below the candles), one for the forecast strokes.
    behind: list[_Stroke] = [((x0, lv.price), (x1, lv.price), lv.color, lv.linewidth, lv.alpha, lv.linestyle)
                             for lv in shown]
    behind.append(((x_last, y0), (x_last, y1), style.MUTED, 1.2, 0.5, (0, (4, 4))))
    front: list[_Stroke] = [((x_last, p), (x_end, p), style.BLUE, 2.2, 1.0, (0, (5, 3))) for p in (ph, pl)
                            if horizon_bars]
    for price, color in ((pred.target, style.TARGET), (pred.stop, style.STOP)):
        if _is_finite(price):
            behind.append(((x0, price), (x1, price), color, 1.2, 0.35, (0, (2, 3))))
            if horizon_bars:
                front.append(((x_last, price), (x_end, price), color, 4.0, 1.0, "solid"))
    _add_strokes(ax, behind, zorder=1.5)
    _add_strokes(ax, front, zorder=4)

    ax.plot([x_last], [last_close], marker="o", markersize=10, color=style.TEXT, zorder=5)
    labels = [(last_close, f"Last {last_close:.2f}", style.TEXT, True)]
    if horizon_bars:
        _draw_band(ax, x_last, x_end, last_close, ph, pl, horizon_bars * bar_minutes)
        labels += [(ph, f"Pred hi {ph:.2f}", style.BLUE, False), (pl, f"Pred lo {pl:.2f}", style.BLUE, False)]
    else:
        ax.text(x_last, 0.985, "session closed: no forecast past the close ", transform=ax.get_xaxis_transform(),
                ha="right", va="top", color=style.MUTED, fontsize=style.FS_SMALL, parse_math=False)
    if _is_finite(pred.target):
        labels.append((float(pred.target), f"Target {pred.target:.2f}", style.TARGET, True))
    if _is_finite(pred.stop):
        labels.append((float(pred.stop), f"Stop {pred.stop:.2f}", style.STOP, True))
    if vwap is not None and np.isfinite(vwap[-1]):
        labels.append((float(vwap[-1]), f"VWAP {vwap[-1]:.2f}", style.VWAP, False))
    labels += [(lv.price, f"{lv.label} {lv.price:.2f}", lv.color, False) for lv in shown]
    _draw_right_labels(ax, labels, y0, y1)
    return off_chart


_Stroke = tuple[tuple[float, float], tuple[float, float], str, float, float, "str | tuple"]


def _add_strokes(ax: Axes, strokes: list[_Stroke], zorder: float) -> None:
    if not strokes:
        return
    ax.add_collection(LineCollection(
        [[a, b] for a, b, *_ in strokes], colors=[to_rgba(col, alpha) for _, _, col, _, alpha, _ in strokes],
        linewidths=[w for *_, w, _, _ in strokes], linestyles=[d for *_, d in strokes], zorder=zorder,
        capstyle="butt"), autolim=False)


def _draw_grid_and_ticks(ax: Axes, x_ticks: list[tuple[int, str]], y_ticks: list[float],
                         limits: tuple[float, float, float, float]) -> None:
    x0, x1, y0, y1 = limits
    grid = [[(x, y0), (x, y1)] for x, _ in x_ticks] + [[(x0, y), (x1, y)] for y in y_ticks]
    ax.add_collection(LineCollection(grid, colors=style.GRID, linewidths=1.0, zorder=0.5), autolim=False)
    decimals = 2 if y1 - y0 < 5 else 1
    y_labels = ax.get_yaxis_transform()  # x in axes fraction, y in data
    for y in y_ticks:
        ax.text(-0.018, y, f"{y:.{decimals}f}", transform=y_labels, ha="right", va="center", color=style.TEXT,
                fontsize=style.FS_TICK, clip_on=False, parse_math=False)
    x_labels = ax.get_xaxis_transform()
    for x, label in x_ticks:
        ax.text(x, -0.018, label, transform=x_labels, ha="center", va="top", color=style.TEXT,
                fontsize=style.FS_TICK, clip_on=False, parse_math=False)


def _draw_candles(ax: Axes, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray) -> None:
    """Two artists for any number of bars: one LineCollection of wicks, one PolyCollection of bodies."""
    n = len(c)
    x = np.arange(n, dtype="float64")
    colors = np.where(c >= o, style.UP, style.DOWN).tolist()
    wicks = np.stack([np.column_stack([x, low]), np.column_stack([x, h])], axis=1)
    half = 0.36
    bodies = np.stack([np.column_stack([x - half, o]), np.column_stack([x + half, o]),
                       np.column_stack([x + half, c]), np.column_stack([x - half, c])], axis=1)
    wick_width = 2.0 if n <= 120 else 1.2
    ax.add_collection(LineCollection(wicks, colors=colors, linewidths=wick_width, zorder=3.5),
                      autolim=False)
    # Body edges in the body colour keep dojis (open == close) visible as a line.
    ax.add_collection(PolyCollection(bodies, facecolors=colors, edgecolors=colors, linewidths=1.0, zorder=3.6),
                      autolim=False)


def _session_vwap(session: pd.DataFrame) -> np.ndarray | None:
    if "volume" not in session.columns:
        return None
    vol = np.nan_to_num(session["volume"].to_numpy(dtype="float64"), nan=0.0)
    typical = (session["high"].to_numpy() + session["low"].to_numpy() + session["close"].to_numpy()) / 3.0
    cum_vol = np.cumsum(vol)
    if cum_vol[-1] <= 0:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.cumsum(typical * vol) / cum_vol
    vwap[cum_vol <= 0] = np.nan
    return vwap


def _draw_band(ax: Axes, x_last: float, x_end: float, last_close: float, ph: float, pl: float,
               minutes: int) -> None:
    """The forecast: a wedge from the last close opening to the predicted high/low at the horizon's end."""
    ax.add_patch(Polygon([(x_last, last_close), (x_end, ph), (x_end, pl)], closed=True, facecolor=style.BLUE,
                         alpha=0.22, edgecolor="none", zorder=2))
    ax.add_patch(Rectangle((x_last, min(pl, ph)), x_end - x_last, abs(ph - pl), facecolor=style.BLUE,
                           alpha=0.08, edgecolor="none", zorder=2))
    ax.text((x_last + x_end) / 2, 0.985, f"next {minutes} min", transform=ax.get_xaxis_transform(),
            ha="center", va="top", color=style.MUTED, fontsize=style.FS_SMALL, parse_math=False)


def _core_range(low: np.ndarray, high: np.ndarray, pred: Prediction) -> tuple[float, float]:
    """Price range that must be visible: today's bars, the predicted band, target and stop."""
    values = style.finite([float(low.min()), float(high.max()), pred.predicted_high, pred.predicted_low,
                           pred.target, pred.stop])
    return min(values), max(values)


def _level_lines(pred: Prediction, prev_close: float | None) -> list[_LevelLine]:
    lines: list[_LevelLine] = []
    if _is_finite(prev_close):
        lines.append(_LevelLine(float(prev_close), "Prev close", style.PREV_CLOSE, 2.0, 0.8, (0, (6, 4))))
    for price, label, color, dash in ((pred.call_wall, "Call wall", style.CALL_WALL, (0, (8, 3))),
                                      (pred.put_wall, "Put wall", style.PUT_WALL, (0, (8, 3))),
                                      (pred.zero_gamma, "Zero γ", style.ZERO_GAMMA, (0, (2, 2)))):
        if _is_finite(price):
            lines.append(_LevelLine(float(price), label, color, 2.6, 0.95, dash))
    for levels, label, color in ((pred.vanna_support, "Vanna S", style.VANNA_SUPPORT),
                                 (pred.vanna_resistance, "Vanna R", style.VANNA_RESISTANCE)):
        for lv in _strongest(levels):
            strength = min(max(float(lv.strength), 0.0), 1.0) if _is_finite(lv.strength) else 0.5
            lines.append(_LevelLine(float(lv.price), label, color, 1.2 + 3.8 * strength, 0.3 + 0.6 * strength))
    return lines


def _strongest(levels: list[Level]) -> list[Level]:
    usable = [lv for lv in levels if _is_finite(lv.price)]
    return sorted(usable, key=lambda lv: -(lv.strength if _is_finite(lv.strength) else 0.0))[:MAX_VANNA_LINES]


def _draw_right_labels(ax: Axes, labels: list[tuple[float, str, str, bool]], y0: float, y1: float) -> None:
    """Level names in the right margin, nudged apart so close levels don't print over each other."""
    axes_height_pt = ax.get_position().height * ax.figure.get_figheight() * 72
    gap = style.FS_LEVEL * 1.3 / axes_height_pt
    fractions = [(p - y0) / (y1 - y0) for p, *_ in labels]
    placed = style.spread_labels(fractions, gap, lo=gap / 2, hi=1 - gap / 2)
    for (_, text, color, bold), frac in zip(labels, placed, strict=True):
        ax.text(1.015, frac, text, transform=ax.transAxes, ha="left", va="center", color=color,
                fontsize=style.FS_LEVEL, fontweight="bold" if bold else "normal", clip_on=False,
                parse_math=False)


def _time_ticks(index: pd.DatetimeIndex, bar_minutes: int, x_max: float) -> list[tuple[int, str]]:
    """(bar position, "HH:MM") at round times, future positions extrapolated from the last bar."""
    positions = list(range(0, int(math.floor(x_max)) + 1))
    n = len(index)
    last = index[-1]
    minutes = []
    for p in positions:
        t = index[p] if p < n else last + pd.Timedelta(minutes=bar_minutes * (p - n + 1))
        minutes.append(t.hour * 60 + t.minute)
    ticks: list[int] = []
    for step in (15, 30, 60, 90, 120, 180, 240):
        if step < bar_minutes:
            continue
        ticks = [p for p, m in zip(positions, minutes, strict=True) if m % step == 0]
        if len(ticks) <= 6:
            break
    if not ticks:
        ticks = [0] if len(positions) < 2 else [0, positions[-1]]
    return [(p, f"{minutes[p] // 60:02d}:{minutes[p] % 60:02d}") for p in ticks]


def _draw_score_panel(fig: Figure, pred: Prediction, threshold: float | None, off_chart: list[str]) -> None:
    left, right, top = 0.06, 0.94, 0.252
    long = pred.direction == "long"
    if getattr(pred, "side_favoured", True):
        fig.text(left, top, "▲ LONG" if long else "▼ SHORT", color=style.GREEN if long else style.RED,
                 fontsize=style.FS_BIG, fontweight="bold", va="top", parse_math=False)
    else:  # the model cannot tell the sides apart here: no big arrow that suggests it can
        fig.text(left, top, "no side favoured", color=style.MUTED, fontsize=style.FS_BIG, va="top",
                 parse_math=False)
    win = float(pred.win_probability) if _is_finite(pred.win_probability) else float("nan")
    win = win / 100.0 if win > 1.0 else win
    win_text = f"Win prob {win * 100:.0f}%" if math.isfinite(win) else "Win prob n/a"
    fig.text(right, top, win_text, color=style.TEXT, fontsize=style.FS_BIG, va="top", ha="right",
             parse_math=False)

    score = float(pred.quality_score) if _is_finite(pred.quality_score) else 0.0
    # without a threshold the chart is an alert's: the score met every recipient's threshold
    alerting = threshold is None or score >= threshold
    score_color = style.GREEN if alerting else style.AMBER if score >= 60 else style.GREY
    fig.text(left, 0.190, f"Quality {score:.0f}/100", color=score_color, fontsize=style.FS_LABEL + 4,
             fontweight="bold", va="top", parse_math=False)
    if threshold is not None:
        fig.text(right, 0.190, f"alert at ≥ {threshold:.0f}", color=style.MUTED, fontsize=style.FS_LABEL,
                 va="top", ha="right", parse_math=False)
    # Gauge drawn in figure coordinates: a separate axes would cost more than the rest of the panel.
    gx, gy, gw, gh = left, 0.122, right - left, 0.032
    filled = min(max(score, 0.0), 100.0) / 100.0
    fig.add_artist(Rectangle((gx, gy), gw, gh, transform=fig.transFigure, facecolor=style.GRID,
                             edgecolor="none"))
    fig.add_artist(Rectangle((gx, gy), gw * filled, gh, transform=fig.transFigure, facecolor=score_color,
                             edgecolor="none"))
    if threshold is not None:
        tx = gx + gw * min(max(threshold, 0.0), 100.0) / 100.0
        fig.add_artist(Line2D([tx, tx], [gy - 0.008, gy + gh + 0.008], transform=fig.transFigure,
                              color=style.TEXT, linewidth=3))

    y = 0.104
    line_step = style.FS_SMALL * 1.45 / 72 / fig.get_figheight()
    room = NOTE_LINES - (1 if off_chart else 0)
    shown = pred.warnings if len(pred.warnings) <= room else pred.warnings[: room - 1]
    notes = [("⚠ " + _short(w, 70), style.AMBER) for w in shown]
    if len(shown) < len(pred.warnings):
        notes.append((f"⚠ … and {len(pred.warnings) - len(shown)} more", style.AMBER))
    if off_chart:
        notes.append(("Off chart: " + _short(", ".join(off_chart), 78), style.MUTED))
    for text, color in notes:
        fig.text(left, y, text, color=color, fontsize=style.FS_SMALL, va="top", parse_math=False)
        y -= line_step


def _is_finite(value: object) -> bool:
    try:
        return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _finite_or(value: float | None, fallback: float) -> float:
    return float(value) if _is_finite(value) else fallback


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
