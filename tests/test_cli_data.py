"""One clear line instead of a traceback, and the archive commands, through `bot.cli.main` (issue 9)."""

from __future__ import annotations

import pytest

from bot.cli import main
from bot.errors import user_message
from config import ConfigError, load_settings
from core.marketdata.csv_file import CsvFormatError
from tests.test_train_e2e import _env, recent_random_walk, write_bars_csv


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("at", ["9999-01-04T10:00:00-05:00", "0001-01-01T10:00:00", "1990-03-05T10:00:00-05:00",
                                "2035-03-05T10:00:00-05:00"])
def test_scan_at_out_of_range_is_one_line(tmp_path, monkeypatch, capsys, at) -> None:
    _env(monkeypatch, tmp_path)
    assert main(["scan", "--once", "--at", at]) == 1
    assert "is out of range" in one_error_line(capsys)


def test_performance_chart_into_a_missing_folder(tmp_path, monkeypatch, capsys) -> None:
    _env(monkeypatch, tmp_path)
    target = tmp_path / "not" / "there" / "card.png"
    assert main(["performance", "--chart", str(target)]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_import_of_future_rows_is_refused_and_archives_nothing(tmp_path, monkeypatch, capsys) -> None:
    csv = tmp_path / "SPY.csv"
    csv.write_text("time,open,high,low,close,volume\n2100-01-04 09:30,1,1,1,1,1\n2100-01-04 09:35,1,1,1,1,1\n")
    _env(monkeypatch, tmp_path)
    assert main(["import-bars", str(csv), "--symbol", "SPY"]) == 1
    err = one_error_line(capsys)
    assert "line 2: time 2100-01-04 09:30 is in the future" in err and "market data unavailable" not in err
    assert not (tmp_path / "models").exists()


def test_import_of_a_daily_file_is_refused_even_with_one_row(tmp_path, monkeypatch, capsys) -> None:
    csv = tmp_path / "SPY.csv"
    csv.write_text("date,open,high,low,close,volume\n2025-11-13,512.4,514.98,509.95,512.25,24567416\n")
    _env(monkeypatch, tmp_path)
    assert main(["import-bars", str(csv), "--symbol", "SPY"]) == 1
    assert "holds daily bars but TIMEFRAME is 5min" in one_error_line(capsys)


def test_reimport_of_differing_bars_needs_replace_then_check_and_drop(tmp_path, monkeypatch, capsys) -> None:
    bars = recent_random_walk(2)
    csv = write_bars_csv(tmp_path / "SPY.csv", bars)
    _env(monkeypatch, tmp_path)
    assert main(["import-bars", str(csv), "--symbol", "SPY"]) == 0
    capsys.readouterr()
    changed = bars.copy()
    changed[["open", "high", "low", "close"]] *= 1.01
    write_bars_csv(csv, changed)
    assert main(["import-bars", str(csv), "--symbol", "SPY"]) == 1
    assert f"{len(bars):,} archived SPY 5min bars differ" in one_error_line(capsys)
    assert main(["import-bars", str(csv), "--symbol", "SPY", "--replace"]) == 0
    assert f"{len(bars):,} archived bars replaced" in capsys.readouterr().out

    assert main(["archive", "SPY", "--check"]) == 0
    out = capsys.readouterr().out
    assert f"SPY 5min: {len(bars):,} bars in 2 sessions" in out and "bars the import rules now refuse: 0" in out
    days = sorted(set(bars.index.date))
    first, last = (d.isoformat() for d in days)
    assert main(["archive", "SPY", "--drop", first, first]) == 0
    on_first = int((bars.index.date == days[0]).sum())  # a half day has fewer bars
    assert f"{on_first:,} bars of {first}..{first} dropped" in capsys.readouterr().out
    assert main(["archive", "SPY", "--drop", last, "yesterday"]) == 1
    assert "'yesterday' is not an ISO date" in one_error_line(capsys)


def test_a_nan_threshold_says_it_must_be_finite(monkeypatch) -> None:
    monkeypatch.setenv("ALERT_THRESHOLD", "nan")
    with pytest.raises(ConfigError, match="ALERT_THRESHOLD: must be a finite number"):
        load_settings(_env_file=None)


def test_csv_format_errors_are_not_called_market_data_unavailable() -> None:
    assert user_message(CsvFormatError("SPY.csv: line 3: high 99 is below close 101")) == (
        "SPY.csv: line 3: high 99 is below close 101")
