"""Scoring one prediction from the bars that followed it, and the scorecard over a hand-built log."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from bot.formatting import format_scorecard
from bot.scorecard import ScoringError, compute_scorecard, score_outcome
from bot.state import PredictionRow
from core.types import NY

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=NY)  # a Wednesday session, 16:00 close


def bars(start: datetime, hlc: list[tuple[float, float, float]], minutes: int = 5) -> pd.DataFrame:
    idx = pd.DatetimeIndex([start + timedelta(minutes=minutes * i) for i in range(len(hlc))], name="time")
    return pd.DataFrame(
        {"open": [c for _, _, c in hlc], "high": [h for h, _, _ in hlc], "low": [lo for _, lo, _ in hlc],
         "close": [c for _, _, c in hlc], "volume": 1000.0, "vix": 13.0},
        index=idx,
    )


def pred(direction: str = "long", as_of: datetime = T0, horizon_minutes: int = 60, **over: float) -> PredictionRow:
    if direction == "long":
        base = {"price": 100.0, "stop": 99.0, "target": 101.5}
    else:
        base = {"price": 100.0, "stop": 101.0, "target": 98.0}
    base.update(over)
    return PredictionRow(
        id=1, symbol="SPY", as_of=as_of, vix=13.0, direction=direction, quality_score=50.0, win_probability=0.5,
        predicted_high=base["price"] + 1, predicted_low=base["price"] - 1, model_version="v1",
        data_source="simulated", horizon_end=as_of + timedelta(minutes=horizon_minutes), source="scan",
        requested_by=None, alerted=False, logged_at=as_of, **base,
    )


FLAT = (100.2, 99.8, 100.0)


def test_long_target_first() -> None:
    out = score_outcome(pred(), bars(T0, [FLAT, (101.6, 99.9, 101.4), (100.5, 98.0, 98.5)]))
    assert out["first_hit"] == "target"
    assert out["outcome_r"] == pytest.approx(1.5)
    assert (out["realised_high"], out["realised_low"], out["bars"]) == (101.6, 98.0, 3)


def test_long_stop_first() -> None:
    out = score_outcome(pred(), bars(T0, [FLAT, (100.1, 98.9, 99.2), (102.0, 99.5, 101.8)]))
    assert (out["first_hit"], out["outcome_r"]) == ("stop", -1.0)
    assert out["realised_high"] == 102.0


def test_bar_touching_both_counts_as_stop() -> None:
    out = score_outcome(pred(), bars(T0, [FLAT, (101.7, 98.9, 100.0)]))
    assert (out["first_hit"], out["outcome_r"]) == ("stop", -1.0)
    short = score_outcome(pred("short"), bars(T0, [(101.2, 97.5, 99.0)]))
    assert (short["first_hit"], short["outcome_r"]) == ("stop", -1.0)


def test_timeout_is_the_close_out_return_in_r() -> None:
    out = score_outcome(pred(stop=99.5), bars(T0, [FLAT] * 11 + [(100.5, 100.1, 100.3)]))
    assert out["first_hit"] == "none"
    assert out["outcome_r"] == pytest.approx(0.3 / 0.5)
    short = score_outcome(pred("short"), bars(T0, [FLAT, (100.9, 99.5, 100.6)]))
    assert short["first_hit"] == "none"
    assert short["outcome_r"] == pytest.approx(-0.6)


def test_short_target_first_mirrors_long() -> None:
    out = score_outcome(pred("short"), bars(T0, [FLAT, (100.3, 97.9, 98.1)]))
    assert (out["first_hit"], out["outcome_r"]) == ("target", pytest.approx(2.0))


def test_only_bars_inside_the_window_count() -> None:
    before = bars(T0 - timedelta(minutes=10), [(150.0, 50.0, 100.0)] * 2)  # start before as_of
    after_horizon = bars(T0 + timedelta(minutes=60), [(150.0, 50.0, 100.0)])  # closes after horizon_end
    inside = bars(T0, [FLAT] * 12)
    frame = pd.concat([before, inside, after_horizon])
    out = score_outcome(pred(), frame)
    assert (out["first_hit"], out["bars"], out["realised_high"], out["realised_low"]) == ("none", 12, 100.2, 99.8)


def test_never_past_the_session_close() -> None:
    late = datetime(2024, 11, 29, 12, 40, tzinfo=NY)  # day after Thanksgiving: 13:00 close
    frame = bars(late, [FLAT] * 4 + [(150.0, 50.0, 120.0)] * 8)  # 13:00 onwards must not count
    out = score_outcome(pred(as_of=late), frame)
    assert (out["bars"], out["first_hit"], out["realised_high"]) == (4, "none", 100.2)
    next_day = pd.concat([bars(T0.replace(hour=15, minute=55), [FLAT]),
                          bars(datetime(2024, 5, 2, 9, 30, tzinfo=NY), [(150.0, 50.0, 120.0)])])
    at_close = score_outcome(pred(as_of=T0.replace(hour=15, minute=55), horizon_minutes=24 * 60), next_day)
    assert (at_close["bars"], at_close["first_hit"]) == (1, "none")


def test_no_bars_in_the_window() -> None:
    close = T0.replace(hour=16, minute=0)
    out = score_outcome(pred(as_of=close), bars(close, [(150.0, 50.0, 120.0)]))
    assert out == {"realised_high": 100.0, "realised_low": 100.0, "first_hit": "none", "outcome_r": 0.0,
                   "bars": 0, "exit_price": 100.0}


def test_stop_on_the_wrong_side_is_refused() -> None:
    with pytest.raises(ScoringError, match="stop"):
        score_outcome(pred(stop=100.5), bars(T0, [FLAT]))


# --------------------------------------------------------------------------- scorecard


def row(i: int, as_of: datetime, *, quality: float, win_p: float, alerted: bool = False,
        outcome: tuple[str, float, float, float] | None = None, pred_hl: tuple[float, float] = (101.0, 99.0),
        bars: int | None = 12, model: str = "v1") -> PredictionRow:
    extra: dict = {}
    if outcome is not None:
        first_hit, r, high, low = outcome
        extra = dict(first_hit=first_hit, outcome_r=r, realised_high=high, realised_low=low, bars=bars,
                     scored_at=as_of + timedelta(hours=2))
    return PredictionRow(
        id=i, symbol="SPY", as_of=as_of, price=100.0, vix=13.0, direction="long", quality_score=quality,
        win_probability=win_p, predicted_high=pred_hl[0], predicted_low=pred_hl[1], target=101.5, stop=99.0,
        model_version=model, data_source="simulated", horizon_end=as_of + timedelta(hours=1), source="scan",
        requested_by=None, alerted=alerted, logged_at=as_of, **extra,
    )


def at(day: int, hour: int = 10, month: int = 5) -> datetime:
    return datetime(2024, month, day, hour, 0, tzinfo=NY)


NOW = at(10, 17)
LOG = [
    row(1, at(1, month=4), quality=85, win_p=0.7, alerted=True, outcome=("target", 1.5, 101.6, 99.5)),
    row(2, at(8), quality=90, win_p=0.75, alerted=True, outcome=("stop", -1.0, 100.5, 98.8), pred_hl=(100.6, 99.0)),
    row(3, at(9), quality=60, win_p=0.3, outcome=("none", 0.2, 100.3, 99.7), pred_hl=(100.4, 99.6)),
    row(4, at(10), quality=82, win_p=0.9, outcome=("target", 2.0, 101.2, 99.8), pred_hl=(101.1, 99.9)),
    row(5, at(10), quality=82, win_p=0.9, alerted=True),  # the same prediction asked again, then alerted
    row(6, at(10, 11), quality=70, win_p=0.5),  # not scored yet
    row(7, at(10, 16), quality=95, win_p=0.95, outcome=("none", 0.0, 100.0, 100.0), bars=0),  # nothing to score
    row(8, at(13), quality=99, win_p=0.99, alerted=True),  # after `now`: ignored
]


def test_scorecard_numbers_on_a_hand_built_log() -> None:
    card = compute_scorecard(LOG, NOW, threshold=80, last_sessions=3)
    assert card["since"] == "2024-05-08"
    a = card["all_time"]
    assert (a["predictions"], a["scored"], a["unscorable"], a["alerts"], a["alerts_scored"]) == (6, 4, 1, 3, 3)
    assert a["alert_hit_rate"] == pytest.approx(2 / 3)
    assert a["alert_avg_r"] == pytest.approx((1.5 - 1.0 + 2.0) / 3)
    assert (a["high_quality_scored"], a["high_quality_hit_rate"]) == (3, pytest.approx(2 / 3))
    assert a["hit_rate"] == pytest.approx(0.5)
    assert a["avg_r"] == pytest.approx((1.5 - 1.0 + 0.2 + 2.0) / 4)
    assert a["brier"] == pytest.approx((0.3**2 + 0.75**2 + 0.3**2 + 0.1**2) / 4)
    buckets = {b["bucket"]: (b["count"], b["predicted"], b["realised"]) for b in a["calibration"]}
    assert buckets == {
        "0.0-0.2": (0, None, None), "0.2-0.4": (1, pytest.approx(0.3), 0.0), "0.4-0.6": (0, None, None),
        "0.6-0.8": (2, pytest.approx(0.725), 0.5), "0.8-1.0": (1, pytest.approx(0.9), 1.0),
    }
    # naive = price x mean excursion of earlier finished predictions: B from A; C from A,B; D from A,B,C
    mae = a["mae"]
    assert mae["n"] == 3
    assert mae["model_high"] == pytest.approx(0.1)
    assert mae["model_low"] == pytest.approx((0.2 + 0.1 + 0.1) / 3)
    assert mae["naive_high"] == pytest.approx((1.1 + 0.75 + 0.4) / 3)
    assert mae["naive_low"] == pytest.approx((0.7 + 0.55 + (99.8 - (100 - 2.0 / 3))) / 3)
    assert mae["beats_naive"] is True
    assert [p["cum_r"] for p in a["cumulative_r_alerts"]] == [1.5, 0.5, 2.5]
    assert card["cumulative_r"] == [1.5, 0.5, 2.5]

    recent = card["recent"]
    assert (recent["predictions"], recent["scored"], recent["alerts"]) == (5, 3, 2)
    assert recent["alert_hit_rate"] == pytest.approx(0.5)
    assert recent["alert_avg_r"] == pytest.approx(0.5)
    assert recent["mae"]["n"] == 3  # the baseline still learns from history before the window

    text = format_scorecard(card)
    assert "Last 3 sessions: 3 scored of 5 predictions, 2 alerts" in text
    assert "alerts: hit 67% of 3, avg +0.83R" in text
    assert "too little data to judge (4 scored, 10 needed)" in text
    assert "model better" in text
    assert "0.8-1.0: 90%->100% (n=1)" in text


def test_naive_baseline_can_win_and_never_looks_ahead() -> None:
    bad = [
        row(1, at(1), quality=50, win_p=0.5, outcome=("none", 0.1, 100.5, 99.5), pred_hl=(103.0, 97.0)),
        row(2, at(2), quality=50, win_p=0.5, outcome=("none", 0.1, 100.5, 99.5), pred_hl=(103.0, 97.0)),
    ]
    mae = compute_scorecard(bad, NOW)["all_time"]["mae"]
    assert (mae["n"], mae["naive_high"], mae["beats_naive"]) == (1, pytest.approx(0.0), False)
    overlapping = [  # the second starts before the first's horizon ends: no baseline from it
        row(1, at(1, 10), quality=50, win_p=0.5, outcome=("none", 0.1, 100.5, 99.5)),
        row(2, at(1, 10) + timedelta(minutes=30), quality=50, win_p=0.5, outcome=("none", 0.1, 100.5, 99.5)),
    ]
    assert compute_scorecard(overlapping, NOW)["all_time"]["mae"]["n"] == 0


def test_empty_log() -> None:
    card = compute_scorecard([], NOW)
    for window in (card["recent"], card["all_time"]):
        assert (window["predictions"], window["scored"], window["alerts"]) == (0, 0, 0)
        assert window["alert_hit_rate"] is None and window["avg_r"] is None and window["brier"] is None
        assert window["mae"]["beats_naive"] is None and window["cumulative_r_alerts"] == []
    assert format_scorecard(card).startswith("Scorecard: too little data - no prediction has been scored yet")

