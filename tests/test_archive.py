"""Bar archive against a local folder and a real S3-compatible server (moto, 127.0.0.1)."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.marketdata.archive import ArchiveError, BarArchive
from core.store import BlobStore, LocalBlobStore
from core.types import BAR_COLUMNS, NY, MarketDataError, empty_bars
from tests.fakes.s3_server import make_bucket, s3_endpoint  # noqa: F401

PREFIX = "archive/SPY/5min/"


def session_bars(first: str, last: str) -> pd.DataFrame:
    """Deterministic regular-session 5-minute bars on weekdays, some with unknown VIX."""
    stamps = []
    for day in pd.bdate_range(first, last):
        open_ = pd.Timestamp(day.date(), tz=NY) + pd.Timedelta(hours=9, minutes=30)
        stamps.extend(open_ + pd.Timedelta(minutes=5 * i) for i in range(78))
    n = len(stamps)
    close = 100 + np.arange(n) * 0.013 + np.sin(np.arange(n) / 7.0)
    vix = 15 + (np.arange(n) % 11) * 0.17
    vix[::13] = np.nan
    idx = pd.DatetimeIndex(stamps, name="time")
    return pd.DataFrame({"open": close - 0.05, "high": close + 0.2, "low": close - 0.21, "close": close,
                         "volume": (1000 + np.arange(n) % 97 * 10).astype("float64"), "vix": vix}, index=idx)


FULL = session_bars("2026-01-19", "2026-03-13")  # spans Jan/Feb/Mar and the March DST change


class FakeProvider:
    """Serves slices of FULL like MarketDataProvider.get_bars; counts requests; can fail mid-run."""

    source = "simulated"

    def __init__(self, fail_after: int | None = None):
        self.requests: list[tuple[datetime, datetime]] = []
        self.fail_after = fail_after

    async def get_bars(self, symbol: str, start: datetime, end: datetime, timeframe: str) -> pd.DataFrame:
        assert symbol == "SPY" and timeframe == "5min"
        if self.fail_after is not None and len(self.requests) >= self.fail_after:
            raise MarketDataError("simulated outage")
        self.requests.append((start, end))
        return FULL[(FULL.index >= start) & (FULL.index <= end)].copy()


class RecordingBlobs:
    def __init__(self, inner: BlobStore):
        self.inner = inner
        self.gets: list[str] = []
        self.puts: list[str] = []

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.puts.append(key)
        self.inner.put(key, data)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def ny(text: str) -> datetime:
    return pd.Timestamp(text, tz=NY).to_pydatetime()


def expected(start: datetime, end: datetime) -> pd.DataFrame:
    return FULL[(FULL.index >= start) & (FULL.index <= end)]


async def test_incremental_updates_fetch_only_new_bars(blobs: BlobStore, tmp_path: Path) -> None:
    archive = BarArchive(blobs, tmp_path / "cache")
    now = ny("2026-02-20 16:30")
    first = FakeProvider()
    messages: list[str] = []
    added = await archive.update(first, "SPY", "5min", now, max_days=30, progress=messages.append)
    want = expected(now - timedelta(days=30), now)
    assert added == len(want) and len(messages) == len(first.requests) == 5  # 30 days in 7-day chunks
    assert first.requests[0][0] == now - timedelta(days=30) and first.requests[-1][1] == now
    pd.testing.assert_frame_equal(archive.load("SPY", "5min"), want, check_freq=False)

    again = FakeProvider()
    assert await archive.update(again, "SPY", "5min", now, max_days=30) == 0
    assert again.requests == []  # every bar that has closed is archived: nothing to ask for
    too_soon = FakeProvider()  # the bar after 15:55 closes at 16:05, after 16:04
    assert await archive.update(too_soon, "SPY", "5min", ny("2026-02-20 16:04"), max_days=30) == 0
    assert too_soon.requests == []

    later = ny("2026-02-25 12:00")
    third = FakeProvider()
    added = await archive.update(third, "SPY", "5min", later, max_days=30)
    assert third.requests == [(ny("2026-02-20 16:00"), later)]
    assert added == len(expected(ny("2026-02-20 16:00"), later))
    coverage = archive.coverage("SPY", "5min")
    assert coverage == (want.index[0].to_pydatetime(), ny("2026-02-25 12:00"), len(want) + added)
    assert archive.sessions("SPY", "5min") == len(set(want.index.date)) + 3


async def test_empty_archive_starts_at_most_40_days_back(tmp_path: Path) -> None:
    archive = BarArchive(LocalBlobStore(tmp_path), None)
    provider = FakeProvider()
    now = ny("2026-03-13 17:00")
    added = await archive.update(provider, "SPY", "5min", now, max_days=365, chunk_days=10)
    assert provider.requests[0][0] == now - timedelta(days=40)
    assert added == len(expected(now - timedelta(days=40), now))


async def test_restart_mid_run_converges_without_duplicates_or_gaps(blobs: BlobStore) -> None:
    now = ny("2026-03-13 17:00")
    archive = BarArchive(blobs, None)
    with pytest.raises(MarketDataError):
        await archive.update(FakeProvider(fail_after=1), "SPY", "5min", now, max_days=40)
    partial = archive.load("SPY", "5min")
    assert 0 < len(partial) < len(expected(now - timedelta(days=40), now))

    resumed = FakeProvider()
    added = await BarArchive(blobs, None).update(resumed, "SPY", "5min", now, max_days=40)
    assert resumed.requests[0][0] == partial.index[-1] + timedelta(minutes=5)
    final = archive.load("SPY", "5min")
    assert added + len(partial) == len(final) and final.index.is_unique
    pd.testing.assert_frame_equal(final, expected(now - timedelta(days=40), now), check_freq=False)


def test_months_are_separate_files_and_only_changed_months_are_written(blobs: BlobStore) -> None:
    recording = RecordingBlobs(blobs)
    archive = BarArchive(recording, None)
    bars = FULL[(FULL.index >= ny("2026-01-29")) & (FULL.index <= ny("2026-03-10 10:00"))]
    assert archive.merge("SPY", "5min", bars) == len(bars)
    assert blobs.list(PREFIX) == [f"{PREFIX}2026-01.csv.gz", f"{PREFIX}2026-02.csv.gz", f"{PREFIX}2026-03.csv.gz"]
    raw = gzip.decompress(blobs.get(f"{PREFIX}2026-03.csv.gz")).decode().splitlines()
    assert raw[0] == "time," + ",".join(BAR_COLUMNS)
    assert raw[1].startswith("2026-03-02T09:30:00-05:00,") and raw[-1].startswith("2026-03-10T10:00:00-04:00,")
    jan = archive.load("SPY", "5min", end=ny("2026-01-31 23:59"))
    assert len(jan) == 2 * 78 and jan.index[-1] == ny("2026-01-30 15:55")

    recording.puts.clear()
    assert archive.merge("SPY", "5min", bars) == 0 and recording.puts == []  # idempotent, no rewrite

    edited = bars.loc[[ny("2026-02-27 15:55")]].copy()
    edited["close"] += 1.0
    edited["vix"] = np.nan  # an unknown VIX in the newer bar keeps the archived one
    next_bar = FULL.loc[[ny("2026-03-10 10:05")]]
    assert archive.merge("SPY", "5min", pd.concat([edited, next_bar])) == 1
    assert recording.puts == [f"{PREFIX}2026-02.csv.gz", f"{PREFIX}2026-03.csv.gz"]
    row = archive.load("SPY", "5min").loc[ny("2026-02-27 15:55")]
    assert row["close"] == pytest.approx(bars.loc[ny("2026-02-27 15:55"), "close"] + 1.0)
    assert row["vix"] == bars.loc[ny("2026-02-27 15:55"), "vix"]


def test_cache_reuses_unchanged_months(blobs: BlobStore, tmp_path: Path) -> None:
    BarArchive(blobs, None).merge("SPY", "5min", FULL)
    recording = RecordingBlobs(blobs)
    reader = BarArchive(recording, tmp_path / "cache")
    first = reader.load("SPY", "5min")
    assert len(recording.gets) == 3
    recording.gets.clear()
    pd.testing.assert_frame_equal(reader.load("SPY", "5min"), first)
    assert recording.gets == []

    # Another machine revises one March bar: only March is downloaded again.
    revised = FULL.loc[[ny("2026-03-12 11:00")]].copy()
    revised["close"] = 123.45
    BarArchive(blobs, None).merge("SPY", "5min", revised)
    fresh = reader.load("SPY", "5min")
    assert recording.gets == [f"{PREFIX}2026-03.csv.gz"]
    assert fresh.loc[ny("2026-03-12 11:00"), "close"] == 123.45

    # A damaged cache file is noticed (size differs from the blob) and replaced.
    (tmp_path / "cache" / "SPY" / "5min" / "2026-01.csv.gz").write_bytes(b"junk")
    recording.gets.clear()
    pd.testing.assert_frame_equal(reader.load("SPY", "5min"), fresh)
    assert recording.gets == [f"{PREFIX}2026-01.csv.gz"]


def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    archive = BarArchive(blobs, None)
    with pytest.raises(ArchiveError, match="lack column"):
        archive.merge("SPY", "5min", FULL.drop(columns=["close"]))
    broken = FULL.iloc[:5].copy()
    broken.iloc[2, 0] = np.nan
    with pytest.raises(ArchiveError, match="missing prices"):
        archive.merge("SPY", "5min", broken)
    with pytest.raises(ArchiveError, match="invalid symbol"):
        archive.merge("../x", "5min", FULL.iloc[:5])
    assert archive.merge("SPY", "5min", empty_bars()) == 0
    assert blobs.list("") == [] and archive.coverage("SPY", "5min") is None
    assert archive.sessions("SPY", "5min") == 0

    blobs.put(f"{PREFIX}2026-01.csv.gz", b"not gzip")
    with pytest.raises(ArchiveError, match="2026-01 is unreadable"):
        archive.load("SPY", "5min")
