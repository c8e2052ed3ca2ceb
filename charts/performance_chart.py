"""The /performance scorecard: live calibration and cumulative R per closed alert (shares the backtest look)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from charts import style
from charts.backtest_chart import EquitySeries, build_scorecard_figure, parse_calibration


def build_performance_figure(calibration: Sequence[Mapping], cumulative_r: Sequence[float], *,
                             title: str) -> Figure:
    """The performance chart as a Figure (for inspection in tests); `render_performance_chart` encodes it."""
    values = np.array([v for v in style.finite(cumulative_r)], dtype="float64")
    return build_scorecard_figure(parse_calibration(calibration), EquitySeries(None, values), title=title,
                                  subtitle="live alerts", height_in=style.SQUARE_IN)


def render_performance_chart(calibration: Sequence[Mapping], cumulative_r: Sequence[float], *,
                             title: str) -> bytes:
    """PNG bytes (about 1080 x 1080). `cumulative_r[i]` is the running total in R after closed alert i+1."""
    with style.rendering():
        return style.to_png(build_performance_figure(calibration, cumulative_r, title=title))
