"""Features: fixed columns, sane values, and no look-ahead (cutting at t changes no row <= t)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from core.model.features import FEATURE_NAMES, FeatureError, atr, build_features
from tests.fakes.synthetic_bars import random_walk_bars


@pytest.fixture(scope="module")
def bars5() -> pd.DataFrame:
    return random_walk_bars(n_sessions=45, bar_minutes=5, seed=3, start=date(2024, 10, 1))


@pytest.fixture(scope="module")
def bars60() -> pd.DataFrame:
    return random_walk_bars(n_sessions=60, bar_minutes=60, seed=4, start=date(2024, 10, 1))


def test_columns_and_index(bars5: pd.DataFrame) -> None:
    f = build_features(bars5, 5)
    assert list(f.columns) == FEATURE_NAMES
    assert f.index.equals(bars5.index)
    assert f.dtypes.eq("float64").all()
    assert not np.isinf(f.to_numpy()).any()
    # Once enough history exists, every feature is known on an ordinary bar.
    tail = f.iloc[-100:]
    assert tail.drop(columns=["or_pos", "rv_session"]).notna().all().all()
    assert tail.loc[tail["minutes_since_open"] > 5, "rv_session"].notna().all()  # no return on the first bar
    assert tail.loc[tail["minutes_since_open"] >= 30, "or_pos"].notna().all()


@pytest.mark.parametrize("fixture,minutes", [("bars5", 5), ("bars60", 60)])
def test_no_look_ahead_random_cuts(fixture: str, minutes: int, request: pytest.FixtureRequest) -> None:
    bars = request.getfixturevalue(fixture)
    full = build_features(bars, minutes)
    rng = np.random.default_rng(11)
    cuts = rng.integers(1, len(bars), 25)
    for cut in cuts:
        part = build_features(bars.iloc[:cut], minutes)
        pd.testing.assert_frame_equal(part, full.iloc[:cut], check_exact=True)


def test_future_bars_do_not_move_past_rows(bars5: pd.DataFrame) -> None:
    full = build_features(bars5, 5)
    t = 2000
    mutated = bars5.copy()
    mutated.iloc[t + 1:, :] = mutated.iloc[t + 1:, :] * 1.7
    after = build_features(mutated, 5)
    pd.testing.assert_frame_equal(after.iloc[: t + 1], full.iloc[: t + 1], check_exact=True)
    assert not after.iloc[t + 1:].equals(full.iloc[t + 1:])


def test_values_match_definitions(bars5: pd.DataFrame) -> None:
    f = build_features(bars5, 5)
    close = bars5["close"]
    pd.testing.assert_series_equal(f["ret_3"], (close / close.shift(3) - 1).rename("ret_3"))
    day = pd.Series(bars5.index.date, index=bars5.index)
    first = ~day.duplicated()
    second_day = bars5.index[first][1]
    prev_close = close[bars5.index < second_day].iloc[-1]
    assert f.loc[second_day, "gap"] == pytest.approx(bars5.loc[second_day, "open"] / prev_close - 1)
    # Minutes since open are counted to the bar's close.
    assert f.loc[bars5.index[first][3], "minutes_since_open"] == 5
    assert f["minutes_since_open"].max() == 390


def test_opening_range_known_only_after_30_minutes(bars5: pd.DataFrame) -> None:
    f = build_features(bars5, 5)
    mins = f["minutes_since_open"]
    assert f.loc[mins < 30, "or_pos"].isna().all()
    assert f.loc[mins >= 30, "or_pos"].iloc[200:].notna().all()


def test_early_close_and_60_minute_bars(bars60: pd.DataFrame) -> None:
    f = build_features(bars60, 60)
    # 2024-11-29 closes at 13:00: its last (half-hour) bar ends 210 minutes after the open.
    day = f[f.index.date == date(2024, 11, 29)]
    assert day["minutes_since_open"].iloc[-1] == 240  # bar start 12:30 + 60
    assert day["or_pos"].notna().all()  # the first 60-minute bar already covers the opening range


def test_atr_matches_hand_computation() -> None:
    idx = pd.date_range("2024-03-04 09:30", periods=4, freq="5min", tz="America/New_York", name="time")
    bars = pd.DataFrame({"open": [10, 11, 12, 11.0], "high": [11, 12, 13, 12.0], "low": [9, 10, 11, 8.0],
                         "close": [10.5, 11.5, 12.5, 9.0], "volume": 1.0, "vix": 15.0}, index=idx)
    got = atr(bars, n=2)
    # true ranges: 2, max(2, 1.5, .5)=2, max(2, 1.5, .5)=2, max(4, .5, 4.5)=4.5
    assert np.isnan(got.iloc[0])
    assert got.iloc[1:].tolist() == [2.0, 2.0, 3.25]


def test_builds_on_180_sessions() -> None:
    bars = random_walk_bars(n_sessions=180, bar_minutes=5, seed=1)
    assert len(bars) > 13_900
    build_features(bars.iloc[:500], 5)  # warm caches (calendar)
    assert len(build_features(bars, 5)) == len(bars)  # speed is measured in bench/, not asserted here


def test_bad_input_is_refused(bars5: pd.DataFrame) -> None:
    with pytest.raises(FeatureError, match="close"):
        build_features(bars5.drop(columns=["close"]), 5)
    with pytest.raises(FeatureError, match="bar_minutes"):
        build_features(bars5, 7)
    with pytest.raises(FeatureError, match="sorted"):
        build_features(bars5.iloc[::-1], 5)
    assert list(build_features(bars5.iloc[:0], 5).columns) == FEATURE_NAMES


def test_first_bar_true_range_excludes_the_overnight_gap(bars5: pd.DataFrame) -> None:
    from core.model.features import true_range

    bars = bars5.copy()
    days = pd.Index(bars.index.date)
    first = np.r_[True, days[1:] != days[:-1]]
    # Gap every session up by 5 %: the first bars' true range must stay their own high - low.
    session_no = np.cumsum(first)
    bars[["open", "high", "low", "close"]] *= (1.05 ** session_no)[:, None]
    tr = true_range(bars)
    np.testing.assert_allclose(tr[first], (bars["high"] - bars["low"])[first])
    f = build_features(bars, 5)
    assert (f.loc[first, "gap"].iloc[1:] > 0.04).all()  # the gap is its own feature


def test_time_to_close_and_profile_ahead(bars5: pd.DataFrame) -> None:
    f = build_features(bars5, 5)
    days = pd.Index(bars5.index.date)
    last = np.r_[days[1:] != days[:-1], True]
    assert (f.loc[last, "minutes_to_close"] == 0).all()
    first = f[(f["minutes_since_open"] == 5)]
    early_close = pd.Index(first.index.date) == date(2024, 11, 29)  # 13:00 close after Thanksgiving
    assert (first.loc[~early_close, "minutes_to_close"] == 385).all()
    assert (first.loc[early_close, "minutes_to_close"] == 205).all()
    # The profile ahead shrinks towards the close: nothing left on the last bar.
    assert (f.loc[last, "tr_profile_ahead"].dropna() == 0).all()
    assert f["rel_volume_sessions"].iloc[0] == 0 and f["rel_volume_sessions"].iloc[-1] >= 19
