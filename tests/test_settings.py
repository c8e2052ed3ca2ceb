"""Settings: names, defaults, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    import os

    for key in list(os.environ):
        if key.startswith(("TRADIER_", "TELEGRAM_", "DISCORD_", "MARKET_", "SYMBOLS", "TRAIN_", "HORIZON_",
                           "MODEL_STORE", "S3_", "TIMEFRAME", "ALERT_", "STATE_DIR")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults():
    s = load_settings()
    assert s.market_data == "simulated" and s.data_source == "simulated"
    assert s.symbols == ["SPY", "QQQ", "IWM"]
    assert (s.timeframe, s.train_days, s.horizon_bars) == ("5min", 180, 12)
    assert s.model_store == "var/models" and str(s.state_dir) == "var"
    assert s.alert_threshold == 80 and s.alert_cooldown_minutes == 30


def test_token_switches_default_source(monkeypatch):
    monkeypatch.setenv("TRADIER_TOKEN", "abcdef123456")
    s = load_settings()
    assert s.market_data == "tradier"
    assert "abcdef123456" not in repr(s)


def test_lists_parse(monkeypatch):
    monkeypatch.setenv("SYMBOLS", " spy,qqq ")
    monkeypatch.setenv("TELEGRAM_ALLOWED_CHAT_IDS", "1, -1002")
    s = load_settings()
    assert s.symbols == ["SPY", "QQQ"] and s.telegram_allowed_chat_ids == [1, -1002]


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("TRAIN_DAYS", "-1", "TRAIN_DAYS"),
        ("TRAIN_DAYS", "abc", "TRAIN_DAYS"),
        ("HORIZON_BARS", "", "HORIZON_BARS"),
        ("TIMEFRAME", "2min", "TIMEFRAME"),
        ("SYMBOLS", "", "SYMBOLS"),
        ("SYMBOLS", "SPY,SPY", "SYMBOLS"),
        ("SYMBOLS", "S P Y!", "SYMBOLS"),
        ("MARKET_DATA", "bloomberg", "MARKET_DATA"),
        ("MARKET_DATA", "tradier", "TRADIER_TOKEN"),
        ("MODEL_STORE", "s3://", "MODEL_STORE"),
        ("ALERT_THRESHOLD", "101", "ALERT_THRESHOLD"),
        ("TELEGRAM_ALLOWED_CHAT_IDS", "12,abc", "TELEGRAM_ALLOWED_CHAT_IDS"),
        ("TRADIER_BASE_URL", "ftp://x", "TRADIER_BASE_URL"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_exit_code_2_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TRAIN_DAYS": "-5", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "models"], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, check=False)
    # cwd is tmp_path, so make the project importable the way the installed script would
    assert proc.returncode in (2,), proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "TRAIN_DAYS" in lines[0] and "Traceback" not in proc.stderr
