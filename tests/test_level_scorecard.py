"""The level scorecard on a hand-built day: every touch, hold, break and unresolved touch is known.

Every bar spans exactly $1 and contains the previous close, so each true range is 1 and the 14-bar
ATR is 1.00: a touch is within $0.10, a hold moves $0.50 back away, a break closes $0.50 through.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from core.options.level_scorecard import SymbolTouches, Touch, score_symbol, summarise
from core.options.snapshot import LevelsSnapshot
from core.stats import wilson_interval
from core.types import NY, Level

MONDAY, TUESDAY = date(2026, 11, 23), date(2026, 11, 24)


def bar_frame(rows: list[tuple[datetime, float, float, float]]) -> pd.DataFrame:
    """(start, open, low, close) -> bars with high = low + 1."""
    idx = pd.DatetimeIndex([r[0] for r in rows], name="time")
    return pd.DataFrame({"open": [r[1] for r in rows], "high": [r[2] + 1 for r in rows],
                         "low": [r[2] for r in rows], "close": [r[3] for r in rows],
                         "volume": 1000.0}, index=idx)


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)


def two_days() -> pd.DataFrame:
    monday = [(at(MONDAY, 9, 30) + timedelta(minutes=5 * i), 251.0, 250.5, 251.0) for i in range(20)]
    tuesday = [  # (start, open, low, close)
        (at(TUESDAY, 9, 30), 251.0, 250.5, 251.0),   # before the first snapshot: not scored
        (at(TUESDAY, 9, 35), 251.0, 251.0, 251.9),   # touches zero gamma 252 and prior high 251.5 from below
        (at(TUESDAY, 9, 40), 251.9, 251.8, 252.7),   # closes 0.7 above both: two breaks
        (at(TUESDAY, 9, 45), 252.7, 252.6, 253.5),
        (at(TUESDAY, 9, 50), 253.5, 253.1, 253.2),   # touches resistance 254, closes 0.8 below: hold
        (at(TUESDAY, 9, 55), 253.2, 252.4, 252.5),
        (at(TUESDAY, 10, 0), 252.5, 251.9, 252.3),   # touches zero gamma from above, closes inside
        (at(TUESDAY, 10, 5), 252.3, 252.0, 252.9),   # high 253.0: 1.0 back away: hold
        (at(TUESDAY, 10, 10), 252.9, 252.8, 253.7),
        (at(TUESDAY, 10, 15), 253.7, 253.65, 254.6),  # touches 254 and closes 0.6 through: break
        (at(TUESDAY, 10, 20), 254.6, 254.2, 254.7),  # touches 255 (round number; call wall until 10:20)
        (at(TUESDAY, 10, 25), 254.7, 254.55, 255.0),  # neither side decided by the last bar: unresolved
    ]
    return bar_frame(monday + tuesday)


def snapshot(taken_at: datetime, call_wall: float) -> LevelsSnapshot:
    return LevelsSnapshot(symbol="SPY", taken_at=taken_at, spot=251.0, call_wall=call_wall, put_wall=248.0,
                          zero_gamma=252.0, vanna_support=[Level(249.0, 1.0)],
                          vanna_resistance=[Level(254.0, 0.5)], total_gex=1e6, total_vex=-2e5,
                          convention="dealers long calls, short puts", data_source="simulated")


def outcomes(result: SymbolTouches) -> dict[str, list[tuple[str, float, str, str | None]]]:
    out: dict[str, list] = {}
    for t in result.touches:
        out.setdefault(t.kind, []).append((f"{t.touched_at:%H:%M}", t.level, t.outcome,
                                           None if t.resolved_at is None else f"{t.resolved_at:%H:%M}"))
    return out


def test_hand_built_day_touches_holds_breaks_and_baseline():
    result = score_symbol("SPY", two_days(), [snapshot(at(TUESDAY, 9, 35), 255.0)])
    assert result.sessions == [TUESDAY]  # Monday has no snapshot: nothing scored there
    assert outcomes(result) == {
        "zero_gamma": [("09:35", 252.0, "break", "09:40"), ("10:00", 252.0, "hold", "10:05")],
        "prior_day_high_low": [("09:35", 251.5, "break", "09:40")],
        "vanna_resistance": [("09:50", 254.0, "hold", "09:50"), ("10:15", 254.0, "break", "10:15")],
        "call_wall": [("10:20", 255.0, "unresolved", None)],
        "round_number": [("10:20", 255.0, "unresolved", None)],
    }
    sides = {(t.kind, f"{t.touched_at:%H:%M}"): t.side for t in result.touches}
    assert sides[("zero_gamma", "09:35")] == "below" and sides[("zero_gamma", "10:00")] == "above"
    assert all(t.atr == pytest.approx(1.0) for t in result.touches)


def test_levels_are_taken_from_the_latest_snapshot_before_each_bar():
    # At 10:20 a new snapshot moves the call wall to 257: the 10:20 bar no longer touches a call wall.
    snaps = [snapshot(at(TUESDAY, 9, 35), 255.0), snapshot(at(TUESDAY, 10, 20), 257.0)]
    result = score_symbol("SPY", two_days(), snaps)
    assert "call_wall" not in outcomes(result)
    assert outcomes(result)["round_number"] == [("10:20", 255.0, "unresolved", None)]


def test_round_number_step_setting_and_default():
    # With a $1 step every whole dollar the scored bars reach is a naive level (09:35 starts at 251).
    result = score_symbol("SPY", two_days(), [snapshot(at(TUESDAY, 9, 35), 255.0)], baseline_step=1.0)
    assert {t.level for t in result.touches if t.kind == "round_number"} == {251.0, 252.0, 253.0, 254.0, 255.0}
    # Below $100 the default step is $1: the same day shifted down by $200 touches whole dollars.
    low = two_days()
    low[["open", "high", "low", "close"]] -= 200.0
    snap = snapshot(at(TUESDAY, 9, 35), 55.0)
    snap = LevelsSnapshot(**{**snap.__dict__, "zero_gamma": 52.0, "vanna_resistance": [Level(54.0, 0.5)],
                             "vanna_support": [], "put_wall": None})
    shifted = score_symbol("SPY", low, [snap])
    assert {t.level for t in shifted.touches if t.kind == "round_number"} == {51.0, 52.0, 53.0, 54.0, 55.0}


def test_scorecard_rates_wilson_intervals_and_windows():
    result = score_symbol("SPY", two_days(), [snapshot(at(TUESDAY, 9, 35), 255.0)])
    card = summarise([result])
    kinds = {k.kind: k for k in card.all_time.kinds}
    zg = kinds["zero_gamma"]
    assert (zg.touches, zg.holds, zg.breaks, zg.unresolved, zg.hold_rate) == (2, 1, 1, 0, 0.5)
    assert (zg.ci_low, zg.ci_high) == pytest.approx((0.0945, 0.9055), abs=1e-4)
    assert kinds["call_wall"].hold_rate is None and kinds["call_wall"].unresolved == 1
    assert kinds["prior_day_high_low"].baseline and not kinds["put_wall"].baseline
    assert (kinds["put_wall"].touches, kinds["vanna_support"].touches) == (0, 0)
    assert card.all_time.sessions == card.last_20_sessions.sessions == 1
    assert card.to_dict()["all_time"]["kinds"][2]["kind"] == "zero_gamma"


def test_last_20_sessions_window_and_wilson_reference_values():
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(25)]

    def touch(d: date, outcome: str) -> Touch:
        t = datetime(d.year, d.month, d.day, 10, 0, tzinfo=NY)
        return Touch("SPY", d, "call_wall", 600.0, t, "below", 1.0, outcome, t)

    touches = [touch(d, "hold" if i < 5 else "break") for i, d in enumerate(days)]
    card = summarise([SymbolTouches("SPY", days, touches)])
    recent = {k.kind: k for k in card.last_20_sessions.kinds}["call_wall"]
    every = {k.kind: k for k in card.all_time.kinds}["call_wall"]
    assert (card.last_20_sessions.sessions, card.last_20_sessions.first_session) == (20, days[5])
    assert (recent.holds, recent.breaks) == (0, 20) and (every.holds, every.breaks) == (5, 20)
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 0) is None
