"""The market clock against the NYSE calendar: holidays, half days and daylight-saving Sundays."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from bot.scheduler import bar_close_times, scan_trigger
from core import calendar
from core.types import NY


def at(d: str, hm: str) -> datetime:
    return datetime.combine(date.fromisoformat(d), time.fromisoformat(hm), NY)


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (at("2026-11-24", "09:29"), False),
        (at("2026-11-24", "09:30"), True),
        (at("2026-11-24", "15:59"), True),
        (at("2026-11-24", "16:00"), False),
        (at("2026-11-26", "11:00"), False),  # Thanksgiving
        (at("2026-11-27", "12:55"), True),  # the half day after it
        (at("2026-11-27", "13:00"), False),
        (at("2026-12-24", "12:30"), True),  # Christmas Eve: early close
        (at("2026-12-24", "13:30"), False),
        (at("2026-12-25", "11:00"), False),
        (at("2026-04-03", "11:00"), False),  # Good Friday 2026
        (at("2026-06-19", "11:00"), False),  # Juneteenth
        (at("2026-03-08", "11:00"), False),  # Sunday DST starts
        (at("2026-03-09", "09:30"), True),  # Monday after: 13:30 UTC
        (at("2026-11-01", "11:00"), False),  # Sunday DST ends
        (at("2026-11-02", "09:30"), True),  # 14:30 UTC
    ],
)
def test_is_open(when, is_open):
    assert calendar.is_open(when) is is_open


def test_utc_open_shifts_with_dst():
    edt_open, _ = calendar.session_bounds(date(2026, 3, 9))
    est_open, _ = calendar.session_bounds(date(2026, 3, 6))
    assert edt_open.utcoffset() != est_open.utcoffset()
    assert edt_open.time() == est_open.time() == time(9, 30)


def test_half_day_bars():
    assert len(calendar.bar_closes(date(2026, 11, 27), 5)) == 42
    assert len(calendar.bar_closes(date(2026, 11, 24), 5)) == 78
    assert calendar.bar_closes(date(2026, 11, 27), 60)[-1].time() == time(13, 0)


def test_next_open_skips_holiday_weekend():
    assert calendar.next_open(at("2026-11-25", "17:00")) == at("2026-11-27", "09:30")
    assert calendar.next_open(at("2026-12-24", "14:00")) == at("2026-12-28", "09:30")


def test_scans_follow_the_bar_closes_of_the_session():
    day = date(2026, 11, 24)
    five = bar_close_times(day, 5, 20)
    assert five[0] == at("2026-11-24", "09:35:20") and five[-1] == at("2026-11-24", "15:55:20")
    hourly = bar_close_times(day, 60, 20)
    assert hourly[0] == at("2026-11-24", "10:30:20") and hourly[-1] == at("2026-11-24", "15:30:20")
    assert bar_close_times(date(2026, 11, 26), 5, 20) == []  # Thanksgiving


def test_scheduled_scan_fires_only_in_session():
    """Walk APScheduler's own trigger over a holiday week and check every fire time is in a session."""
    trig = scan_trigger(5, 20)
    end = at("2026-11-28", "00:00")
    fires = []
    t = trig.get_next_fire_time(None, at("2026-11-23", "00:00"))
    while t < end:
        fires.append(t)
        t = trig.get_next_fire_time(t, t.replace(microsecond=1))
    in_session = [f for f in fires if calendar.is_open(f)]
    assert in_session == fires  # never before the open, after the close or on a holiday
    # Mon-Wed full sessions (77 bar closes before the close each), Thanksgiving none, Friday's half day 41.
    assert len(in_session) == 3 * 77 + 41
    assert not [f for f in in_session if f.date() == date(2026, 11, 26)]
