"""CSV bars: the strict reader (every error names its line) and the provider over files and folders."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.marketdata.base import MarketDataProvider
from core.marketdata.csv_file import CsvFormatError, CsvProvider, read_bars_csv
from core.types import BAR_COLUMNS, NY, MarketDataError, UnknownSymbolError

SHARED_QQQ = Path("/work/shared/data/qqq_daily_2024-11-13_2025-11-13.csv")
HEADER = "time,open,high,low,close,volume"
GOOD_ROWS = [
    "2025-11-24 09:30,100.0,101.0,99.5,100.5,1000",
    "2025-11-24 09:35,100.5,101.5,100.2,101.0,1200",
    "2025-11-24 09:40,101.0,101.2,100.8,101.1,900",
    "2025-11-24 09:45,101.1,101.6,101.0,101.5,800",
]


def write(tmp_path: Path, lines: list[str], name: str = "SPY.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


@pytest.mark.skipif(not SHARED_QQQ.exists(), reason="shared QQQ file not present")
def test_shared_qqq_daily_file_loads() -> None:
    bars = read_bars_csv(SHARED_QQQ)
    assert len(bars) == 251
    assert list(bars.columns) == BAR_COLUMNS
    assert bars.index[0] == pd.Timestamp(ny(2024, 11, 13, 9, 30))
    assert bars.index[-1] == pd.Timestamp(ny(2025, 11, 13, 9, 30))
    assert bars["close"].iloc[0] == 512.25 and bars["vix"].iloc[0] == 14.02
    assert bars.index.is_monotonic_increasing and str(bars.index.tz) == "America/New_York"


@pytest.mark.skipif(not SHARED_QQQ.exists(), reason="shared QQQ file not present")
async def test_provider_over_the_shared_daily_file() -> None:
    provider = CsvProvider(SHARED_QQQ, clock=lambda: ny(2026, 1, 5, 12, 0))
    assert isinstance(provider, MarketDataProvider) and provider.source == "csv"
    assert provider.symbols == ["QQQ"]
    quotes = await provider.get_quotes(["qqq", "SPY", "VIX"])
    assert set(quotes) == {"QQQ", "VIX"}
    assert quotes["QQQ"].last == 608.4 and quotes["QQQ"].prevclose == 621.08
    daily = await provider.get_daily("QQQ", date(2025, 11, 10), date(2025, 12, 31))
    assert len(daily) == 4 and daily.index.tz is None
    with pytest.raises(MarketDataError, match="daily bars"):
        await provider.get_bars("QQQ", ny(2025, 1, 1), ny(2025, 2, 1), "5min")
    with pytest.raises(UnknownSymbolError):
        await provider.get_daily("SPY", date(2025, 1, 1), date(2025, 2, 1))


def test_good_file_and_time_formats(tmp_path: Path) -> None:
    bars = read_bars_csv(write(tmp_path, [HEADER, *GOOD_ROWS]))
    assert len(bars) == 4 and bars["vix"].isna().all()
    assert bars.index[0] == pd.Timestamp(ny(2025, 11, 24, 9, 30))
    epoch = int(pd.Timestamp(ny(2025, 11, 24, 9, 30)).timestamp())
    other = write(tmp_path, [
        "Timestamp,Open,HIGH,low,Close,Volume,VIX",
        f"{epoch},100,101,99,100.5,10,15.1",
        "2025-11-24T09:35:00-05:00,100.5,101,100,100.8,10,",
        "2025-11-24T14:40:00Z,100.8,101,100,100.9,10,15.3",
        "2025-11-24 09:45:00,100.9,101,100,100.9,0,15.4",
    ], name="qqq_mixed.csv")
    parsed = read_bars_csv(other)
    assert [t.strftime("%H:%M") for t in parsed.index] == ["09:30", "09:35", "09:40", "09:45"]
    assert np.isnan(parsed["vix"].iloc[1]) and parsed["vix"].iloc[3] == 15.4


@pytest.mark.parametrize(("rows", "message"), [
    ([HEADER, *GOOD_ROWS[:2], "2025-11-24 09:40,101.0,100.9,100.8,101.1,900"],
     "line 4: high 100.9 is below close 101.1"),
    ([HEADER, *GOOD_ROWS[:2], "2025-11-24 09:40,101.3,101.2,100.8,101.1,900"],
     "line 4: high 101.2 is below open 101.3"),
    ([HEADER, *GOOD_ROWS[:2], "2025-11-24 09:40,101.0,101.2,101.05,101.1,900"],
     "line 4: low 101.05 is above open 101.0"),
    ([HEADER, *GOOD_ROWS[:3], "2025-11-24 09:45,101.1,101.2,101.0,101.5,800"],
     "line 5: high 101.2 is below close 101.5"),
    ([HEADER, GOOD_ROWS[0], "2025-11-24 09:35,101.0,101.5,100.9,100.8,1200"],
     "line 3: low 100.9 is above close 100.8"),
    ([HEADER, GOOD_ROWS[0], "2025-11-24 09:35,100.5,101.5,100.2,-101.0,1200"],
     "line 3: close -101.0 is not positive"),
    ([HEADER, *GOOD_ROWS[:2], "2025-11-24 09:40,101.0,101.2,100.8,101.1,-5"],
     "line 4: volume -5 is negative"),
    ([HEADER, GOOD_ROWS[0], "2025-11-24 09:35,100.5,abc,100.2,101.0,1200"],
     "line 3: high 'abc' is not a number"),
    ([HEADER, GOOD_ROWS[0], "2025-11-24 09:35,100.5,101.5,,101.0,1200"],
     "line 3: low is empty"),
    ([HEADER, GOOD_ROWS[1], GOOD_ROWS[0]], "line 3: time 2025-11-24 09:30 is before"),
    ([HEADER, GOOD_ROWS[0], GOOD_ROWS[0]], "line 3: time 2025-11-24 09:30 repeats"),
    ([HEADER, GOOD_ROWS[0], "yesterday,100.5,101.5,100.2,101.0,1200"],
     "line 3: time 'yesterday' is not a timestamp"),
    (["time,open,high,close,volume", "2025-11-24 09:30,1,1,1,1"], "line 1: missing column(s): low"),
    (["when,open,high,low,close,volume", "2025-11-24 09:30,1,1,1,1,1"], "line 1: missing column(s): time"),
    ([HEADER], "no data rows"),
    (["time,open,high,low,close,volume,vix", GOOD_ROWS[0] + ",0"], "line 2: vix 0 is not positive"),
])
def test_each_validation_error_names_its_line(tmp_path: Path, rows: list[str], message: str) -> None:
    path = write(tmp_path, rows)
    with pytest.raises(CsvFormatError) as caught:
        read_bars_csv(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith("SPY.csv: ")
    assert isinstance(caught.value, MarketDataError)


def test_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, GOOD_ROWS[0], "", GOOD_ROWS[1], "2025-11-24 09:40,101,100,100.8,100.9,9"])
    with pytest.raises(CsvFormatError, match="line 5: high 100 is below open 101"):
        read_bars_csv(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "SPY.csv"
    empty.write_text("")
    with pytest.raises(CsvFormatError, match="line 1: the file is empty"):
        read_bars_csv(empty)
    with pytest.raises(CsvFormatError, match="no such file"):
        read_bars_csv(tmp_path / "nope.csv")


def test_size_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, [HEADER, *GOOD_ROWS])
    size = path.stat().st_size

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was read")

    monkeypatch.setattr(pd, "read_csv", no_reading)
    with pytest.raises(CsvFormatError, match=f"{size} bytes is more than the limit of 100 bytes"):
        read_bars_csv(path, max_bytes=100)
    monkeypatch.undo()
    assert len(read_bars_csv(path, max_bytes=size)) == 4


async def test_folder_of_files(tmp_path: Path) -> None:
    folder = tmp_path / "bars"
    folder.mkdir()
    rows = [f"2025-11-24 {9 + (30 + 5 * i) // 60:02d}:{(30 + 5 * i) % 60:02d},"
            f"{100 + i},{101 + i},{99 + i},{100.5 + i},{1000 + i}" for i in range(24)]
    write(folder, ["time,open,high,low,close,volume,vix", *[r + ",15" for r in rows]], name="SPY.csv")
    write(folder, [HEADER, *rows], name="qqq_5min.csv")
    provider = CsvProvider(folder, clock=lambda: ny(2025, 11, 24, 11, 2))
    assert sorted(provider.symbols) == ["QQQ", "SPY"]
    spy = await provider.get_bars("SPY", ny(2025, 11, 24), ny(2025, 11, 25), "5min")
    assert len(spy) == 18 and spy.index[-1] == pd.Timestamp(ny(2025, 11, 24, 10, 55))  # closed by 11:02
    inside = await provider.get_bars("QQQ", ny(2025, 11, 24, 9, 40), ny(2025, 11, 24, 9, 50), "5min")
    assert [t.strftime("%H:%M") for t in inside.index] == ["09:40", "09:45", "09:50"]
    fifteen = await provider.get_bars("QQQ", ny(2025, 11, 24), ny(2025, 11, 25), "15min")
    assert [t.strftime("%H:%M") for t in fifteen.index] == ["09:30", "09:45", "10:00", "10:15", "10:30", "10:45"]
    assert fifteen["volume"].iloc[0] == 1000 + 1001 + 1002
    quotes = await provider.get_quotes(["SPY", "QQQ", "VIX", "IWM"])
    assert set(quotes) == {"SPY", "QQQ", "VIX"}
    assert quotes["SPY"].last == 100.5 + 17 and quotes["VIX"].last == 15
    with pytest.raises(UnknownSymbolError):
        await provider.get_bars("IWM", ny(2025, 11, 24), ny(2025, 11, 25), "5min")
    with pytest.raises(MarketDataError, match="no option chains"):
        await provider.get_expirations("SPY")
    with pytest.raises(MarketDataError, match="no option chains"):
        await provider.get_chain("SPY", date(2025, 11, 28))
    clock = await provider.get_clock()
    assert clock.state == "open"
    days = await provider.get_calendar(2025, 11)
    assert next(d for d in days if d.day == date(2025, 11, 27)).status == "closed"


def test_single_file_serves_only_its_symbol(tmp_path: Path) -> None:
    provider = CsvProvider(write(tmp_path, [HEADER, *GOOD_ROWS], name="spy.csv"))
    assert provider.symbols == ["SPY"]
    with pytest.raises(UnknownSymbolError):
        provider.bars("QQQ")


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(MarketDataError, match="no such file or folder"):
        CsvProvider(tmp_path / "missing")
    with pytest.raises(MarketDataError, match="no .csv files"):
        CsvProvider(tmp_path)
    write(tmp_path, [HEADER, *GOOD_ROWS], name="SPY.csv")
    write(tmp_path, [HEADER, *GOOD_ROWS], name="spy_5min.csv")
    with pytest.raises(MarketDataError, match="both hold SPY"):
        CsvProvider(tmp_path)


async def test_a_bad_file_in_the_folder_fails_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, [HEADER, GOOD_ROWS[0], "2025-11-24 09:35,100.5,99,100.2,101.0,1200"], name="IWM.csv")
    provider = CsvProvider(tmp_path)
    with pytest.raises(CsvFormatError, match="IWM.csv: line 3: high 99 is below close 101.0"):
        await provider.get_bars("IWM", ny(2025, 11, 24), ny(2025, 11, 25), "5min")
