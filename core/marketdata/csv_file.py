"""Bars from CSV files (MARKET_DATA=csv:<path>) and the strict reader behind `tradebot import-bars`.

A CSV has a header row and one bar per row: a timestamp column named time, timestamp, datetime or
date (ISO text, naive = New York time; or epoch seconds; a date alone means that day's 09:30 bar),
then open, high, low, close, volume (any case) and optionally vix. The reader checks everything
and names the file line (the header is line 1) of the first problem it finds.

`CsvProvider(path)`: path is one file for one symbol, or a folder of such files. A file's symbol
is its name up to the first "_" or the extension, upper-cased (SPY.csv and spy_5min.csv are SPY).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from config.settings import TIMEFRAME_MINUTES
from core.calendar import market_clock, month_calendar
from core.clock import wall_clock, wall_clock_ny
from core.marketdata.bar_math import aggregate_bars, daily_bars
from core.marketdata.bar_rules import BarRules, RowProblem, problems, session_gaps
from core.types import (
    NY,
    CalendarDay,
    MarketClock,
    MarketDataError,
    OptionContract,
    Quote,
    UnknownSymbolError,
    empty_bars,
    normalise_bars,
)

TIME_COLUMNS = ("time", "timestamp", "datetime", "date")
PRICE_COLUMNS = ("open", "high", "low", "close")
REQUIRED_COLUMNS = (*PRICE_COLUMNS, "volume")
DEFAULT_MAX_BYTES = 500_000_000
_EPOCH = re.compile(r"^\d+(\.\d+)?$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HAS_ZONE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_DAILY_OPEN = pd.Timedelta(hours=9, minutes=30)
_EPOCH_MAX_SECONDS = 4_102_444_800  # 2100-01-01: larger numbers are not epoch seconds of a bar
DAILY_BAR_MINUTES = 390
DEFAULT_MAX_JUMP = 0.2
DEFAULT_BAR_MINUTES = 5


class CsvFormatError(MarketDataError):
    """A CSV file cannot be used; the message names the file line and what is wrong."""


@dataclass
class CsvBars:
    bars: pd.DataFrame
    bar_minutes: int | None  # None: a daily file (a date alone on every row)
    notes: list[str] = field(default_factory=list)  # accepted but worth saying, e.g. big open gaps


def _fail(path: Path, line: int | None, what: str) -> CsvFormatError:
    where = f"{path.name}: line {line}: " if line is not None else f"{path.name}: "
    return CsvFormatError(where + what)


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _parse_times(raw: pd.Series) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """ISO text (naive = New York), a bare date (09:30 that day) or epoch seconds, row by row kind.
    Returns the times, which rows carried no zone, and which were a date alone."""
    values = raw.str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, America/New_York]")
    epoch = values.str.match(_EPOCH)
    dated = values.str.match(_DATE_ONLY)
    zoned = ~epoch & ~dated & values.str.contains(_HAS_ZONE)
    naive = ~epoch & ~dated & ~zoned
    if epoch.any():
        secs = pd.to_numeric(values[epoch], errors="coerce")
        too_big = (secs > _EPOCH_MAX_SECONDS).to_numpy()
        if too_big.any():
            i = int(np.flatnonzero(epoch.to_numpy())[_first(too_big)])
            unit = " (milliseconds? give seconds)" if float(secs.iloc[_first(too_big)]) <= (
                _EPOCH_MAX_SECONDS * 1000) else ""
            raise RowProblem(i, f"time {values.iloc[i]} is too large for epoch seconds{unit}")
        out[epoch] = pd.to_datetime(secs, unit="s", utc=True, errors="coerce").dt.tz_convert(NY)
    if dated.any():
        days = pd.to_datetime(values[dated], format="%Y-%m-%d", errors="coerce")
        out[dated] = (days + _DAILY_OPEN).dt.tz_localize(NY, ambiguous="NaT", nonexistent="NaT")
    if zoned.any():
        out[zoned] = pd.to_datetime(values[zoned], format="ISO8601", utc=True, errors="coerce").dt.tz_convert(NY)
    if naive.any():
        local = pd.to_datetime(values[naive], format="ISO8601", errors="coerce")
        out[naive] = local.dt.tz_localize(NY, ambiguous="NaT", nonexistent="NaT")
    bad = out.isna()
    if bad.any():
        i = _first(bad.to_numpy())
        raise RowProblem(i, f"time {raw.iloc[i]!r} is not a timestamp (ISO, epoch seconds or a date)")
    return pd.DatetimeIndex(out), naive.to_numpy(), dated.to_numpy()


def _numbers(raw: pd.DataFrame, column: str, required: bool) -> np.ndarray:
    text = raw[column].str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64")
    bad = np.isnan(values) & ((text != "").to_numpy() | required) | np.isinf(values)
    if bad.any():
        i = _first(bad)
        shown = text.iloc[i]
        raise RowProblem(i, f"{column} is empty" if shown == "" else f"{column} {shown!r} is not a number")
    return values


def read_bars_csv(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, now: datetime | None = None,
                  max_jump: float = DEFAULT_MAX_JUMP, bar_minutes: int = DEFAULT_BAR_MINUTES) -> pd.DataFrame:
    """Read and validate one bar CSV into the `core.types` bar frame convention."""
    return load_bars_csv(path, max_bytes=max_bytes, now=now, max_jump=max_jump, bar_minutes=bar_minutes).bars


def load_bars_csv(path: Path, *, now: datetime | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                  max_jump: float = DEFAULT_MAX_JUMP, bar_minutes: int = DEFAULT_BAR_MINUTES) -> CsvBars:
    """Read one bar CSV and check every row against `core.marketdata.bar_rules` as of `now`
    (default the wall clock). `bar_minutes` is the grid of a file too short to show its own."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise CsvFormatError(f"{path.name}: no such file") from None
    if not path.is_file():
        raise CsvFormatError(f"{path.name}: not a file")
    if size > max_bytes:
        raise CsvFormatError(f"{path.name}: {size} bytes is more than the limit of {max_bytes} bytes")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False).fillna("")
    except pd.errors.EmptyDataError:
        raise _fail(path, 1, "the file is empty (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[-1][:200]
        raise CsvFormatError(f"{path.name}: cannot parse CSV: {detail}") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    time_col = next((c for c in TIME_COLUMNS if c in raw.columns), None)
    missing = ([] if time_col is not None else ["time"]) + [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise _fail(path, 1, f"missing column(s): {', '.join(missing)}")
    # Blank lines keep their place so line numbers stay true; a wholly blank row is skipped.
    blank = (raw.apply(lambda col: col.str.strip()) == "").all(axis=1)
    raw = raw[~blank.to_numpy()]
    if raw.empty:
        raise _fail(path, None, "no data rows")
    lines = raw.index.to_numpy() + 2
    raw = raw.reset_index(drop=True)

    try:
        times, cols, naive, dated = _validate_rows(raw, time_col)
        frame = normalise_bars(pd.DataFrame({c: cols[c] for c in cols}, index=times.rename("time")))
        minutes = None if dated.all() else (bar_minutes_of(frame) or bar_minutes)
        rules = BarRules(minutes, now or wall_clock_ny(), max_jump)
        refused = problems(frame, rules, naive)
        if refused:
            raise refused[0]
    except RowProblem as exc:
        raise _fail(path, int(lines[exc.row]), exc.what) from None
    return CsvBars(frame, minutes, session_gaps(frame))


def _validate_rows(raw: pd.DataFrame, time_col: str
                   ) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    times, naive, dated = _parse_times(raw[time_col])
    # the file's kind is that of most rows; the first row of the other kind is the bad one
    mixed = dated != (2 * dated.sum() > len(dated))
    if mixed.any():
        i = _first(mixed)
        shown = raw[time_col].iloc[i].strip()
        if dated[i]:
            raise RowProblem(i, f"time {shown} is a date alone, which only a daily file (a date on every row) "
                                "may have; give the bar's start time")
        raise RowProblem(i, f"time {shown} has a time of day, but this is a daily file (most rows "
                            "are a date alone)")
    cols = {name: _numbers(raw, name, required=name != "vix")
            for name in (*REQUIRED_COLUMNS, "vix") if name in raw.columns}
    text = {name: raw[name].str.strip() for name in cols}
    step = np.diff(times.as_unit("ns").asi8)
    if (step <= 0).any():
        i = _first(step <= 0) + 1
        how = "repeats" if step[i - 1] == 0 else "is before"
        raise RowProblem(i, f"time {raw[time_col].iloc[i].strip()} {how} the previous row's time "
                           "(rows must be sorted and unique)")
    for name in PRICE_COLUMNS:
        if (cols[name] <= 0).any():
            i = _first(cols[name] <= 0)
            raise RowProblem(i, f"{name} {text[name].iloc[i]} is not positive")
    top = np.maximum(cols["open"], cols["close"])
    bottom = np.minimum(cols["open"], cols["close"])
    bad_high, bad_low = cols["high"] < top, cols["low"] > bottom
    if bad_high.any() or bad_low.any():
        i = _first(bad_high | bad_low)
        # Name the price the bound actually fails against (the larger of open/close for high).
        if bad_high[i]:
            other = "open" if cols["open"][i] > cols["close"][i] else "close"
            raise RowProblem(i, f"high {text['high'].iloc[i]} is below {other} {text[other].iloc[i]}")
        other = "open" if cols["open"][i] < cols["close"][i] else "close"
        raise RowProblem(i, f"low {text['low'].iloc[i]} is above {other} {text[other].iloc[i]}")
    if (cols["volume"] < 0).any():
        i = _first(cols["volume"] < 0)
        raise RowProblem(i, f"volume {text['volume'].iloc[i]} is negative")
    if "vix" in cols and (cols["vix"] <= 0).any():
        i = _first(cols["vix"] <= 0)
        raise RowProblem(i, f"vix {text['vix'].iloc[i]} is not positive")
    return times, cols, naive, dated


def symbol_of(path: Path) -> str:
    return path.stem.split("_", 1)[0].upper()


def bar_minutes_of(bars: pd.DataFrame) -> int | None:
    """The file's bar length in minutes (the most common step within a day, the shorter on a tie),
    or None for daily data. The most common, not the median: one stray 09:32 row must not move it."""
    if len(bars) < 2:
        return None
    idx = bars.index
    same_day = idx[1:].normalize() == idx[:-1].normalize()
    steps = (idx[1:] - idx[:-1])[same_day]
    if len(steps) == 0:
        return None
    counts = pd.Series(steps // pd.Timedelta(minutes=1)).value_counts()
    return int(counts[counts == counts.max()].index.min())


class CsvProvider:
    source = "csv"

    def __init__(self, path: Path, clock: Callable[[], datetime] | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, *, max_jump: float = DEFAULT_MAX_JUMP,
                 wall_clock: Callable[[], datetime] | None = None) -> None:
        """`clock` is the replay's "now" (bars after it stay hidden); `wall_clock` (default the real
        one) is what a row may not lie after, as for `tradebot import-bars`."""
        path = Path(path)
        if path.is_dir():
            files = sorted(path.glob("*.csv"))
            if not files:
                raise MarketDataError(f"{path.name}: no .csv files in the folder")
        elif path.is_file():
            files = [path]
        else:
            raise MarketDataError(f"{path.name}: no such file or folder")
        self._files: dict[str, Path] = {}
        for f in files:
            sym = symbol_of(f)
            if sym in self._files:
                raise MarketDataError(f"{self._files[sym].name} and {f.name} both hold {sym}")
            self._files[sym] = f
        self._clock = clock
        self._wall_clock = wall_clock or wall_clock_ny
        self._max_bytes = max_bytes
        self._max_jump = max_jump
        self._bars: dict[str, pd.DataFrame] = {}

    @property
    def symbols(self) -> list[str]:
        return list(self._files)

    def now(self) -> datetime:
        when = self._clock() if self._clock else wall_clock()
        return when.replace(tzinfo=NY) if when.tzinfo is None else when.astimezone(NY)

    def bars(self, symbol: str) -> pd.DataFrame:
        """Every row of the symbol's file (loaded once)."""
        sym = symbol.upper()
        if sym not in self._files:
            raise UnknownSymbolError(self._unknown_message(symbol))
        if sym not in self._bars:
            self._bars[sym] = read_bars_csv(self._files[sym], max_bytes=self._max_bytes,
                                            now=self._wall_clock(), max_jump=self._max_jump)
        return self._bars[sym]

    def _unknown_message(self, symbol: str) -> str:
        if len(self._files) != 1:
            return f"no CSV data for {symbol!r} (files hold: {', '.join(self._files)})"
        (held, path), = self._files.items()
        return (f"no CSV data for {symbol!r}: the file {path.name} holds {held}, because a file's symbol is "
                f"its name up to the first '_' or '.'; name it {symbol.upper()}.csv (or {symbol.upper()}_5min.csv)")

    def data_end(self, symbol: str) -> datetime | None:
        """Close time of the file's last bar, or None when the file has no bar: a historical file is
        predicted "as of" this moment rather than the wall clock."""
        bars = self.bars(symbol)
        if bars.empty:
            return None
        minutes = bar_minutes_of(bars) or DAILY_BAR_MINUTES
        return (bars.index[-1] + pd.Timedelta(minutes=minutes)).to_pydatetime()

    def _known(self, symbol: str) -> bool:
        return symbol.upper() in self._files

    async def get_bars(self, symbol: str, start: datetime, end: datetime, timeframe: str) -> pd.DataFrame:
        if timeframe not in TIMEFRAME_MINUTES:
            raise MarketDataError(f"unsupported timeframe {timeframe!r} (use 5min, 15min or 1h)")
        bars = self.bars(symbol)
        want = TIMEFRAME_MINUTES[timeframe]
        have = bar_minutes_of(bars)
        if have is None:
            raise MarketDataError(f"{self._files[symbol.upper()].name} holds daily bars; "
                                  f"{timeframe} bars are not available")
        if have != want:
            if want % have:
                raise MarketDataError(f"{self._files[symbol.upper()].name} holds {have}-minute bars; "
                                      f"cannot make {timeframe} bars from them")
            bars = aggregate_bars(bars, want)
        closes = bars.index + pd.Timedelta(minutes=want)
        lo, hi = _aware(start), _aware(end)
        out = bars.loc[(bars.index >= lo) & (bars.index <= hi) & (closes <= pd.Timestamp(self.now()))]
        return out.copy() if not out.empty else empty_bars()

    def _past(self, symbol: str) -> pd.DataFrame:
        """Rows whose bar has closed by now (a daily row closes at 16:00)."""
        bars = self.bars(symbol)
        minutes = bar_minutes_of(bars) or DAILY_BAR_MINUTES
        return bars.loc[bars.index + pd.Timedelta(minutes=minutes) <= pd.Timestamp(self.now())]

    async def get_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        out: dict[str, Quote] = {}
        for symbol in symbols:
            sym = symbol.upper()
            if sym == "VIX" and not self._known(sym):
                quote = self._vix_quote()
            elif self._known(sym):
                quote = self._quote(sym)
            else:
                continue
            if quote is not None:
                out[sym] = quote
        return out

    def _quote(self, symbol: str) -> Quote | None:
        bars = self._past(symbol)
        if bars.empty:
            return None
        last_day = bars.index[-1].normalize()
        before = bars.loc[bars.index < last_day]
        today = bars.loc[bars.index >= last_day]
        return Quote(symbol=symbol, last=float(bars["close"].iloc[-1]),
                     prevclose=float(before["close"].iloc[-1]) if not before.empty else None,
                     volume=int(today["volume"].sum()), timestamp=self._close_time(symbol, bars.index[-1]))

    def _close_time(self, symbol: str, start: pd.Timestamp) -> datetime:
        minutes = bar_minutes_of(self.bars(symbol)) or DAILY_BAR_MINUTES
        return (start + pd.Timedelta(minutes=minutes)).to_pydatetime()

    def _vix_quote(self) -> Quote | None:
        # The VIX column of the first file that has one.
        for sym in self._files:
            vix = self._past(sym)["vix"].dropna()
            if not vix.empty:
                last_day = vix.index[-1].normalize()
                before = vix.loc[vix.index < last_day]
                return Quote(symbol="VIX", last=float(vix.iloc[-1]),
                             prevclose=float(before.iloc[-1]) if not before.empty else None,
                             timestamp=self._close_time(sym, vix.index[-1]))
        return None

    async def get_daily(self, symbol: str, start: date, end: date) -> pd.DataFrame:
        bars = self._past(symbol)
        return daily_bars(bars, start, end)

    async def get_expirations(self, symbol: str) -> list[date]:
        raise MarketDataError("CSV data has no option chains")

    async def get_chain(self, symbol: str, expiration: date) -> list[OptionContract]:
        raise MarketDataError("CSV data has no option chains")

    async def get_clock(self) -> MarketClock:
        return market_clock(self.now())

    async def get_calendar(self, year: int, month: int) -> list[CalendarDay]:
        return month_calendar(year, month)

    async def close(self) -> None:
        return None


def _aware(when: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(when)
    return ts.tz_localize(NY) if ts.tzinfo is None else ts.tz_convert(NY)


__all__ = ["CsvBars", "CsvFormatError", "CsvProvider", "load_bars_csv", "read_bars_csv"]
