"""Labels: hand-checked outcomes, windows that stop at the session close, and no look-ahead beyond
what a label is allowed to read (close_t, ATR_t and bars t+1..t+h of the same session)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from core import calendar
from core.model.features import atr
from core.model.model_set import LabelError, LabelParams
from core.types import NY
from tests.fakes.synthetic_bars import random_walk_bars
from training.labels import LABEL_COLUMNS, build_labels


def one_session(closes: list[float], highs: list[float], lows: list[float], day: date = date(2024, 3, 4)):
    open_, _ = calendar.session_bounds(day)
    idx = pd.DatetimeIndex([open_ + pd.Timedelta(minutes=5 * i) for i in range(len(closes))],
                           tz=NY, name="time")
    bars = pd.DataFrame({"open": closes, "high": highs, "low": lows, "close": closes,
                         "volume": 1000.0, "vix": 15.0}, index=idx)
    return bars, pd.Series(1.0, index=idx)  # ATR of 1.0 everywhere keeps the arithmetic readable


P3 = LabelParams(horizon_bars=3, target_atr=1.0, stop_atr=1.0, quality_r=2.0, min_move_atr=0.5)


def test_target_before_stop_is_a_long_win() -> None:
    bars, a = one_session([100, 100.2, 100.5, 100.4, 100, 100],
                          [100, 100.5, 101.1, 100.6, 100, 100], [100, 99.9, 100.3, 99.0, 100, 100])
    lab = build_labels(bars, P3, a).iloc[0]
    assert lab["win_long"] == 1.0 and lab["outcome_r_long"] == 1.0
    assert lab["win_short"] == 0.0 and lab["outcome_r_short"] == -1.0  # 101.1 >= short stop 101
    assert lab["fut_high_ret"] == pytest.approx(101.1 / 100 - 1)
    assert lab["fut_low_ret"] == pytest.approx(99.0 / 100 - 1)
    # best favourable 1.1 at bar 2; worst adverse up to then 0.1: a quality long move
    assert lab["quality_long"] == 1.0
    assert lab["complete"]


def test_bar_touching_target_and_stop_is_a_loss() -> None:
    bars, a = one_session([100, 100, 100, 100, 100], [100, 101.5, 100, 100, 100], [100, 98.5, 100, 100, 100])
    lab = build_labels(bars, P3, a).iloc[0]
    assert lab["win_long"] == 0.0 and lab["outcome_r_long"] == -1.0
    assert lab["win_short"] == 0.0 and lab["outcome_r_short"] == -1.0


def test_timeout_scores_the_close_out_in_r() -> None:
    p = LabelParams(horizon_bars=3, target_atr=2.0, stop_atr=0.5)
    bars, a = one_session([100, 100.1, 100.2, 100.3, 100], [100, 100.2, 100.3, 100.4, 100],
                          [100, 99.9, 100.1, 100.2, 100])
    lab = build_labels(bars, p, a).iloc[0]
    assert lab["win_long"] == 0.0
    assert lab["outcome_r_long"] == pytest.approx(0.3 / 0.5)
    assert lab["outcome_r_short"] == pytest.approx(-0.3 / 0.5)
    # quality: favourable 0.4 < min move 0.5 ATR
    assert lab["quality_long"] == 0.0


def test_target_win_is_reported_in_r_units() -> None:
    p = LabelParams(horizon_bars=3, target_atr=1.5, stop_atr=0.5)
    bars, a = one_session([100, 101, 101, 101, 101], [100, 101.6, 101, 101, 101], [100, 99.8, 101, 101, 101])
    assert build_labels(bars, p, a).iloc[0]["outcome_r_long"] == pytest.approx(3.0)


def test_quality_uses_adverse_excursion_up_to_the_best_point_only() -> None:
    # up 1.0 first (adverse 0.2 so far), then a deep fall after the peak: still quality for long
    bars, a = one_session([100, 100.5, 100.9, 99, 100], [100, 100.6, 101.0, 99.5, 100],
                          [100, 99.8, 100.5, 98.5, 100])
    lab = build_labels(bars, P3, a).iloc[0]
    assert lab["quality_long"] == 1.0
    # short side: best 1.5 down at bar 3, adverse up to then 1.0 -> 1.5 < 2 x 1.0
    assert lab["quality_short"] == 0.0


def test_windows_reaching_the_close_are_truncated_and_labelled() -> None:
    bars = random_walk_bars(n_sessions=4, bar_minutes=5, seed=2)
    p = LabelParams(horizon_bars=12)
    lab = build_labels(bars, p, atr(bars))
    day = pd.Series(bars.index.date, index=bars.index)
    for d in day.unique():
        rows = lab[day == d]
        assert np.isnan(rows["fut_high_ret"].iloc[-1])  # the last bar has no window at all
        assert not rows["complete"].iloc[-1]
        tail = rows.iloc[-12:-1]
        assert tail["fut_high_ret"].notna().all() and tail["win_long"].notna().all()
        assert tail["complete"].all() or d == day.iloc[0]  # the first session's early bars lack ATR
    with_atr = lab[atr(bars).notna()]
    # every bar with ATR but a session's last is labelled
    assert with_atr["complete"].sum() == len(with_atr) - sum(1 for d in day.unique() if (day[with_atr.index] == d).any())


def test_truncated_labels_close_at_the_close_and_never_read_past_it() -> None:
    # 5 bars left before the close, a 12-bar horizon: the window is the 5 bars, the exit the last close
    p = LabelParams(horizon_bars=12, target_atr=5.0, stop_atr=5.0)
    bars = random_walk_bars(n_sessions=2, bar_minutes=5, seed=8)
    first = bars.index.date == bars.index.date[0]
    a = pd.Series(1.0, index=bars.index)
    base = build_labels(bars, p, a)
    t = int(first.sum()) - 6  # row t has bars t+1 .. t+5 before the session's close
    session = bars.iloc[: int(first.sum())]
    entry = bars["close"].iloc[t]
    row = base.iloc[t]
    assert row["complete"]
    assert row["fut_high_ret"] == pytest.approx(session["high"].iloc[t + 1:].max() / entry - 1)
    assert row["fut_low_ret"] == pytest.approx(session["low"].iloc[t + 1:].min() / entry - 1)
    assert row["outcome_r_long"] == pytest.approx((session["close"].iloc[-1] - entry) / 5.0)
    # Rewriting every bar after the close (the next session) changes no label of the first session.
    mutated = bars.copy()
    mutated.loc[~first, ["open", "high", "low", "close"]] *= 3.0
    after = build_labels(mutated, p, a)
    pd.testing.assert_frame_equal(after[first], base[first], check_exact=True)


def test_labels_never_read_the_next_session() -> None:
    bars = random_walk_bars(n_sessions=3, bar_minutes=5, seed=5)
    a = atr(bars)
    base = build_labels(bars, LabelParams(), a)
    first_day = bars.index.date == bars.index.date[0]
    mutated = bars.copy()
    mutated.loc[~first_day, ["high", "low", "close"]] *= 1.5
    after = build_labels(mutated, LabelParams(), a)
    pd.testing.assert_frame_equal(after[first_day], base[first_day], check_exact=True)


def test_labels_read_only_close_atr_and_the_window() -> None:
    bars = random_walk_bars(n_sessions=6, bar_minutes=5, seed=6)
    a = atr(bars)
    p = LabelParams(horizon_bars=12)
    base = build_labels(bars, p, a)
    rng = np.random.default_rng(0)
    for t in rng.integers(20, len(bars) - 40, 15):
        mutated = bars.copy()
        # everything up to t except close_t, and everything after t+h
        mutated.iloc[:t, :] *= 1.3
        mutated.iloc[t, mutated.columns.get_indexer(["open", "high", "low", "volume", "vix"])] *= 1.3
        mutated.iloc[t + p.horizon_bars + 1:, :] *= 0.7
        after = build_labels(mutated, p, a)
        pd.testing.assert_series_equal(after.iloc[t], base.iloc[t], check_exact=True)
        # ... and the window itself does matter (the test can fail)
        inside = bars.copy()
        inside.iloc[t + 1: t + p.horizon_bars + 1, :] *= 1.05
        if base["complete"].iloc[t]:
            assert not build_labels(inside, p, a).iloc[t].equals(base.iloc[t])


def test_columns_and_nan_atr() -> None:
    bars = random_walk_bars(n_sessions=180, bar_minutes=5, seed=1)
    a = atr(bars)
    lab = build_labels(bars, LabelParams(), a)  # speed is measured in bench/, not asserted here
    assert list(lab.columns) == LABEL_COLUMNS
    assert lab["complete"].dtype == bool
    assert not lab.loc[a.isna(), "complete"].any()
    assert lab.loc[a.isna(), "win_long"].isna().all()
    done = lab[lab["complete"]]
    assert set(np.unique(done[["win_long", "win_short", "quality_long", "quality_short"]])) == {0.0, 1.0}
    assert done["outcome_r_long"].between(-1, 1).all()


def test_params_are_validated_and_serialisable() -> None:
    p = LabelParams(horizon_bars=6, target_atr=1.5)
    assert LabelParams.from_dict(p.to_dict()) == p
    with pytest.raises(LabelError):
        LabelParams(horizon_bars=0)
    with pytest.raises(LabelError):
        LabelParams(stop_atr=0)
    bars, a = one_session([100, 101], [100, 101], [100, 101])
    with pytest.raises(LabelError, match="index"):
        build_labels(bars, P3, a.iloc[:1])
