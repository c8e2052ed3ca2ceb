"""Backtest chart (calibration + equity curve in R) and the scorecard helpers /performance shares.

Accepted calibration rows (one dict per probability bucket; values as fractions 0..1 or percentages):
  predicted: "predicted" | "mean_predicted" | "predicted_win_rate" | "mean_probability" (else the middle of
             "lo"/"hi" or "bucket_lo"/"bucket_hi")
  realised:  "realised" | "realized" | "win_rate" | "realised_win_rate" | "realized_win_rate" | "actual"
  count:     "count" | "n" | "alerts" | "trades"
  label:     "bucket" (optional)
A backtest report's {"win_probability": rows, "quality": rows} mapping is accepted (the win rows are drawn).
Accepted equity points: (datetime, cumulative R) tuples, or dicts with a time ("time" | "as_of" | "date" |
"exit_time" | "closed_at"; a datetime or an ISO string) and either a cumulative value ("cum_r" | "cumulative_r" | "equity") or a per-alert
result ("r" | "r_multiple") that is summed here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from charts import style
from core.types import NY

_PREDICTED_KEYS = ("predicted", "mean_predicted", "predicted_win_rate", "mean_probability")
_REALISED_KEYS = ("realised", "realized", "win_rate", "realised_win_rate", "realized_win_rate", "actual")
_COUNT_KEYS = ("count", "n", "alerts", "trades")
_TIME_KEYS = ("time", "as_of", "date", "exit_time", "closed_at")
_CUMULATIVE_KEYS = ("cum_r", "cumulative_r", "equity")
_STEP_KEYS = ("r", "r_multiple")


@dataclass(frozen=True)
class CalibrationPoint:
    predicted: float  # 0..1
    realised: float  # 0..1
    count: int
    label: str


@dataclass(frozen=True)
class EquitySeries:
    times: list[datetime] | None  # None: x is the alert number
    cumulative_r: np.ndarray


def build_backtest_figure(calibration: Sequence[Mapping] | Mapping, equity: Sequence, *, title: str,
                          data_source: str, window: Mapping | None = None) -> Figure:
    """The backtest chart as a Figure (for inspection in tests); `render_backtest_chart` encodes it.
    A report's {"quality": rows, "win_probability": rows} gets a calibration panel for each; `window`
    ({"start", "end"}, ISO) makes the equity axis span the whole evaluated period."""
    if isinstance(calibration, Mapping) and calibration.get("quality"):
        fig = _three_panel_figure(calibration, parse_equity(equity), title=title, subtitle=f"data: {data_source}",
                                  window=window)
    else:
        fig = build_scorecard_figure(parse_calibration(calibration), parse_equity(equity), title=title,
                                     subtitle=f"data: {data_source}", height_in=style.TALL_IN, window=window)
    style.maybe_watermark(fig, data_source)
    return fig


def render_backtest_chart(calibration: Sequence[Mapping] | Mapping, equity: Sequence, *, title: str,
                          data_source: str, window: Mapping | None = None) -> bytes:
    """PNG bytes (about 1080 x 1350): calibration by bucket and the equity curve in R."""
    with style.rendering():
        return style.to_png(build_backtest_figure(calibration, equity, title=title, data_source=data_source,
                                                  window=window))


def _three_panel_figure(calibration: Mapping, equity: EquitySeries, *, title: str, subtitle: str,
                        window: Mapping | None) -> Figure:
    height_in = style.TALL_IN
    fig = style.new_figure(height_in=height_in)
    style.add_title(fig, title, subtitle)
    top_in, bottom_in, gap_in, left, width = 1.65, 0.85, 1.2, 0.14, 0.80
    panel_in = (height_in - top_in - bottom_in - 2 * gap_in) / 3
    axes = [fig.add_axes((left, (bottom_in + k * (panel_in + gap_in)) / height_in, width, panel_in / height_in))
            for k in (2, 1, 0)]
    draw_calibration(axes[0], parse_calibration(calibration.get("quality") or []),
                     title="Trade quality: predicted vs realised", what="quality")
    draw_calibration(axes[1], parse_calibration(calibration.get("win_probability") or []))
    draw_equity(axes[2], equity, window=window)
    return fig


def build_scorecard_figure(points: list[CalibrationPoint], equity: EquitySeries, *, title: str,
                           subtitle: str | None, height_in: float, window: Mapping | None = None) -> Figure:
    """Title, calibration panel on top, equity panel below; panel sizes fixed in inches so the backtest
    (tall) and performance (square) charts share one look."""
    fig = style.new_figure(height_in=height_in)
    style.add_title(fig, title, subtitle)
    top_in, bottom_in, gap_in, left, width = 1.65, 0.85, 1.45, 0.14, 0.80
    panel_in = (height_in - top_in - bottom_in - gap_in) / 2
    calib_ax = fig.add_axes((left, (bottom_in + panel_in + gap_in) / height_in, width, panel_in / height_in))
    equity_ax = fig.add_axes((left, bottom_in / height_in, width, panel_in / height_in))
    draw_calibration(calib_ax, points)
    draw_equity(equity_ax, equity, window=window)
    return fig


def parse_calibration(rows: Sequence[Mapping] | Mapping) -> list[CalibrationPoint]:
    """Calibration rows -> points; rows without a predicted and realised rate or with no alerts are left out.

    A backtest report's {"win_probability": rows, "quality": rows} mapping is accepted too (win rows used)."""
    if isinstance(rows, Mapping):
        rows = rows.get("win_probability") or []
    points = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise style.ChartError("calibration rows must be dicts")
        predicted = _first_number(row, _PREDICTED_KEYS)
        if predicted is None:
            lo = _first_number(row, ("lo", "bucket_lo"))
            hi = _first_number(row, ("hi", "bucket_hi"))
            predicted = None if lo is None or hi is None else (lo + hi) / 2
        realised = _first_number(row, _REALISED_KEYS)
        count = _first_number(row, _COUNT_KEYS)
        if predicted is None or realised is None or (count is not None and count <= 0):
            continue
        label = str(row.get("bucket", ""))
        points.append(CalibrationPoint(_as_fraction(predicted), _as_fraction(realised),
                                       int(count) if count is not None else 0, label))
    return sorted(points, key=lambda p: p.predicted)


