"""The one bar validator behind `import-bars` and `MARKET_DATA=csv:` (issue 9, item 5): every
refused file names its first bad line and why; the shared daily QQQ file still reads as daily."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.marketdata.csv_file import CsvFormatError, CsvProvider, load_bars_csv, read_bars_csv
from core.types import NY

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=NY)  # a Tuesday, 10:00 New York
HEADER = "time,open,high,low,close,volume"
FIVE = [f"{9 + (30 + 5 * i) // 60:02d}:{(30 + 5 * i) % 60:02d}" for i in range(78)]


def rows(day: str, times: list[str], price: float = 100.0) -> list[str]:
    return [f"{day} {t},{price},{price + 0.5},{price - 0.5},{price + 0.1},100" for t in times]


def utc(times: list[str], hours: int) -> list[str]:
    return [f"{int(t[:2]) + hours:02d}:{t[3:]}" for t in times]


def write(tmp_path: Path, body: list[str], name: str = "SPY.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *body]) + "\n")
    return path


REFUSED = {
    "extended hours": (rows("2026-11-24", ["04:00", "04:05"]),
                       "line 2: time 2026-11-24 04:00 is outside the regular session (09:30-16:00 New York)"),
    "thanksgiving": (rows("2026-11-26", FIVE[:3]), "line 2: 2026-11-26 is not a trading day (Thursday, an NYSE"),
    "saturday": (rows("2026-11-28", FIVE[:3]), "line 2: 2026-11-28 is not a trading day (a Saturday)"),
    "zone-less UTC export": (rows("2026-11-23", utc(FIVE, 5)) + rows("2026-11-24", utc(FIVE, 5)),
                             "looks like UTC: 14:30 here is 09:30 New York"),
    "zone-less UTC export in summer": (rows("2026-06-02", utc(FIVE, 4)),
                                       "looks like UTC: 13:30 here is 09:30 New York"),
    "09:32 in a 5-minute file": (rows("2026-11-24", ["09:30", "09:32", "09:35", "09:40", "09:45"]),
                                 "line 3: time 2026-11-24 09:32 is not on the 5-minute bar grid"),
    "a date row in an intraday file": (["2026-11-23,100,101,99,100,1", *rows("2026-11-24", FIVE[:3])],
                                       "line 2: time 2026-11-23 is a date alone"),
    "1e308": ([*rows("2026-11-24", FIVE[:2]), "2026-11-24 09:40,1e308,1e308,1e308,1e308,1"],
              "line 4: open 1e+308 is not a plausible price"),
    "1990": (rows("1990-01-02", FIVE[:3]), "line 2: 1990-01-02 is before 2000-01-03"),
    "2100": ([*rows("2026-11-24", FIVE[:2]), *rows("2100-01-04", FIVE[:2])],
             "line 4: time 2100-01-04 09:30 is in the future"),
    "a bar not closed by now": (rows("2026-12-01", FIVE[:7]), "line 8: the bar at 2026-12-01 10:00 has not closed"),
    "a 30 % jump within a session": ([*rows("2026-11-24", FIVE[:2]), "2026-11-24 09:40,100,130,99,129,1"],
                                     "line 4: high 130 is 30% away from the previous bar's close 100.1"),
    "epoch milliseconds": (["1764340200000,100,101,99,100,1"], "line 2: time 1764340200000 is too large for "
                                                               "epoch seconds (milliseconds?"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_each_refused_file_names_its_first_bad_line(tmp_path: Path, case: str) -> None:
    body, message = REFUSED[case]
    with pytest.raises(CsvFormatError) as caught:
        read_bars_csv(write(tmp_path, body), now=NOW)
    text = str(caught.value)
    assert text.startswith("SPY.csv: line ") and message in text and "\n" not in text, text


def test_no_hint_when_the_times_are_not_a_shifted_session(tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError) as caught:
        read_bars_csv(write(tmp_path, rows("2026-11-24", ["04:00", "04:05"])), now=NOW)
    assert "looks like" not in str(caught.value)


def test_a_session_open_gap_is_kept_and_reported(tmp_path: Path) -> None:
    checked = load_bars_csv(write(tmp_path, rows("2026-11-23", FIVE[:3]) + rows("2026-11-24", FIVE[:3], 140.0)),
                            now=NOW)
    assert len(checked.bars) == 6 and checked.bar_minutes == 5
    assert checked.notes == ["2026-11-24 opens +40% from the previous close (100.1 -> 140): "
                             "a split or earnings? kept"]


def test_the_jump_limit_is_a_setting(tmp_path: Path) -> None:
    path = write(tmp_path, [*rows("2026-11-24", FIVE[:2]), "2026-11-24 09:40,100,130,99,129,1"])
    assert len(read_bars_csv(path, now=NOW, max_jump=0.5)) == 3


def test_the_csv_provider_applies_the_same_rules(tmp_path: Path) -> None:
    provider = CsvProvider(write(tmp_path, rows("2026-11-26", FIVE[:3])), wall_clock=lambda: NOW)
    with pytest.raises(CsvFormatError, match="line 2: 2026-11-26 is not a trading day"):
        provider.bars("SPY")


def test_the_shared_daily_file_still_reads_as_daily() -> None:
    path = Path("/work/shared/data/qqq_daily_2024-11-13_2025-11-13.csv")
    if not path.exists():
        pytest.skip("shared QQQ file not present")
    checked = load_bars_csv(path, now=NOW)
    assert checked.bar_minutes is None and len(checked.bars) == 251
