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
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from config.settings import SYMBOL_RE, TIMEFRAME_MINUTES
from core.marketdata.base import MarketDataProvider
from core.store.blobs import BlobMeta, BlobNotFound, BlobStore, StoreError
from core.types import BAR_COLUMNS, NY, empty_bars, normalise_bars

log = logging.getLogger(__name__)

TRADIER_DAYS = 40  # how far back Tradier serves 5-minute bars (session_filter=open)
PRICE_COLUMNS = ["open", "high", "low", "close"]


class ArchiveError(StoreError):
    """Bars could not be archived or an archived month is unreadable."""


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

    async def update(self, provider: MarketDataProvider, symbol: str, timeframe: str, now: datetime,
                     max_days: int, progress: Callable[[str], None] | None = None, *,
                     chunk_days: int = 7) -> int:
        """Fetch and archive only what is new, from the last archived bar (or
        now - min(max_days, 40) days when empty) to now, merging chunk by chunk so a restart
        resumes where it stopped. Returns the number of bars added."""
        if max_days < 1 or chunk_days < 1:
            raise ArchiveError("max_days and chunk_days must be at least 1")
        now_ny = _as_ny(now).to_pydatetime()
        last = await asyncio.to_thread(self.last_bar, symbol, timeframe)
        if last is None:
            start = now_ny - timedelta(days=min(max_days, TRADIER_DAYS))
        else:
            # The next bar after the newest archived one; never further back than max_days.
            start = max(last + timedelta(minutes=TIMEFRAME_MINUTES[timeframe]),
                        now_ny - timedelta(days=max_days))
        added = 0
        chunk = timedelta(days=chunk_days)
        bar = timedelta(minutes=TIMEFRAME_MINUTES[timeframe])
        while start + bar <= now_ny:  # else no bar starting at or after `start` can have closed yet
            end = min(start + chunk, now_ny)
            bars = await provider.get_bars(symbol, start, end, timeframe)
            new = await asyncio.to_thread(self.merge, symbol, timeframe, bars)
            added += new
            if progress is not None:
                progress(f"{symbol} {timeframe}: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}: "
                         f"+{new} bars")
            if end >= now_ny:
                break
            start = end + timedelta(seconds=1)  # [start, end] is inclusive; bars sit on whole minutes
        return added