def parse_equity(points: Sequence) -> EquitySeries:
    """Equity points -> one cumulative-R series, in time order when times are given."""
    times: list[datetime] = []
    values: list[float] = []
    step_values = False
    for point in points:
        if isinstance(point, Mapping):
            when = _as_datetime(next((point[k] for k in _TIME_KEYS if point.get(k) is not None), None))
            value = _first_number(point, _CUMULATIVE_KEYS)
            if value is None:
                value = _first_number(point, _STEP_KEYS)
                step_values = value is not None or step_values
        elif isinstance(point, Sequence) and len(point) == 2:
            when, value = _as_datetime(point[0]), _number(point[1])
        else:
            raise style.ChartError("equity points must be (datetime, R) pairs or dicts")
        if value is None:
            continue
        if isinstance(when, datetime):
            times.append(when)
        values.append(value)
    series = np.array(values, dtype="float64")
    dated = bool(times) and len(times) == len(values)
    if dated:  # order first: per-alert results must be summed in time order
        order = sorted(range(len(times)), key=lambda i: times[i])
        times, series = [times[i] for i in order], series[order]
    if step_values:
        series = np.cumsum(series)
    return EquitySeries(times if dated else None, series)


def draw_calibration(ax: Axes, points: list[CalibrationPoint], *, title: str = "Win rate: predicted vs realised",
                     what: str = "win") -> None:
    style.style_axes(ax)
    ax.set_title(title, color=style.TEXT, fontsize=style.FS_LABEL, loc="left", fontweight="bold", pad=10)
    if not points:
        style.empty_message(ax, "No alerts", "nothing to calibrate yet")
        return
    pred = np.array([p.predicted for p in points]) * 100
    real = np.array([p.realised for p in points]) * 100
    counts = np.array([p.count for p in points], dtype="float64")
    lo = max(0.0, math.floor((min(pred.min(), real.min()) - 5) / 10) * 10)
    ax.set_xlim(lo, 100)
    ax.set_ylim(lo, 100)
    ax.plot([lo, 100], [lo, 100], color=style.MUTED, linestyle=(0, (6, 4)), linewidth=2, zorder=1)
    ax.plot(pred, real, color=style.BLUE, linewidth=3, zorder=2)
    sizes = 120 + 700 * counts / counts.max() if counts.max() > 0 else np.full(len(points), 200.0)
    ax.scatter(pred, real, s=sizes, color=style.BLUE, edgecolors=style.TEXT, linewidths=1.5, zorder=3)
    for x, y, n, dy in zip(pred, real, counts, _label_offsets(pred, 100 - lo), strict=True):
        if dy is None:  # too close to a labelled neighbour: its count would print on top of another
            continue
        ax.annotate(f"n={int(n)}", (x, y), xytext=(12, dy), textcoords="offset points", color=style.TEXT,
                    fontsize=style.FS_SMALL, annotation_clip=False)
    ax.set_xlabel(f"predicted {what} %", color=style.MUTED, fontsize=style.FS_SMALL)
    ax.set_ylabel(f"realised {what} %", color=style.MUTED, fontsize=style.FS_SMALL)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))


