"""Charts: every render is a decodable ~1080 px PNG; the figures hold what the phone should see."""

from __future__ import annotations

import asyncio
import gc
import io
import math
import struct
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime, timedelta

import matplotlib.dates as mdates
import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from charts import (
    ChartError,
    build_backtest_figure,
    build_levels_figure,
    build_performance_figure,
    build_prediction_figure,
    render_backtest_chart,
    render_levels_chart,
    render_performance_chart,
    render_prediction_chart,
    style,
)
from charts.backtest_chart import parse_calibration, parse_equity
from charts.levels_chart import select_strikes
from core.types import NY, Level
from tests.fakes import chart_inputs as fx

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def assert_phone_png(data: bytes, height: int = 1350) -> np.ndarray:
    assert png_size(data) == (1080, height)
    pixels = mpimg.imread(io.BytesIO(data), format="png")  # a full decode: CRCs and zlib stream are valid
    assert pixels.shape[:2] == (height, 1080)
    assert pixels.std() > 0.01, "blank image"
    return pixels


def texts(fig: Figure) -> list[str]:
    found = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        found += [t.get_text() for t in ax.texts]
        found.append(ax.get_title(loc="left"))
    return found


def any_text(fig: Figure, needle: str) -> bool:
    return any(needle in t for t in texts(fig))


def predict_fig(bars, pred=None, **kw) -> Figure:
    args = {"prev_close": 597.4, "horizon_bars": 6, "bar_minutes": 5} | kw
    return build_prediction_figure(pred or fx.prediction(bars), bars, **args)


def candle_artists(fig: Figure) -> tuple[list[LineCollection], list[PolyCollection]]:
    ax = fig.axes[0]
    return ([c for c in ax.collections if isinstance(c, LineCollection) and c.get_zorder() == 3.5],
            [c for c in ax.collections if isinstance(c, PolyCollection) and not isinstance(c, LineCollection)])


# --- prediction chart -------------------------------------------------------------------------------------


def test_normal_day_is_a_phone_sized_png_with_all_levels():
    bars = fx.session_bars()
    png = render_prediction_chart(fx.prediction(bars), bars, prev_close=597.4, horizon_bars=6, bar_minutes=5)
    assert_phone_png(png)

    fig = predict_fig(bars)
    wicks, bodies = candle_artists(fig)
    assert len(wicks) == 1 and len(bodies) == 1  # one artist each, not one per bar
    assert len(wicks[0].get_segments()) == 78 and len(bodies[0].get_paths()) == 78
    for label in ("Call wall", "Put wall", "Zero γ", "Vanna S", "Vanna R", "Prev close 597.40", "VWAP",
                  "Target", "Stop", "Pred hi", "Pred lo"):
        assert any_text(fig, label), label
    assert any_text(fig, "SPY · Fri 27 Nov 2026 16:00 ET")
    assert any_text(fig, "spy-5m-20261126-0201")
    assert any_text(fig, "▲ LONG") and any_text(fig, "Win prob 63%") and any_text(fig, "Quality 84/100")
    assert style.find_watermark(fig) is None


def test_alert_charts_mark_no_threshold_and_predict_charts_mark_the_given_one():
    bars = fx.session_bars()
    marked, unmarked = predict_fig(bars, threshold=70), predict_fig(bars, threshold=None)
    assert any_text(marked, "alert at ≥ 70") and not any_text(unmarked, "alert at")
    markers = [[a for a in fig.artists if isinstance(a, Line2D)] for fig in (marked, unmarked)]
    assert len(markers[0]) == 1 and markers[1] == []


def test_only_the_last_session_is_drawn_and_prev_close_falls_back_to_it():
    bars = fx.two_sessions()
    fig = predict_fig(bars, prev_close=None)
    _, bodies = candle_artists(fig)
    assert len(bodies[0].get_paths()) == 78
    yesterday_close = bars["close"].iloc[77]
    assert any_text(fig, f"Prev close {yesterday_close:.2f}")


def test_first_bar_of_a_session_renders():
    bars = fx.two_sessions(n_today=1)
    pred = fx.prediction(bars, quality=52)
    png = render_prediction_chart(pred, bars, prev_close=None, horizon_bars=6, bar_minutes=5)
    assert_phone_png(png)
    fig = predict_fig(bars, pred, prev_close=None)
    wicks, bodies = candle_artists(fig)
    assert len(bodies[0].get_paths()) == 1
    assert any_text(fig, "Quality 52/100")
    assert any_text(fig, "09:30")


