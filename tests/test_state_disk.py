"""The state on disk: private permissions, and a prediction log bounded by PREDICTION_LOG_DAYS
(issue 9, disk)."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

from bot.state import StateDB
from core.types import NY
from tests.fakes.outbox import outbox_counts
from tests.test_state import prediction

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=NY)


def test_state_folder_is_0700_and_its_files_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, under which SQLite alone makes a 0644 file
    try:
        folder = tmp_path / "state"
        with StateDB(folder / "tradebot.sqlite3") as db:
            db.subscribe("telegram:1", "SPY", 50)
            files = [p for p in folder.iterdir() if p.name.startswith("tradebot.sqlite3")]
            assert {p.name for p in files} >= {"tradebot.sqlite3", "tradebot.sqlite3-wal"}
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert set(modes.values()) == {0o600}, modes
    finally:
        os.umask(old)


def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "tradebot.sqlite3"
    StateDB(path).close()
    os.chmod(path, 0o644)
    StateDB(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_prune_keeps_the_window_whole_and_drops_what_is_older(tmp_path: Path) -> None:
    with StateDB(tmp_path / "tradebot.sqlite3") as db:
        ids = {}
        for days_ago in (400, 366, 364, 10):
            as_of = T0 - timedelta(days=days_ago)
            pid = db.log_prediction(prediction(days_ago, as_of=as_of), "scan", None,
                                    horizon_end=as_of + timedelta(hours=1))
            db.record_outcome(pid, 1.0, 0.5, "target", 1.0, as_of + timedelta(hours=2), bars=12)
            alert = db.record_alert(f"SPY|long|{days_ago}", "telegram:1", "SPY", "long", as_of.date(), 90.0,
                                    {"text": "x"}, as_of, prediction_id=pid)
            db.mark_sent(alert, as_of)
            ids[days_ago] = pid
        pending_old = db.record_alert("SPY|long|old-pending", "telegram:2", "SPY", "long",
                                      (T0 - timedelta(days=400)).date(), 90.0, {"text": "x"}, T0)
        assert db.prune_predictions(T0 - timedelta(days=365)) == 2
        kept = db.all_predictions()
        assert [r.id for r in kept] == [ids[364], ids[10]]
        assert all(r.first_hit == "target" for r in kept)  # outcomes inside the window stay
        assert outbox_counts(db).get("sent") == 2 and outbox_counts(db).get("pending") == 1
        assert any(r.id == pending_old for r in db.pending_alerts())
        assert db.prune_predictions(T0 - timedelta(days=365)) == 0  # idempotent