def _label_offsets(x: np.ndarray, span: float) -> list[float | None]:
    """Vertical offsets (points) of the n= labels, left to right: below, then above the next point when
    the two are close, and none for a third point crowded into the same place."""
    out: list[float | None] = []
    min_gap = span / 9  # about the width of an "n=1234" label on this panel
    last_x = {-22.0: -math.inf, 16.0: -math.inf}
    for xi in x:
        for dy in (-22.0, 16.0):
            if xi - last_x[dy] >= min_gap:
                out.append(dy)
                last_x[dy] = xi
                break
        else:
            out.append(None)
    return out


def _r_label(v: float, _pos: object = None) -> str:
    """'+1.5R', '-2R', '0': as many decimals as the tick needs, so no two ticks print alike."""
    if abs(v) < 1e-9:
        return "0"
    return f"{v:+.2f}".rstrip("0").rstrip(".") + "R"


def draw_equity(ax: Axes, equity: EquitySeries, *, window: Mapping | None = None) -> None:
    style.style_axes(ax)
    values = equity.cumulative_r
    if values.size == 0:
        ax.set_title("Equity (R)", color=style.TEXT, fontsize=style.FS_LABEL, loc="left", fontweight="bold",
                     pad=10)
        style.empty_message(ax, "No alerts", "no closed alerts yet")
        return
    drawdown = float(np.min(values - np.maximum.accumulate(np.maximum(values, 0.0))))
    ax.set_title(f"Equity {values[-1]:+.1f} R · {values.size} alerts · max DD {drawdown:.1f} R",
                 color=style.TEXT, fontsize=style.FS_LABEL, loc="left", fontweight="bold", pad=10)
    if equity.times is not None:
        x = mdates.date2num(equity.times)
        locator = mdates.AutoDateLocator(tz=NY, minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator, tz=NY)
        ax.xaxis.set_major_formatter(formatter)
        ax.xaxis.get_offset_text().set_fontsize(style.FS_SMALL)
        ax.xaxis.get_offset_text().set_color(style.MUTED)
    else:
        # Alert numbers start from a flat 0 R so the first alert's result shows as a move.
        x = np.arange(0, values.size + 1, dtype="float64")
        values = np.concatenate([[0.0], values])
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.set_xlabel("alert #", color=style.MUTED, fontsize=style.FS_SMALL)
    if x.size == 1:
        pad = 1.0
        ax.set_xlim(x[0] - pad, x[0] + pad)
    ax.axhline(0, color=style.MUTED, linewidth=1.5, zorder=1)
    ax.fill_between(x, values, 0, where=values >= 0, interpolate=True, color=style.GREEN, alpha=0.25,
                    linewidth=0)
    ax.fill_between(x, values, 0, where=values < 0, interpolate=True, color=style.RED, alpha=0.25, linewidth=0)
    ax.plot(x, values, color=style.BLUE, linewidth=3, zorder=3, marker="o" if x.size < 30 else None,
            markersize=7)
    span = _window_span(window) if equity.times is not None else None
    if span is not None:
        ax.set_xlim(*mdates.date2num(span))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_formatter(_r_label)


def _window_span(window: Mapping | None) -> tuple[datetime, datetime] | None:
    if not isinstance(window, Mapping):
        return None
    start, end = _as_datetime(window.get("start")), _as_datetime(window.get("end"))
    return (start, end) if start is not None and end is not None and end > start else None


def _as_datetime(value: object) -> datetime | None:
    """Datetimes pass through; ISO strings (as JSON reports hold them) are parsed; anything else is None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _first_number(row: Mapping, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if key in row:
            value = _number(row[key])
            if value is not None:
                return value
    return None


def _number(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _as_fraction(value: float) -> float:
    return value / 100.0 if value > 1.0 else value
