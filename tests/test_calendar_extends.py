"""A process running longer than a year keeps a market clock: the calendar grows with the dates it
is asked about instead of ending a year after start-up (issue 9, calendar)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from core import calendar
from core.types import NY

STARTED = date(2026, 12, 1)


@pytest.fixture
def built_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the process had started on STARTED: its calendar reaches one year out, no further."""
    monkeypatch.setattr(calendar, "_built_until", [STARTED + timedelta(days=365)])


def test_a_clock_13_months_ahead_still_has_sessions(built_at_start: None) -> None:
    later = datetime(2028, 1, 4, 10, 0, tzinfo=NY)  # 13 months after start, a Tuesday
    assert later.date() > calendar.covered_until()
    assert calendar.is_open(later)
    assert calendar.market_clock(later).state == "open"
    assert calendar.session_bounds(later.date())[1].hour == 16
    assert calendar.covered_until() >= later.date() + timedelta(days=365)
    assert calendar.next_open(later) == datetime(2028, 1, 5, 9, 30, tzinfo=NY)
    assert len(calendar.sessions_between(date(2028, 1, 1), date(2028, 1, 31))) == 20  # New Year, MLK off
    assert not calendar.is_open(datetime(2028, 1, 17, 11, 0, tzinfo=NY))  # MLK day 2028


def test_days_outside_any_calendar_are_one_clear_error() -> None:
    with pytest.raises(calendar.CalendarRangeError, match="outside the exchange calendar"):
        calendar.is_session(date(1990, 1, 2))
    with pytest.raises(calendar.CalendarRangeError):
        calendar.is_open(datetime(9999, 1, 4, 10, 0, tzinfo=NY))
