"""What a bar must be to enter the archive or a CSV replay: the one row validator behind
`tradebot import-bars`, `MARKET_DATA=csv:` and `tradebot archive --check`.

A bar (index = start time, New York) is refused unless it
- lies on an NYSE session day, inside the regular session, on the timeframe's bar grid counted from
  the open, and has closed by `now`;
- has plausible prices: positive, finite, at most MAX_PRICE, and within a session no open, high, low
  or close more than `max_jump` (a fraction) away from the previous bar's close.
Session-open gaps are allowed (splits and earnings happen overnight) and reported above GAP_NOTE.
A daily file (one row per session, dated) gets the calendar, future and price checks only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from core import calendar
from core.types import NY

PRICE_COLUMNS = ("open", "high", "low", "close")
MAX_PRICE = 1_000_000.0  # above any US-listed share; 1e308 is finite but no price
GAP_NOTE = 0.30
_WEEKEND = ("Saturday", "Sunday")


class RowProblem(Exception):
    """Row `row` (0-based) of the bars checked is refused because of `what`."""

    def __init__(self, row: int, what: str) -> None:
        super().__init__(what)
        self.row, self.what = row, what


@dataclass
class BarRules:
    bar_minutes: int | None  # None: a daily file
    now: datetime
    max_jump: float = 0.2


def problems(bars: pd.DataFrame, rules: BarRules, naive: np.ndarray | None = None) -> list[RowProblem]:
    """Every refused row with its first reason, in row order. `naive` marks rows whose time
    carried no zone, for the "looks like UTC" hint."""
    n = len(bars)
    if n == 0:
        return []
    idx = pd.DatetimeIndex(bars.index).tz_convert(NY)
    now = pd.Timestamp(rules.now).tz_convert(NY)
    days = np.array(idx.date)
    cal_start = calendar.CALENDAR_START
    why: dict[int, str] = {}  # row -> the first check it fails, in the order the checks run

    def flag(mask: np.ndarray, message: Callable[[int], str]) -> None:
        for i in map(int, np.flatnonzero(mask)):
            if i not in why:
                why[i] = message(i)

    early = days < cal_start
    flag(early, lambda i: f"{days[i].isoformat()} is before {cal_start.isoformat()}, where the exchange "
                          "calendar starts")
    future = ~early & (idx > now)
    flag(future, lambda i: f"time {_show(idx[i])} is in the future (now {_show(now)})")
    usable = ~early & ~future
    bounds = {d: (calendar.session_bounds(d) if calendar.is_session(d) else None) for d in set(days[usable])}
    not_session = usable & np.array([bounds.get(d, 0) is None for d in days])
    flag(not_session, lambda i: f"{days[i].isoformat()} is not a trading day ({_closed_why(days[i])})")
    on_day = usable & ~not_session
    opens = pd.DatetimeIndex([bounds[d][0] if on_day[i] else idx[i] for i, d in enumerate(days)]).tz_convert(NY)
    closes = pd.DatetimeIndex([bounds[d][1] if on_day[i] else idx[i] for i, d in enumerate(days)]).tz_convert(NY)
    minutes = rules.bar_minutes
    if minutes is None:
        unclosed = on_day & (closes > now)
        flag(unclosed, lambda i: f"the {days[i].isoformat()} session has not closed yet (now {_show(now)})")
    else:
        outside = on_day & ((idx < opens) | (idx >= closes))
        hint = _offset_hint(idx, naive, minutes) if outside.any() and naive is not None else ""
        flag(outside, lambda i: f"time {_show(idx[i])} is outside the regular session "
                                f"({opens[i]:%H:%M}-{closes[i]:%H:%M} New York){hint}")
        offset = ((idx - opens) / pd.Timedelta(minutes=1)).to_numpy()
        off_grid = on_day & ~outside & (np.mod(offset, minutes) != 0)
        flag(off_grid, lambda i: f"time {_show(idx[i])} is not on the {minutes}-minute bar grid "
                                 f"(bars start at {opens[i]:%H:%M} and every {minutes} minutes after)")
        bar_close = np.minimum((idx + pd.Timedelta(minutes=minutes)).as_unit("ns").asi8,
                               closes.as_unit("ns").asi8)
        unclosed = on_day & ~outside & ~off_grid & (bar_close > now.as_unit("ns").value)
        flag(unclosed, lambda i: f"the bar at {_show(idx[i])} has not closed yet (now {_show(now)})")
    prices = {c: bars[c].to_numpy(dtype="float64") for c in PRICE_COLUMNS}
    for name in PRICE_COLUMNS:
        values = prices[name]
        flag(~np.isfinite(values) | (values <= 0) | (values > MAX_PRICE),
             lambda i, name=name: f"{name} {prices[name][i]:g} is not a plausible price "
                                  f"(positive, at most {MAX_PRICE:,.0f})")
    if minutes is not None and n > 1:
        prev_close = np.concatenate([[np.nan], prices["close"][:-1]])
        same_session = np.concatenate([[False], days[1:] == days[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            moves = np.vstack([np.abs(prices[c] / prev_close - 1.0) for c in PRICE_COLUMNS])
        worst = np.nanmax(np.where(np.isfinite(moves), moves, 0.0), axis=0)
        jump = same_session & (worst > rules.max_jump)
        flag(jump, lambda i: _jump_text(prices, prev_close, moves[:, i], i, rules.max_jump))
    return [RowProblem(i, why[i]) for i in sorted(why)]


def session_gaps(bars: pd.DataFrame, threshold: float = GAP_NOTE) -> list[str]:
    """One line per session that opens more than `threshold` away from the previous row's close."""
    if len(bars) < 2:
        return []
    days = np.array(pd.DatetimeIndex(bars.index).tz_convert(NY).date)
    first = np.concatenate([[False], days[1:] != days[:-1]])
    opens, closes = bars["open"].to_numpy(dtype="float64"), bars["close"].to_numpy(dtype="float64")
    out = []
    for i in np.flatnonzero(first):
        move = opens[i] / closes[i - 1] - 1.0
        if abs(move) > threshold:
            out.append(f"{days[i].isoformat()} opens {move:+.0%} from the previous close "
                       f"({closes[i - 1]:g} -> {opens[i]:g}): a split or earnings? kept")
    return out