def test_no_levels_draws_no_level_lines():
    bars = fx.session_bars()
    pred = fx.prediction(bars, levels=False)
    png = render_prediction_chart(pred, bars, prev_close=None, horizon_bars=6, bar_minutes=5)
    assert_phone_png(png)
    fig = predict_fig(bars, pred, prev_close=None)
    for label in ("Call wall", "Put wall", "Zero γ", "Vanna", "Prev close", "Off chart"):
        assert not any_text(fig, label), label


def test_simulated_data_gets_the_watermark():
    bars = fx.session_bars()
    fig = predict_fig(bars, fx.prediction(bars, data_source="simulated"))
    mark = style.find_watermark(fig)
    assert mark is not None and mark.get_text() == "SIMULATED DATA" and mark.get_rotation() != 0
    png_sim = render_prediction_chart(fx.prediction(bars, data_source="simulated"), bars, prev_close=597.4,
                                      horizon_bars=6, bar_minutes=5)
    png_real = render_prediction_chart(fx.prediction(bars), bars, prev_close=597.4, horizon_bars=6,
                                       bar_minutes=5)
    assert_phone_png(png_sim)
    assert png_sim != png_real


def test_nan_vix_renders_as_not_available():
    bars = fx.session_bars(vix=None)
    assert bars["vix"].isna().all()
    for vix in (None, float("nan")):
        pred = fx.prediction(bars, vix=vix)
        assert_phone_png(render_prediction_chart(pred, bars, prev_close=None, horizon_bars=6, bar_minutes=5))
        assert any_text(predict_fig(bars, pred), "VIX n/a")


def test_y_range_holds_the_forecast_and_skips_far_levels():
    bars = fx.session_bars()
    base = fx.prediction(bars)
    far = base.price * 1.2
    pred = replace(base, call_wall=far, vanna_resistance=[Level(base.price * 1.001, 0.9)])
    fig = predict_fig(bars, pred)
    y0, y1 = fig.axes[0].get_ylim()
    for price in (pred.predicted_high, pred.predicted_low, pred.target, pred.stop, bars["high"].max(),
                  bars["low"].min()):
        assert y0 <= price <= y1
    assert y1 < far
    assert any_text(fig, f"Off chart: Call wall {far:.2f} ↑")


def test_short_direction_and_score_colours():
    bars = fx.session_bars()
    fig = predict_fig(bars, fx.prediction(bars, direction="short", quality=70))
    assert any_text(fig, "▼ SHORT")
    quality = next(t for t in fig.texts if t.get_text().startswith("Quality"))
    assert quality.get_color() == style.AMBER
    grey = next(t for t in predict_fig(bars, fx.prediction(bars, quality=40)).texts
                if t.get_text().startswith("Quality"))
    assert grey.get_color() == style.GREY


def test_warnings_are_listed_and_capped():
    bars = fx.session_bars()
    warnings = [f"warning number {i}" for i in range(6)]
    fig = predict_fig(bars, fx.prediction(bars, levels=False, warnings=warnings))
    assert any_text(fig, "warning number 0") and any_text(fig, "… and 3 more")
    assert not any_text(fig, "warning number 5")


@pytest.mark.parametrize("kwargs, message", [
    ({"horizon_bars": 0}, "horizon_bars"),
    ({"bar_minutes": 0}, "bar_minutes"),
])
def test_bad_arguments_raise_chart_error(kwargs, message):
    bars = fx.session_bars()
    with pytest.raises(ChartError, match=message):
        predict_fig(bars, **kwargs)


def test_empty_or_priceless_bars_raise_chart_error():
    bars = fx.session_bars()
    with pytest.raises(ChartError, match="no bars"):
        predict_fig(bars.iloc[:0], fx.prediction(bars))
    broken = bars.copy()
    broken["close"] = np.nan
    with pytest.raises(ChartError, match="no bars with prices"):
        predict_fig(broken, fx.prediction(bars))


def test_naive_index_is_taken_as_new_york_time():
    bars = fx.session_bars()
    naive = bars.set_axis(bars.index.tz_localize(None))
    fig = predict_fig(naive, fx.prediction(bars))
    assert any_text(fig, "10:30")


# --- levels chart -----------------------------------------------------------------------------------------


