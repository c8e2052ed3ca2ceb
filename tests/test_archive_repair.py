"""The archive never silently rewrites good bars, fills its holes from what the provider still
serves, and can be inspected and repaired (issue 9, item 5)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from core.marketdata.archive import ArchiveConflict, BarArchive, import_bars
from core.store import LocalBlobStore
from tests.test_archive import FULL, FakeProvider, expected, ny

NOW = ny("2026-03-13 17:00")


def archive(tmp_path: Path) -> BarArchive:
    return BarArchive(LocalBlobStore(tmp_path / "store"), None)


def test_an_import_over_differing_bars_is_refused_unless_replace(tmp_path: Path) -> None:
    arch = archive(tmp_path)
    day = FULL.loc["2026-03-02"]
    assert import_bars(arch, "SPY", "5min", day).added == 78
    edited = day.copy()
    edited["close"] += 0.5
    edited["high"] += 0.5
    with pytest.raises(ArchiveConflict, match="78 archived SPY 5min bars differ from the file; nothing imported"):
        import_bars(arch, "SPY", "5min", edited)
    pd.testing.assert_frame_equal(arch.load("SPY", "5min"), day, check_freq=False)
    same = import_bars(arch, "SPY", "5min", day)  # an identical re-import is fine and changes nothing
    assert (same.added, same.replaced) == (0, 0)
    replaced = import_bars(arch, "SPY", "5min", edited, replace=True)
    assert (replaced.added, replaced.replaced) == (0, 78)
    assert arch.load("SPY", "5min")["close"].tolist() == edited["close"].tolist()


async def test_one_imported_recent_session_does_not_stop_the_backfill(tmp_path: Path) -> None:
    arch = archive(tmp_path)
    import_bars(arch, "SPY", "5min", FULL.loc["2026-03-12"])
    provider = FakeProvider()
    await arch.update(provider, "SPY", "5min", NOW, max_days=40)
    want = expected(NOW - timedelta(days=40), NOW)
    pd.testing.assert_frame_equal(arch.load("SPY", "5min"), want, check_freq=False)
    assert provider.requests[0][0] == NOW - timedelta(days=40)  # from the window's start, not from 03-12


async def test_a_future_bar_does_not_freeze_the_archive(tmp_path: Path) -> None:
    arch = archive(tmp_path)
    stray = FULL.iloc[:2].copy()
    stray.index = pd.DatetimeIndex([ny("2100-01-04 09:30"), ny("2100-01-04 09:35")], name="time")
    arch.merge("SPY", "5min", stray)
    added = await arch.update(FakeProvider(), "SPY", "5min", NOW, max_days=40)
    assert added == len(expected(NOW - timedelta(days=40), NOW))


async def test_a_hole_in_the_middle_is_filled(tmp_path: Path) -> None:
    arch = archive(tmp_path)
    await arch.update(FakeProvider(), "SPY", "5min", NOW, max_days=40)
    assert arch.drop_sessions("SPY", "5min", date(2026, 3, 3), date(2026, 3, 4)) == 2 * 78
    provider = FakeProvider()
    assert await arch.update(provider, "SPY", "5min", NOW, max_days=40) == 2 * 78
    # one request for the hole, between the archived bars around it
    assert provider.requests == [(ny("2026-03-02 16:00"), ny("2026-03-05 09:25"))]


def test_check_reports_sessions_gaps_and_refused_bars_and_drop_repairs(tmp_path: Path) -> None:
    arch = archive(tmp_path)
    bars = FULL.loc["2026-02-10":"2026-02-20"].drop(FULL.loc["2026-02-12"].index)  # a missing session
    bars = bars.drop(bars.loc["2026-02-13 15:00":"2026-02-13 15:55"].index)  # a short one
    arch.merge("SPY", "5min", bars)
    report = arch.check("SPY", "5min", NOW, 0.2)
    assert report.sessions == 8 and report.bars == len(bars)
    assert report.missing_sessions == [date(2026, 2, 12)]
    assert report.short_sessions == [(date(2026, 2, 13), 66, 78)]
    refused_days = {t.date() for t, _ in report.refused}
    assert refused_days == {date(2026, 2, 16)}  # Presidents' Day: the fake served a holiday
    assert all("not a trading day" in why for _, why in report.refused)

    assert arch.drop_sessions("SPY", "5min", date(2026, 2, 16), date(2026, 2, 16)) == 78
    assert arch.check("SPY", "5min", NOW, 0.2).refused == []
    assert arch.drop_sessions("SPY", "5min", date(2026, 1, 1), date(2026, 12, 31)) == len(bars) - 78
    assert arch.load("SPY", "5min").empty and arch.blobs.list("archive/") == []
