"""One dark theme for every chart, the figure factory, the watermark and PNG encoding.

Everything here uses matplotlib's object-oriented API (`Figure` + `FigureCanvasAgg`), never pyplot:
no global figure registry, so nothing leaks and figures can be built in worker threads.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

import matplotlib
import numpy as np

matplotlib.use("Agg")  # harmless when already set; keeps any stray pyplot import headless

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image  # noqa: E402

from core.types import NY  # noqa: E402


class ChartError(ValueError):
    """The inputs cannot be charted (no bars, bad horizon...). The message is short and safe to show."""


# Font caches and the mathtext parser inside matplotlib are shared module state; one render at a time
# keeps renders from asyncio.to_thread workers safe at the cost of no parallel rendering (renders are short).
RENDER_LOCK = threading.Lock()
# FreeType hinting is made for small screen text; our text is large, and hinting costs a quarter of a render.
_RC = {"text.hinting": "no_hinting"}


@contextmanager
def rendering() -> Iterator[None]:
    """Hold the render lock and the chart rc settings while building and encoding one figure."""
    with RENDER_LOCK, matplotlib.rc_context(_RC):
        yield

DPI = 100
WIDTH_IN = 10.8  # 1080 px: the width Telegram and Discord show at full phone width
TALL_IN = 13.5  # 4:5 portrait, the tallest shape phone chat clients show uncropped
SQUARE_IN = 10.8

# Sizes in points at 100 dpi (1 pt = 1.39 px). A 1080 px image is shown about 360-400 px wide on a phone,
# so 16 pt (22 px) ends up near 8 px on screen: the smallest text we allow.
FS_TITLE = 30
FS_SUBTITLE = 18
FS_LABEL = 20
FS_TICK = 18
FS_LEVEL = 16
FS_SMALL = 16
FS_BIG = 34

BG = "#0f1218"
PANEL = "#161b24"
GRID = "#2a3140"
TEXT = "#e8ebf0"
MUTED = "#9aa3b2"
UP = "#26a69a"
DOWN = "#ef5350"
GREEN = "#35c46a"
AMBER = "#f0b429"
GREY = "#7b8494"
RED = "#ef5350"
BLUE = "#4aa3ff"
VWAP = "#f5c542"
PREV_CLOSE = "#b0b8c6"
CALL_WALL = "#2ecc71"
PUT_WALL = "#ff6b6b"
ZERO_GAMMA = "#c792ea"
VANNA_SUPPORT = "#26c6da"
VANNA_RESISTANCE = "#ff9f43"
TARGET = "#35c46a"
STOP = "#ef5350"
WATERMARK_TEXT = "SIMULATED DATA"
WATERMARK_GID = "watermark"


def new_figure(height_in: float = TALL_IN, width_in: float = WIDTH_IN) -> Figure:
    """A themed figure with an Agg canvas attached (no pyplot, no layout engine: axes are placed by hand
    because constrained/tight layout would cost more than the whole draw)."""
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, facecolor=BG)
    FigureCanvasAgg(fig)
    return fig


def style_axes(ax: Axes, *, grid_axis: str = "both") -> None:
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_color(GRID)
        spine.set_linewidth(1.2)
    ax.tick_params(colors=TEXT, labelsize=FS_TICK, length=6, width=1.2)
    if grid_axis:
        ax.grid(True, axis=grid_axis, color=GRID, linewidth=1.0, alpha=0.9)
        ax.set_axisbelow(True)


def add_title(fig: Figure, title: str, subtitle: str | None = None) -> None:
    fig.text(0.04, 0.985, title, color=TEXT, fontsize=FS_TITLE, fontweight="bold", va="top", ha="left",
             parse_math=False)
    if subtitle:
        fig.text(0.04, 0.985 - _points_to_fig_height(fig, FS_TITLE * 1.45), subtitle, color=MUTED,
                 fontsize=FS_SUBTITLE, va="top", ha="left", parse_math=False)


def _points_to_fig_height(fig: Figure, points: float) -> float:
    return points / 72.0 / fig.get_figheight()


def add_watermark(fig: Figure, text: str = WATERMARK_TEXT) -> Text:
    """A diagonal banner across the whole figure, above every axes, so a screenshot can't lose it."""
    return fig.text(0.5, 0.5, text, color="#ffffff", alpha=0.16, fontsize=96, fontweight="bold",
                    rotation=32, ha="center", va="center", zorder=1000, gid=WATERMARK_GID, parse_math=False)