def _jump_text(prices: dict[str, np.ndarray], prev_close: np.ndarray, moves: np.ndarray, i: int,
               max_jump: float) -> str:
    k = int(np.nanargmax(np.where(np.isfinite(moves), moves, 0.0)))
    name = PRICE_COLUMNS[k]
    return (f"{name} {prices[name][i]:g} is {moves[k]:.0%} away from the previous bar's close "
            f"{prev_close[i]:g} (IMPORT_MAX_JUMP allows {max_jump:.0%} within a session)")


def _show(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%d %H:%M}"


def _closed_why(day: date) -> str:
    name = day.strftime("%A")
    return f"a {name}" if name in _WEEKEND else f"{name}, an NYSE holiday"


def _fits(times: pd.DatetimeIndex, from_open: bool = False) -> bool:
    """All times inside a regular session (and, given from_open, the first one at its open)."""
    if from_open and not times.empty:
        first = times[0].date()
        if (first < calendar.CALENDAR_START or not calendar.is_session(first)
                or times[0].to_pydatetime() != calendar.session_bounds(first)[0]):
            return False
    for t in times:
        d = t.date()
        if d < calendar.CALENDAR_START or not calendar.is_session(d):
            return False
        o, c = calendar.session_bounds(d)
        if not o <= t.to_pydatetime() < c:
            return False
    return True


def _offset_hint(idx: pd.DatetimeIndex, naive: np.ndarray, bar_minutes: int) -> str:
    """When every session of zone-less times sits a whole number of hours off New York's session,
    the file was written in another zone: say which, with an example."""
    if not naive.all():
        return ""
    local = idx.tz_localize(None)
    shifts: list[tuple[int, pd.Timestamp]] = []
    for day in sorted(set(local.date)):
        times = local[local.date == day]
        if _fits(times.tz_localize(NY, ambiguous="NaT", nonexistent="NaT")):
            return ""  # some session is fine as New York time: not a zone mix-up
        for hours in sorted(range(-12, 13), key=lambda h: (abs(h), h)):
            if hours == 0:
                continue
            moved = (times - timedelta(hours=hours)).tz_localize(NY, ambiguous="NaT", nonexistent="NaT")
            # an export in another zone still starts each session at its open
            if not moved.isna().any() and _fits(moved, from_open=True):
                shifts.append((hours, times[0]))
                break
        else:
            return ""
    hours, example = shifts[0]
    file_offsets = {h + int(pd.Timestamp(t - timedelta(hours=h)).tz_localize(NY).utcoffset()
                            / timedelta(hours=1)) for h, t in shifts}
    shown = f"{example:%H:%M} here is {example - timedelta(hours=hours):%H:%M} New York"
    if len(file_offsets) == 1:
        zone = file_offsets.pop()
        name = "UTC" if zone == 0 else f"UTC{zone:+03d}:00"
        return f"; looks like {name}: {shown} (write times with their offset, e.g. -05:00)"
    if len({h for h, _ in shifts}) == 1:
        return f"; looks like a zone {hours:+d} hours from New York: {shown}"
    return ""
