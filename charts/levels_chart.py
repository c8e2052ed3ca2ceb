"""The /levels chart: net dealer gamma (GEX) and vanna (VEX) exposure by strike around spot."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from charts import style
from core.types import LevelsReport, StrikeExposure

WINDOW = 0.05  # strikes within this fraction of spot
MAX_STRIKES = 40
MIN_STRIKES = 8  # a sparse chain gets the nearest strikes instead of a near-empty window
GEX_AXES = (0.15, 0.505, 0.80, 0.295)
VEX_AXES = (0.15, 0.125, 0.80, 0.295)


def build_levels_figure(report: LevelsReport, *, data_source: str) -> Figure:
    """The levels chart as a Figure (for inspection in tests); `render_levels_chart` encodes it."""
    fig = style.new_figure()
    expiries = ", ".join(f"{d:%d %b}" for d in report.expirations[:3])
    if len(report.expirations) > 3:
        expiries += f" +{len(report.expirations) - 3}"
    subtitle = f"spot {report.spot:.2f}" + (f" · expiries {expiries}" if expiries else "") + f" · data: {data_source}"
    style.add_title(fig, f"{report.symbol} levels · {style.ny_stamp(report.as_of)}", subtitle)

    strikes = select_strikes(report.strikes, report.spot)
    if not strikes:
        ax = fig.add_axes((0.06, 0.12, 0.88, 0.70))
        style.style_axes(ax, grid_axis="")
        skipped = ", ".join(f"{reason}: {count}" for reason, count in report.skipped.items() if count)
        style.empty_message(ax, "No usable option data",
                            f"skipped contracts: {skipped}" if skipped else "the option chain was empty")
    else:
        _draw_panels(fig, report, strikes)
    fig.text(0.04, 0.025, f"Convention: {report.convention}", color=style.MUTED, fontsize=style.FS_SMALL,
             va="bottom", parse_math=False, wrap=True)
    style.maybe_watermark(fig, data_source)
    return fig


def render_levels_chart(report: LevelsReport, *, data_source: str) -> bytes:
    """PNG bytes of the levels chart (about 1080 x 1350); an empty report gives a "no usable option data" image."""
    with style.rendering():
        return style.to_png(build_levels_figure(report, data_source=data_source))


def select_strikes(strikes: list[StrikeExposure], spot: float) -> list[StrikeExposure]:
    """Strikes within ±5 % of spot (at most the 40 nearest), or the nearest few if that window is sparse."""
    usable = [s for s in strikes if math.isfinite(s.strike) and math.isfinite(s.net_gex)
              and math.isfinite(s.net_vex)]
    if not usable or not math.isfinite(spot) or spot <= 0:
        return sorted(usable, key=lambda s: s.strike)[:MAX_STRIKES]
    nearest = sorted(usable, key=lambda s: abs(s.strike - spot))
    window = [s for s in nearest if abs(s.strike - spot) <= WINDOW * spot]
    chosen = window[:MAX_STRIKES] if len(window) >= MIN_STRIKES else nearest[:MAX_STRIKES]
    return sorted(chosen, key=lambda s: s.strike)


def _draw_panels(fig: Figure, report: LevelsReport, strikes: list[StrikeExposure]) -> None:
    k = np.array([s.strike for s in strikes])
    gaps = np.diff(k)
    width = 0.8 * (float(gaps[gaps > 0].min()) if (gaps > 0).any() else 1.0)
    gex_ax = fig.add_axes(GEX_AXES)
    vex_ax = fig.add_axes(VEX_AXES, sharex=gex_ax)
    panels = ((gex_ax, np.array([s.net_gex for s in strikes]), "Net GEX", style.GREEN, style.RED),
              (vex_ax, np.array([s.net_vex for s in strikes]), "Net VEX", style.BLUE, style.AMBER))
    for ax, values, name, pos_color, neg_color in panels:
        style.style_axes(ax, grid_axis="y")
        _bars(ax, k, values, width, np.where(values >= 0, pos_color, neg_color).tolist())
        ax.axhline(0, color=style.MUTED, linewidth=1.2, zorder=2.5)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.yaxis.set_major_formatter(lambda v, _pos: style.format_compact(v))
        total = float(np.sum(values))
        # Titles above the panel, not inside it, where tall bars would run through them.
        ax.set_title(f"{name} by strike", loc="left", color=style.TEXT, fontsize=style.FS_LABEL, fontweight="bold",
                     pad=8)
        ax.set_title(f"total {style.format_dollars(total)}", loc="right", color=style.MUTED,
                     fontsize=style.FS_SMALL, pad=8)
        _mark_levels(ax, report)
    lo, hi = k.min() - width, k.max() + width
    gex_ax.set_xlim(lo, hi)
    for ax, values, *_ in panels:
        top, bottom = max(float(values.max()), 0.0), min(float(values.min()), 0.0)
        pad = (top - bottom) * 0.08 or 1.0
        ax.set_ylim(bottom - (pad if bottom < 0 else 0), top + pad)
    gex_ax.tick_params(labelbottom=False)
    vex_ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    vex_ax.set_xlabel("strike", color=style.MUTED, fontsize=style.FS_SMALL)
    _legend(fig, report, lo, hi)


def _bars(ax: Axes, x: np.ndarray, heights: np.ndarray, width: float, colors: list[str]) -> None:
    """All bars of a panel as one PolyCollection: ax.bar makes one patch per strike, several times slower."""
    half = width / 2
    zeros = np.zeros_like(heights)
    verts = np.stack([np.column_stack([x - half, zeros]), np.column_stack([x + half, zeros]),
                      np.column_stack([x + half, heights]), np.column_stack([x - half, heights])], axis=1)
    ax.add_collection(PolyCollection(verts, facecolors=colors, edgecolors="none", zorder=2), autolim=False)


def _level_marks(report: LevelsReport) -> list[tuple[str, float | None, str, str | tuple, float]]:
    return [(f"Spot {report.spot:.2f}", report.spot, style.TEXT, "-", 3.0),
            (_fmt("Call wall", report.call_wall), report.call_wall, style.CALL_WALL, (0, (8, 3)), 2.6),
            (_fmt("Put wall", report.put_wall), report.put_wall, style.PUT_WALL, (0, (8, 3)), 2.6),
            (_fmt("Zero γ", report.zero_gamma), report.zero_gamma, style.ZERO_GAMMA, (0, (2, 2)), 2.6)]


def _mark_levels(ax: Axes, report: LevelsReport) -> None:
    for _label, price, color, dash, width in _level_marks(report):
        if price is not None and math.isfinite(price):
            ax.axvline(price, color=color, linestyle=dash, linewidth=width, zorder=3)


def _legend(fig: Figure, report: LevelsReport, lo: float, hi: float) -> None:
    """Level names in a legend rather than on the lines: spot and zero gamma are often a strike apart."""
    handles = []
    for label, price, color, dash, width in _level_marks(report):
        if price is None or not math.isfinite(price):
            continue
        text = label if lo <= price <= hi else f"{label} (off chart)"
        handles.append(Line2D([], [], color=color, linestyle=dash, linewidth=width, label=text))
    if handles:
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.03, 0.925), ncol=2, frameon=False,
                   fontsize=style.FS_SMALL + 1, labelcolor=style.TEXT, handlelength=2.2, columnspacing=1.5)


def _fmt(name: str, price: float | None) -> str:
    return f"{name} {price:.2f}" if price is not None and math.isfinite(price) else f"{name} n/a"