def maybe_watermark(fig: Figure, data_source: str) -> Text | None:
    return add_watermark(fig) if data_source == "simulated" else None


def find_watermark(fig: Figure) -> Text | None:
    """The watermark artist, if drawn (for tests and callers that inspect a built figure)."""
    for t in fig.texts:
        if t.get_gid() == WATERMARK_GID:
            return t
    return None


def empty_message(ax: Axes, message: str, detail: str | None = None) -> None:
    """Centered text for a panel that has nothing to show."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.text(0.5, 0.56 if detail else 0.5, message, transform=ax.transAxes, ha="center", va="center",
            color=TEXT, fontsize=FS_BIG - 4, fontweight="bold", parse_math=False)
    if detail:
        ax.text(0.5, 0.40, detail, transform=ax.transAxes, ha="center", va="center", color=MUTED,
                fontsize=FS_LABEL, parse_math=False, wrap=True)


def to_png(fig: Figure) -> bytes:
    """Draw the figure with Agg and encode it as an RGB PNG, then drop the ~6 MB pixel buffer."""
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(fig)
    canvas.draw()
    try:
        png = encode_png(np.asarray(canvas.buffer_rgba()))
    finally:
        # Release the renderer now rather than whenever the garbage collector breaks the figure's
        # reference cycles; resetting the cache key makes any later draw build a fresh renderer.
        canvas.renderer = None
        canvas._lastKey = None
    return png


def encode_png(rgba: np.ndarray) -> bytes:
    """RGB PNG through Pillow (matplotlib's own dependency). Level 1 deflate: charts are flat colour, so the
    file stays small while encoding takes a fraction of the default level's time."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[:, :, :3])).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def format_dollars(value: float, decimals: int = 1) -> str:
    """1234567 -> "$1.2M", -2.5e9 -> "-$2.5B", 950 -> "$950"."""
    if value is None or not math.isfinite(value):
        return "n/a"
    sign = "-" if value < 0 else ""
    v = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if v >= limit:
            return f"{sign}${v / limit:.{decimals}f}{suffix}"
    return f"{sign}${v:.0f}"


def format_compact(value: float) -> str:
    """Axis-tick version of format_dollars: short, no trailing ".0"."""
    text = format_dollars(value, decimals=1)
    return text.replace(".0K", "K").replace(".0M", "M").replace(".0B", "B").replace(".0T", "T")


def ny_stamp(when: datetime) -> str:
    """"Fri 27 Nov 2026 12:55 ET" (naive datetimes are taken as New York time)."""
    ts = when.replace(tzinfo=NY) if when.tzinfo is None else when.astimezone(NY)
    return f"{ts:%a} {ts.day} {ts:%b %Y %H:%M} ET"


def finite(values: Iterable[float | None]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def spread_labels(positions: list[float], min_gap: float, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """Move sorted label positions (axes fractions) apart by at least `min_gap`, staying inside [lo, hi]
    where possible, so labels of nearby levels stay readable instead of printing over each other."""
    if not positions:
        return []
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    ys = [positions[i] for i in order]
    for i in range(1, len(ys)):
        ys[i] = max(ys[i], ys[i - 1] + min_gap)
    overflow = ys[-1] - hi
    if overflow > 0:
        ys[-1] -= overflow
        for i in range(len(ys) - 2, -1, -1):
            ys[i] = min(ys[i], ys[i + 1] - min_gap)
    if ys[0] < lo:  # too many labels for the height: spread evenly instead
        step = (hi - lo) / max(len(ys) - 1, 1)
        ys = [lo + i * step for i in range(len(ys))]
    out = [0.0] * len(ys)
    for rank, idx in enumerate(order):
        out[idx] = ys[rank]
    return out
