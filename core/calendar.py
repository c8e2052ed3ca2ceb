"""NYSE sessions from exchange_calendars (holidays, 13:00 early closes, DST), never hand-written."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

from core.clock import wall_clock_ny
from core.types import NY, CalendarDay, MarketClock, MarketDataError

CALENDAR_START = date(2000, 1, 3)  # early enough for imported daily history
CALENDAR_AHEAD_DAYS = 400  # how far past the latest day asked about a (re)built calendar reaches
LAST_YEAR = 2199  # exchange_calendars' holiday rules; nothing trades this far out anyway


class CalendarRangeError(MarketDataError, ValueError):
    """A day outside the years the exchange calendar can cover."""


@lru_cache(maxsize=4)
def _calendar_until(end: date) -> xcals.ExchangeCalendar:
    return xcals.get_calendar("XNYS", start=CALENDAR_START.isoformat(), end=end.isoformat())


_built_until: list[date] = [wall_clock_ny().date() + timedelta(days=CALENDAR_AHEAD_DAYS)]


def _xnys(day: date | None = None) -> xcals.ExchangeCalendar:
    """The NYSE calendar covering `day`: a process that runs for years, or a question about next
    year, extends it (rebuilt once per CALENDAR_AHEAD_DAYS) instead of falling off its end."""
    if day is not None:
        if not CALENDAR_START <= day <= date(LAST_YEAR, 12, 31):
            raise CalendarRangeError(f"{day.isoformat()} is outside the exchange calendar "
                                     f"({CALENDAR_START.isoformat()} to {LAST_YEAR})")
        if day > _built_until[0]:
            _built_until[0] = min(day + timedelta(days=CALENDAR_AHEAD_DAYS), date(LAST_YEAR, 12, 31))
    return _calendar_until(_built_until[0])


def covered_until() -> date:
    """The last day the calendar is built for now (it grows when a later day is asked about)."""
    return _built_until[0]


def _ts(when: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(when)
    if ts.tzinfo is None:
        ts = ts.tz_localize(NY)
    return ts


@lru_cache(maxsize=8192)
def is_session(day: date) -> bool:
    return bool(_xnys(day).is_session(pd.Timestamp(day)))


@lru_cache(maxsize=8192)
def session_bounds(day: date) -> tuple[datetime, datetime]:
    """Open and close of a trading day, New York time. Raises ValueError on a non-session day."""
    cal = _xnys(day)
    d = pd.Timestamp(day)
    if not cal.is_session(d):
        raise ValueError(f"{day} is not an NYSE session")
    return (cal.session_open(d).tz_convert(NY).to_pydatetime(),
            cal.session_close(d).tz_convert(NY).to_pydatetime())


def is_open(when: datetime) -> bool:
    """True while the regular session runs (open inclusive, close exclusive)."""
    ts = _ts(when)
    day = ts.tz_convert(NY).date()
    if not is_session(day):
        return False
    o, c = session_bounds(day)
    return o <= ts.to_pydatetime() < c


def sessions_between(start: date, end: date) -> list[date]:
    """Trading days in [start, end]."""
    end = min(end, date(LAST_YEAR, 12, 31))
    if end < start or end < CALENDAR_START:
        return []
    cal = _xnys(end)
    start = max(start, cal.first_session.date())
    end = min(end, cal.last_session.date())
    return [d.date() for d in cal.sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))]


def previous_session(day: date) -> date:
    d = day - timedelta(days=1)
    while not is_session(d):
        d -= timedelta(days=1)
    return d


def next_session(day: date) -> date:
    d = day + timedelta(days=1)
    while not is_session(d):
        d += timedelta(days=1)
    return d


def next_open(when: datetime) -> datetime:
    """The next session open strictly after `when` (or the current one if not yet open)."""
    ts = _ts(when).to_pydatetime()
    day = ts.astimezone(NY).date()
    if is_session(day):
        o, _ = session_bounds(day)
        if ts < o:
            return o
    return session_bounds(next_session(day))[0]


def trading_days_between(earlier: datetime, later: datetime) -> int:
    """How many sessions closed after `earlier` and up to `later` (0 if same session)."""
    a = _ts(earlier).tz_convert(NY).date()
    b = _ts(later).tz_convert(NY).date()
    if b <= a:
        return 0
    return len(sessions_between(a + timedelta(days=1), b))


def bar_closes(day: date, bar_minutes: int) -> list[datetime]:
    """Close times of every bar of a session; the last bar is cut at an early close."""
    o, c = session_bounds(day)
    out = []
    t = o + timedelta(minutes=bar_minutes)
    while t < c:
        out.append(t)
        t += timedelta(minutes=bar_minutes)
    out.append(c)
    return out


# Tradier-style clock and month calendar, for providers that have no exchange API of their own.
PREMARKET_START = timedelta(hours=4)
POSTMARKET_LENGTH = timedelta(hours=4)


def market_clock(now: datetime) -> MarketClock:
    """Tradier-like state from the NYSE calendar: premarket 04:00-open, open, postmarket from the
    close for 4 hours (16:00-20:00; 13:00-17:00 on early-close days), else closed."""
    now = now.astimezone(NY)
    day = now.date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=NY)
    if is_session(day):
        o, c = session_bounds(day)
        desc = f"Market is open from {o:%H:%M} to {c:%H:%M}"
        pre = midnight + PREMARKET_START
        if pre <= now < o:
            return MarketClock(now, "premarket", o, desc)
        if o <= now < c:
            return MarketClock(now, "open", c, desc)
        if c <= now < c + POSTMARKET_LENGTH:
            return MarketClock(now, "postmarket", c + POSTMARKET_LENGTH, desc)
        if now < pre:
            return MarketClock(now, "closed", pre, desc)
    nxt = next_session(day)
    o, c = session_bounds(nxt)
    nxt_midnight = datetime(nxt.year, nxt.month, nxt.day, tzinfo=NY)
    return MarketClock(now, "closed", nxt_midnight + PREMARKET_START,
                       f"Market is closed; next session {nxt.isoformat()} {o:%H:%M}-{c:%H:%M}")


def month_calendar(year: int, month: int) -> list[CalendarDay]:
    if not (1 <= month <= 12 and 1900 < year < 2200):
        raise MarketDataError(f"bad calendar month {year}-{month}")
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    out = []
    d = first
    while d < nxt:
        try:
            session = is_session(d)
        except Exception:  # outside the exchange calendar's range
            session = False
        if session:
            o, c = session_bounds(d)
            out.append(CalendarDay(d, "open", o, c))
        else:
            out.append(CalendarDay(d, "closed"))
        d += timedelta(days=1)
    return out
