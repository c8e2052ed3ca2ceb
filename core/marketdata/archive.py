"""Every bar ever fetched, one gzip CSV per month, in the model store's blob store.

Tradier serves 5-minute bars for about 40 days only, so the training history is whatever this
archive accumulated. Layout (relative to the blob store's root/prefix):

    archive/<SYMBOL>/<timeframe>/<YYYY-MM>.csv.gz     columns time (ISO with offset), open, high,
                                                      low, close, volume, vix; month of the bar's
                                                      New York start time

Each month file is replaced atomically, so a crash mid-merge leaves every month old or new and a
rerun converges (merging is idempotent). Reads keep a local copy of each month under `cache_dir`
with the blob's etag and re-download a month only when its etag changed.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from config.settings import SYMBOL_RE, TIMEFRAME_MINUTES
from core import calendar
from core.marketdata.bar_rules import BarRules, problems
from core.marketdata.base import MarketDataProvider
from core.store.blobs import BlobMeta, BlobNotFound, BlobStore, StoreError
from core.types import BAR_COLUMNS, NY, empty_bars, normalise_bars

log = logging.getLogger(__name__)

TRADIER_DAYS = 40  # how far back Tradier serves 5-minute bars (session_filter=open)
PRICE_COLUMNS = ["open", "high", "low", "close"]


class ArchiveError(StoreError):
    """Bars could not be archived or an archived month is unreadable."""


class ArchiveConflict(ArchiveError):
    """An import would rewrite archived bars that differ from it."""


@dataclass
class ArchiveReport:
    """What `tradebot archive SYMBOL --check` shows: coverage, holes and bars the rules now refuse."""

    symbol: str
    timeframe: str
    bars: int
    sessions: int
    first: datetime | None
    last: datetime | None
    missing_sessions: list[date] = field(default_factory=list)  # no bar at all, between first and last
    short_sessions: list[tuple[date, int, int]] = field(default_factory=list)  # (day, bars, expected)
    refused: list[tuple[datetime, str]] = field(default_factory=list)  # (bar start, why)


def expected_starts(start: datetime, end: datetime, bar_minutes: int) -> pd.DatetimeIndex:
    """Start times of every regular-session bar that starts at or after `start` and has closed by `end`."""
    lo, hi = _as_ny(start), _as_ny(end)
    out: list[pd.Timestamp] = []
    step = pd.Timedelta(minutes=bar_minutes)
    for day in calendar.sessions_between(lo.date(), hi.date()):
        o, c = (pd.Timestamp(t) for t in calendar.session_bounds(day))
        t = o
        while t < c and min(t + step, c) <= hi:
            if t >= lo:
                out.append(t)
            t += step
    return pd.DatetimeIndex(out, name="time").tz_convert(NY) if out else pd.DatetimeIndex([], tz=NY, name="time")


def _month_of(ts: pd.Timestamp) -> str:
    return f"{ts.year:04d}-{ts.month:02d}"


def _as_ny(moment: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(moment)
    return ts.tz_localize(NY) if ts.tzinfo is None else ts.tz_convert(NY)


def encode_month(frame: pd.DataFrame) -> bytes:
    """Deterministic bytes for one month (gzip mtime 0), so unchanged data never looks changed."""
    out = frame[BAR_COLUMNS].copy()
    out.insert(0, "time", [ts.isoformat() for ts in frame.index])
    text = out.to_csv(index=False, float_format=None, lineterminator="\n")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(text.encode())
    return buf.getvalue()


def decode_month(data: bytes, label: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype={c: "float64" for c in BAR_COLUMNS})
        idx = pd.to_datetime(raw["time"], format="ISO8601", utc=True).dt.tz_convert(NY)
        frame = raw[BAR_COLUMNS].set_axis(pd.DatetimeIndex(idx, name="time"), axis=0)
    except (OSError, EOFError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise ArchiveError(f"archive month {label} is unreadable ({type(exc).__name__})") from None
    return normalise_bars(frame)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Row-wise equality of two aligned frames, NaN equal to NaN."""
    av, bv = a.to_numpy(), b.to_numpy()
    return ((av == bv) | (np.isnan(av) & np.isnan(bv))).all(axis=1)