def test_levels_chart_shows_both_panels_around_spot():
    report = fx.levels_report()
    assert_phone_png(render_levels_chart(report, data_source="tradier"))
    fig = build_levels_figure(report, data_source="tradier")
    assert any_text(fig, "Net GEX by strike") and any_text(fig, "Net VEX by strike")
    gex_ax = fig.axes[0]
    bars = [c for c in gex_ax.collections if isinstance(c, PolyCollection)]
    assert len(bars) == 1 and len(bars[0].get_paths()) == len(select_strikes(report.strikes, report.spot)) <= 40
    low, high = gex_ax.get_ylim()
    gex = [s.net_gex for s in select_strikes(report.strikes, report.spot)]
    assert low < min(gex) and high > max(gex)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["Spot 600.00", "Call wall 606.00", "Put wall 591.00", "Zero γ 598.20"]
    assert any_text(fig, "Convention: dealers long calls, short puts")
    assert style.find_watermark(fig) is None


def test_select_strikes_window_and_sparse_chain():
    report = fx.levels_report(n_strikes=120)
    chosen = select_strikes(report.strikes, 600.0)
    assert len(chosen) == 40
    assert all(abs(s.strike - 600.0) <= 30 for s in chosen)
    assert [s.strike for s in chosen] == sorted(s.strike for s in chosen)
    sparse = fx.levels_report(step=25.0, n_strikes=12).strikes  # only ~2 strikes within 5 %
    assert len(select_strikes(sparse, 600.0)) == 12


def test_empty_levels_report_is_a_readable_image():
    report = fx.levels_report(empty=True)
    assert_phone_png(render_levels_chart(report, data_source="simulated"))
    fig = build_levels_figure(report, data_source="simulated")
    assert any_text(fig, "No usable option data")
    assert any_text(fig, "no greeks: 14")
    assert style.find_watermark(fig) is not None


def test_dollar_formatting():
    assert style.format_dollars(1_234_567) == "$1.2M"
    assert style.format_dollars(-2.5e9) == "-$2.5B"
    assert style.format_dollars(950) == "$950"
    assert style.format_dollars(15_000) == "$15.0K"
    assert style.format_compact(15_000_000) == "$15M"
    assert style.format_dollars(float("nan")) == "n/a"


# --- backtest and performance -----------------------------------------------------------------------------


def test_backtest_chart_with_data():
    equity = fx.equity_points()
    png = render_backtest_chart(fx.calibration_rows(), equity, title="SPY backtest", data_source="tradier")
    assert_phone_png(png)
    fig = build_backtest_figure(fx.calibration_rows(), equity, title="SPY backtest", data_source="simulated")
    assert any_text(fig, "n=41") and any_text(fig, f"Equity {equity[-1][1]:+.1f} R · 60 alerts")
    assert style.find_watermark(fig) is not None


def test_backtest_chart_with_empty_inputs():
    assert_phone_png(render_backtest_chart([], [], title="SPY backtest", data_source="tradier"))
    fig = build_backtest_figure([], [], title="SPY backtest", data_source="tradier")
    assert sum("No alerts" in t for t in texts(fig)) == 2


def test_equity_accepts_dicts_with_per_alert_r():
    t = datetime(2026, 11, 2, 10, 0, tzinfo=NY)
    rows = [{"time": t.replace(day=4), "r": -1.0}, {"time": t, "r": 1.5}, {"time": t.replace(day=3), "r": 2.0}]
    series = parse_equity(rows)
    assert series.times == [t, t.replace(day=3), t.replace(day=4)]
    assert series.cumulative_r.tolist() == [1.5, 3.5, 2.5]
    assert_phone_png(render_backtest_chart([], rows, title="dicts", data_source="csv"))
    with pytest.raises(ChartError):
        parse_equity([1.0, 2.0])


def test_backtest_report_shapes_are_accepted():
    """The shapes training.backtest.run_backtest returns: a calibration mapping and ISO-string times."""
    calibration = {"win_probability": fx.calibration_rows(), "quality": []}
    curve = [{"time": t.isoformat(), "cum_r": v} for t, v in fx.equity_points(10)]
    fig = build_backtest_figure(calibration, curve, title="report", data_source="tradier")
    assert any_text(fig, "n=41") and any_text(fig, "10 alerts")
    assert parse_equity(curve).times is not None
    with pytest.raises(ChartError):
        parse_calibration(["60-70"])  # type: ignore[list-item]


def test_calibration_rows_accept_percentages_and_skip_empty_buckets():
    rows = [{"lo": 80, "hi": 90, "win_rate": 75.0, "n": 10}, {"predicted": 0.6, "realised": None, "count": 3},
            {"predicted": 0.7, "realized": 0.5, "count": 0}]
    points = parse_calibration(rows)
    assert len(points) == 1
    assert math.isclose(points[0].predicted, 0.85) and math.isclose(points[0].realised, 0.75)


