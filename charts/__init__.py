"""PNG charts for chat replies: prediction, options levels, backtest and live performance.

Every `render_*` function is synchronous and pure (inputs -> PNG bytes, ~1080 px wide), safe to call from
`asyncio.to_thread`; the matching `build_*_figure` returns the matplotlib Figure for inspection.
"""

from charts.backtest_chart import build_backtest_figure, render_backtest_chart
from charts.levels_chart import build_levels_figure, render_levels_chart
from charts.performance_chart import build_performance_figure, render_performance_chart
from charts.prediction_chart import build_prediction_figure, render_prediction_chart
from charts.style import ChartError

__all__ = [
    "ChartError",
    "build_backtest_figure",
    "build_levels_figure",
    "build_performance_figure",
    "build_prediction_figure",
    "render_backtest_chart",
    "render_levels_chart",
    "render_performance_chart",
    "render_prediction_chart",
]