class BarArchive:
    def __init__(self, blobs: BlobStore, cache_dir: Path | None = None):
        self.blobs = blobs
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    # --- keys and cache ---------------------------------------------------------------------
    @staticmethod
    def _prefix(symbol: str, timeframe: str) -> str:
        if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
            raise ArchiveError(f"invalid symbol {symbol!r}")
        if timeframe not in TIMEFRAME_MINUTES:
            raise ArchiveError(f"invalid timeframe {timeframe!r}")
        return f"archive/{symbol}/{timeframe}/"

    def _months(self, symbol: str, timeframe: str) -> dict[str, BlobMeta]:
        prefix = self._prefix(symbol, timeframe)
        out: dict[str, BlobMeta] = {}
        for meta in self.blobs.list_meta(prefix):
            name = meta.key[len(prefix):]
            if name.endswith(".csv.gz") and len(name) == len("YYYY-MM.csv.gz"):
                out[name[:7]] = meta
        return out

    def _cache_folder(self, symbol: str, timeframe: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / symbol / timeframe

    def _cache_index(self, folder: Path) -> dict[str, str]:
        try:
            index = json.loads((folder / "index.json").read_text())
            return {str(k): str(v) for k, v in index.items()} if isinstance(index, dict) else {}
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _write_local(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _cache_put(self, folder: Path | None, month: str, etag: str, data: bytes) -> None:
        if folder is None:
            return
        try:
            # Data first, index second: a crash in between leaves an index that does not vouch
            # for the new file, so the month is simply downloaded again.
            index = self._cache_index(folder)
            index.pop(month, None)
            self._write_local(folder / "index.json", json.dumps(index).encode())
            self._write_local(folder / f"{month}.csv.gz", data)
            index[month] = etag
            self._write_local(folder / "index.json", json.dumps(index, sort_keys=True).encode())
        except OSError as exc:  # the cache only saves downloads; never fail a read over it
            log.warning("bar archive cache %s not writable: %s", folder, exc.strerror or exc)

    def _read_month(self, symbol: str, timeframe: str, month: str, meta: BlobMeta,
                    index: dict[str, str]) -> bytes:
        folder = self._cache_folder(symbol, timeframe)
        if folder is not None and index.get(month) == meta.etag:
            try:
                data = (folder / f"{month}.csv.gz").read_bytes()
                if len(data) == meta.size:
                    return data
            except OSError:
                pass
        try:
            data = self.blobs.get(meta.key)
        except BlobNotFound:
            raise ArchiveError(f"archive month {symbol} {timeframe} {month} vanished while reading") from None
        self._cache_put(folder, month, meta.etag, data)
        return data

    # --- read -------------------------------------------------------------------------------
    def load(self, symbol: str, timeframe: str, start: datetime | None = None,
             end: datetime | None = None) -> pd.DataFrame:
        """Archived bars whose start lies in [start, end] (both optional), as a core.types bar frame."""
        months = self._months(symbol, timeframe)
        lo = _as_ny(start) if start is not None else None
        hi = _as_ny(end) if end is not None else None
        wanted = [m for m in sorted(months)
                  if (lo is None or m >= _month_of(lo)) and (hi is None or m <= _month_of(hi))]
        if not wanted:
            return empty_bars()
        folder = self._cache_folder(symbol, timeframe)
        index = self._cache_index(folder) if folder is not None else {}
        frames = [decode_month(self._read_month(symbol, timeframe, m, months[m], index),
                               f"{symbol} {timeframe} {m}") for m in wanted]
        frame = normalise_bars(pd.concat(frames)) if len(frames) > 1 else frames[0]
        if lo is not None:
            frame = frame[frame.index >= lo]
        if hi is not None:
            frame = frame[frame.index <= hi]
        return frame

    def coverage(self, symbol: str, timeframe: str) -> tuple[datetime, datetime, int] | None:
        """(first bar start, last bar start, bar count), or None when nothing is archived."""
        frame = self.load(symbol, timeframe)
        if frame.empty:
            return None
        return frame.index[0].to_pydatetime(), frame.index[-1].to_pydatetime(), len(frame)

    def sessions(self, symbol: str, timeframe: str) -> int:
        """How many distinct New York trading dates have at least one archived bar."""
        frame = self.load(symbol, timeframe)
        return 0 if frame.empty else int(pd.Index(frame.index.date).nunique())

    def last_bar(self, symbol: str, timeframe: str) -> datetime | None:
        """Start of the newest archived bar; reads only the newest non-empty month."""
        months = self._months(symbol, timeframe)
        folder = self._cache_folder(symbol, timeframe)
        index = self._cache_index(folder) if folder is not None else {}
        for month in sorted(months, reverse=True):
            data = self._read_month(symbol, timeframe, month, months[month], index)
            frame = decode_month(data, f"{symbol} {timeframe} {month}")
            if not frame.empty:
                return frame.index[-1].to_pydatetime()
        return None

    # --- write ------------------------------------------------------------------------------
    @staticmethod
    def _validate(bars: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(bars, pd.DataFrame):
            raise ArchiveError("bars must be a DataFrame")
        missing = [c for c in ["open", "high", "low", "close", "volume"] if c not in bars.columns]
        if missing:
            raise ArchiveError(f"bars lack column(s) {', '.join(missing)}")
        if not isinstance(bars.index, pd.DatetimeIndex):
            raise ArchiveError("bars need a DatetimeIndex of bar start times")
        try:
            frame = normalise_bars(bars)
        except (TypeError, ValueError) as exc:
            raise ArchiveError(f"bars are not numeric ({type(exc).__name__})") from None
        if frame[PRICE_COLUMNS].isna().any().any():
            raise ArchiveError("bars contain missing prices")
        return frame

    def merge(self, symbol: str, timeframe: str, bars: pd.DataFrame) -> int:
        """Add bars; return how many timestamps were new. Idempotent. An existing bar is rewritten
        only if the new values differ (NaN in the new bar keeps the archived value, e.g. vix)."""
        prefix = self._prefix(symbol, timeframe)
        frame = self._validate(bars)
        if frame.empty:
            return 0
        months = self._months(symbol, timeframe)
        folder = self._cache_folder(symbol, timeframe)
        index = self._cache_index(folder) if folder is not None else {}
        added = 0
        written: dict[str, bytes] = {}
        labels = np.array([_month_of(ts) for ts in frame.index])
        for month in sorted(set(labels)):
            incoming = frame[labels == month]
            label = f"{symbol} {timeframe} {month}"
            if month in months:
                existing = decode_month(self._read_month(symbol, timeframe, month, months[month], index), label)
            else:
                existing = empty_bars()
            new_idx = incoming.index.difference(existing.index)
            common = incoming.index.intersection(existing.index)
            updated = incoming.loc[common].combine_first(existing.loc[common])[BAR_COLUMNS]
            changed = ~_same(updated, existing.loc[common])
            if len(new_idx) == 0 and not changed.any():
                continue
            merged = existing.copy()
            merged.loc[common] = updated
            merged = normalise_bars(pd.concat([merged, incoming.loc[new_idx]]))
            data = encode_month(merged)
            self.blobs.put(f"{prefix}{month}.csv.gz", data)
            written[month] = data
            added += len(new_idx)
        if written and folder is not None:
            fresh = self._months(symbol, timeframe)
            for month, data in written.items():
                meta = fresh.get(month)
                if meta is not None and meta.size == len(data):
                    self._cache_put(folder, month, meta.etag, data)
        return added

    def diff(self, symbol: str, timeframe: str, bars: pd.DataFrame) -> tuple[int, int]:
        """(bars new to the archive, archived bars the given ones would change), writing nothing."""
        frame = self._validate(bars)
        if frame.empty:
            return 0, 0
        have = self.load(symbol, timeframe, frame.index[0].to_pydatetime(), frame.index[-1].to_pydatetime())
        common = frame.index.intersection(have.index)
        updated = frame.loc[common].combine_first(have.loc[common])[BAR_COLUMNS]
        changed = int((~_same(updated, have.loc[common])).sum()) if len(common) else 0
        return len(frame.index.difference(have.index)), changed

    def drop_sessions(self, symbol: str, timeframe: str, first: date, last: date) -> int:
        """Delete every bar of the New York trading dates first..last (inclusive); returns how many."""
        if last < first:
            raise ArchiveError(f"--drop {first.isoformat()} {last.isoformat()}: the end is before the start")
        prefix = self._prefix(symbol, timeframe)
        months = self._months(symbol, timeframe)
        folder = self._cache_folder(symbol, timeframe)
        index = self._cache_index(folder) if folder is not None else {}
        lo, hi = f"{first.year:04d}-{first.month:02d}", f"{last.year:04d}-{last.month:02d}"
        dropped = 0
        for month in sorted(m for m in months if lo <= m <= hi):
            frame = decode_month(self._read_month(symbol, timeframe, month, months[month], index),
                                 f"{symbol} {timeframe} {month}")
            days = np.array(frame.index.date)
            gone = (days >= first) & (days <= last)
            if not gone.any():
                continue
            kept = frame[~gone]
            if kept.empty:
                self.blobs.delete(f"{prefix}{month}.csv.gz")
            else:
                self.blobs.put(f"{prefix}{month}.csv.gz", encode_month(kept))
            dropped += int(gone.sum())
        return dropped

    def check(self, symbol: str, timeframe: str, now: datetime, max_jump: float) -> ArchiveReport:
        """Coverage, sessions with no or too few bars, and bars that the import rules refuse today."""
        frame = self.load(symbol, timeframe)
        if frame.empty:
            return ArchiveReport(symbol, timeframe, 0, 0, None, None)
        minutes = TIMEFRAME_MINUTES[timeframe]
        refused = problems(frame, BarRules(minutes, now, max_jump))
        bad_rows = {p.row for p in refused}
        good = frame.iloc[[i for i in range(len(frame)) if i not in bad_rows]]
        counts = pd.Series(1, index=good.index.date).groupby(level=0).sum()
        report = ArchiveReport(symbol, timeframe, len(frame), int(pd.Index(frame.index.date).nunique()),
                               frame.index[0].to_pydatetime(), frame.index[-1].to_pydatetime(),
                               refused=[(frame.index[p.row].to_pydatetime(), p.what) for p in refused])
        if good.empty:
            return report
        end = min(good.index[-1].to_pydatetime() + timedelta(minutes=minutes), _as_ny(now).to_pydatetime())
        grid = expected_starts(good.index[0].to_pydatetime(), end, minutes)
        want = pd.Series(1, index=grid.date).groupby(level=0).sum()
        for day, n in want.items():
            have = int(counts.get(day, 0))
            if have == 0:
                report.missing_sessions.append(day)
            elif have < n:
                report.short_sessions.append((day, have, int(n)))
        return report

    async def update(self, provider: MarketDataProvider, symbol: str, timeframe: str, now: datetime,
                     max_days: int, progress: Callable[[str], None] | None = None, *,
                     chunk_days: int = 7) -> int:
        """Fetch and archive every bar the provider still serves (the last min(max_days, 40) days)
        that the archive lacks: the holes between archived bars, before the first and after the
        last, not only what follows the newest bar (which may be a stray future row, or one recent
        imported session in front of older ones never fetched). Merges chunk by chunk so a restart
        resumes where it stopped. Returns the number of bars added."""
        if max_days < 1 or chunk_days < 1:
            raise ArchiveError("max_days and chunk_days must be at least 1")
        now_ny = _as_ny(now).to_pydatetime()
        window = now_ny - timedelta(days=min(max_days, TRADIER_DAYS))
        bar = timedelta(minutes=TIMEFRAME_MINUTES[timeframe])
        have = (await asyncio.to_thread(self.load, symbol, timeframe, window, now_ny)).index
        missing = expected_starts(window, now_ny, TIMEFRAME_MINUTES[timeframe]).difference(have)
        added = 0
        for start, stop in _holes(have, missing, window, now_ny, bar):
            chunk_start = start
            while True:
                end = min(chunk_start + timedelta(days=chunk_days), stop)
                bars = await provider.get_bars(symbol, chunk_start, end, timeframe)
                new = await asyncio.to_thread(self.merge, symbol, timeframe, bars)
                added += new
                if progress is not None:
                    progress(f"{symbol} {timeframe}: {chunk_start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}: "
                             f"+{new} bars")
                if end >= stop:
                    break
                chunk_start = end + timedelta(seconds=1)  # [start, end] is inclusive; bars sit on whole minutes
        return added


def _holes(have: pd.DatetimeIndex, missing: pd.DatetimeIndex, window: datetime, now: datetime,
           bar: timedelta) -> list[tuple[datetime, datetime]]:
    """The spans between archived bars that hold missing bars, as inclusive [start, end] ranges."""
    spans: dict[int, tuple[datetime, datetime]] = {}
    for position in np.unique(have.searchsorted(missing)):
        start = have[position - 1].to_pydatetime() + bar if position > 0 else window
        end = have[position].to_pydatetime() - bar if position < len(have) else now
        spans[int(position)] = (max(start, window), end)
    return [spans[p] for p in sorted(spans)]


@dataclass
class ImportResult:
    read: int
    added: int
    replaced: int


def import_bars(archive: BarArchive, symbol: str, timeframe: str, bars: pd.DataFrame, *,
                replace: bool = False) -> ImportResult:
    """Merge checked bars (e.g. from a CSV export) into the archive. Archived bars that differ are
    rewritten only with `replace`; otherwise the import is refused whole, naming how many."""
    added, changed = archive.diff(symbol, timeframe, bars)
    if changed and not replace:
        raise ArchiveConflict(f"{changed:,} archived {symbol} {timeframe} bars differ from the file; nothing "
                              "imported (--replace overwrites them)")
    archive.merge(symbol, timeframe, bars)
    return ImportResult(len(bars), added, changed)