def test_performance_chart():
    cum = [v for _, v in fx.equity_points(20)]
    png = render_performance_chart(fx.calibration_rows(), cum, title="Live performance")
    assert_phone_png(png, height=1080)
    fig = build_performance_figure(fx.calibration_rows(), cum, title="Live performance")
    assert any_text(fig, "20 alerts")
    empty = render_performance_chart([], [], title="Live performance")
    assert_phone_png(empty, height=1080)


# --- resources and concurrency ----------------------------------------------------------------------------


def test_rendered_figures_are_released():
    bars = fx.session_bars()
    fig = predict_fig(bars)
    ref = weakref.ref(fig)
    style.to_png(fig)
    assert fig.canvas.renderer is None  # the pixel buffer is dropped right away
    del fig
    gc.collect()
    assert ref() is None


def test_renders_from_threads_match_sequential_renders():
    bars = fx.session_bars()
    pred = fx.prediction(bars)

    def render(_: int) -> bytes:
        return render_prediction_chart(pred, bars, prev_close=597.4, horizon_bars=6, bar_minutes=5)

    expected = render(0)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(render, range(4)))
    assert all(r == expected for r in results)


async def test_render_in_asyncio_to_thread():
    report = fx.levels_report()
    png = await asyncio.to_thread(render_levels_chart, report, data_source="tradier")
    assert png_size(png) == (1080, 1350)


def test_spread_labels_keeps_order_and_gap():
    placed = style.spread_labels([0.5, 0.51, 0.49, 0.9, 0.99], 0.05)
    order = sorted(range(5), key=lambda i: [0.5, 0.51, 0.49, 0.9, 0.99][i])
    ys = [placed[i] for i in order]
    assert all(b - a >= 0.05 - 1e-9 for a, b in zip(ys, ys[1:], strict=False))
    assert max(placed) <= 1.0


def test_no_band_is_drawn_past_the_close():
    bars = fx.session_bars(day=date(2026, 11, 25))  # a whole regular session: the last bar closes at 16:00
    at_close = predict_fig(bars, fx.prediction(bars))
    assert any_text(at_close, "no forecast past the close") and not any_text(at_close, "Pred hi")
    before = predict_fig(bars.iloc[:-1], fx.prediction(bars.iloc[:-1]))  # made at 15:55: one bar left
    assert any_text(before, "next 5 min") and any_text(before, "Pred hi")


def _tick_labels(ax) -> list[str]:
    ax.figure.canvas.draw()
    return [t.get_text() for t in ax.get_yticklabels() if t.get_text()]


def test_backtest_chart_has_both_calibration_panels_and_distinct_r_ticks():
    calibration = {"win_probability": fx.calibration_rows(),
                   "quality": [{"predicted": 0.62, "realised": 0.60, "count": 500},
                               {"predicted": 0.81, "realised": 0.79, "count": 77}]}
    t0 = datetime(2026, 8, 3, 10, 0, tzinfo=NY)
    curve = [{"time": (t0 + timedelta(days=i)).isoformat(), "cum_r": v}
             for i, v in enumerate([0.4, 0.9, 0.5, 1.3, 0.8])]  # a range of about 1R: ticks every 0.2R
    fig = build_backtest_figure(calibration, curve, title="report", data_source="tradier",
                                window={"start": "2026-06-01T09:30:00-04:00", "end": "2026-11-20T16:00:00-05:00"})
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert any("Trade quality" in t for t in titles) and any("Win rate" in t for t in titles)
    assert any_text(fig, "n=500") and any_text(fig, "n=41")
    equity_ax = next(ax for ax in fig.axes if ax.get_title(loc="left").startswith("Equity"))
    labels = _tick_labels(equity_ax)
    assert len(labels) == len(set(labels)) >= 3, labels  # "+0R" twice was the old rounding
    lo, hi = equity_ax.get_xlim()  # the axis spans the evaluated window, not just the alerts
    assert mdates.num2date(lo).date() == date(2026, 6, 1) and mdates.num2date(hi).date() == date(2026, 11, 20)


def test_calibration_n_labels_do_not_pile_up():
    crowded = [{"predicted": p, "realised": p, "count": 300} for p in (0.60, 0.605, 0.61, 0.615, 0.80)]
    fig = build_backtest_figure(crowded, [], title="crowded", data_source="tradier")
    ax = fig.axes[0]
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.texts if t.get_text().startswith("n=")]
    assert 2 <= len(boxes) < 5  # a label too close to two labelled neighbours is left out
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
