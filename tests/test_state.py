"""The bot's SQLite state on real files: migrations, subscriptions, the alert outbox across
crashes, the prediction log, robustness (kill -9, read-only, full, corrupt) and the instance lock."""

from __future__ import annotations

import asyncio
import csv
import ctypes
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.instance_lock import InstanceLock, InstanceLockError
from bot.state import (
    DB_FILENAME,
    SCHEMA_VERSION,
    InvalidStateInput,
    PredictionRow,
    StateDB,
    StateError,
    apply_migrations,
)
from bot.state import schema as schema_module
from core.types import NY
from tests.fakes.outbox import outbox_counts

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=NY)
SESSION = date(2024, 5, 1)


def prediction(i: int = 0, symbol: str = "SPY", as_of: datetime = T0, **over: object) -> dict[str, object]:
    pred: dict[str, object] = {
        "symbol": symbol, "as_of": as_of.isoformat(), "price": 500.0 + i, "vix": 13.2,
        "direction": "long", "quality_score": 84.5, "win_probability": 0.61,
        "predicted_high": 503.0 + i, "predicted_low": 498.5 + i, "target": 502.5 + i, "stop": 498.0 + i,
        "vanna_support": [{"price": 495.0, "strength": 0.8}], "vanna_resistance": [],
        "call_wall": 510.0, "put_wall": 490.0, "zero_gamma": 499.0, "model_version": "v20240501-0600",
        "model_trained_at": "2024-05-01T06:00:00-04:00", "data_source": "simulated", "warnings": [],
    }
    if "naive_as_of" in over:
        pred["as_of"] = over.pop("naive_as_of")
    pred.update(over)
    return pred


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / DB_FILENAME


@pytest.fixture
def db(db_path: Path):
    state = StateDB(db_path)
    yield state
    state.close()


def run_python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,  # type: ignore[call-overload]
    )


# --------------------------------------------------------------------------- schema


def test_new_database_is_created_at_latest_version_in_wal_mode(db: StateDB, db_path: Path) -> None:
    assert db_path.is_file()
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        raw.close()
    assert {"subscriptions", "meta", "alerts", "predictions", "outcomes"} <= tables
    with db.reading() as conn:
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_older_database_is_upgraded_and_keeps_its_rows(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path, isolation_level=None)
    assert apply_migrations(raw, db_path, upto=1) == 1
    raw.execute("INSERT INTO subscriptions VALUES ('telegram:7', 'QQQ', 75, '2024-01-01T00:00:00.000000+00:00')")
    raw.execute(
        "INSERT INTO alerts (setup_key, recipient, symbol, direction, session, quality_score, payload, "
        "created_at) VALUES ('k1', 'telegram:7', 'QQQ', 'short', '2024-01-02', 88, '{}', "
        "'2024-01-02T15:00:00.000000+00:00')"
    )
    raw.close()

    with StateDB(db_path) as db:
        with db.reading() as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [(s.recipient, s.symbol, s.threshold) for s in db.subscriptions()] == [("telegram:7", "QQQ", 75.0)]
        [row] = db.pending_alerts()
        assert (row.setup_key, row.direction, row.prediction_id) == ("k1", "short", None)
        assert db.log_prediction(prediction(), "scan", None, horizon_end=T0 + timedelta(hours=1)) == 1


def test_newer_database_is_refused(db_path: Path) -> None:
    StateDB(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StateError, match=rf"newer than this tradebot understands \({SCHEMA_VERSION}\)"):
        StateDB(db_path)


def test_failed_migration_rolls_back_entirely(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    StateDB(db_path).close()
    broken = "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*schema_module.MIGRATIONS, broken))
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StateError, match="no such table"):
        StateDB(db_path)
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
    finally:
        raw.close()


# --------------------------------------------------------------------------- subscriptions


def test_subscriptions_upsert_list_and_remove(db: StateDB) -> None:
    db.subscribe("telegram:1", "spy", 80)
    db.subscribe("telegram:1", "SPY", 70)  # upsert, not a second row
    db.subscribe("telegram:1", "QQQ", 90)
    db.subscribe("discord:2", "all", 85)
    db.subscribe("console:console", "IWM", 60)

    assert [(s.symbol, s.threshold) for s in db.subscriptions("telegram:1")] == [("QQQ", 90.0), ("SPY", 70.0)]
    assert [s.recipient for s in db.subscriptions(symbol="SPY")] == ["telegram:1"]
    spy = {s.recipient: (s.symbol, s.threshold) for s in db.subscribers("SPY")}
    assert spy == {"telegram:1": ("SPY", 70.0), "discord:2": ("*", 85.0)}
    assert {s.recipient for s in db.subscribers("IWM")} == {"console:console", "discord:2"}

    db.subscribe("discord:2", "QQQ", 95)  # a specific row wins over the recipient's "*"
    assert {s.recipient: s.threshold for s in db.subscribers("QQQ")} == {"telegram:1": 90.0, "discord:2": 95.0}

    assert db.unsubscribe("telegram:1", "SPY") == 1
    assert db.unsubscribe("telegram:1", "SPY") == 0
    assert db.unsubscribe("discord:2", None) == 2
    assert [(s.recipient, s.symbol) for s in db.subscriptions()] == [
        ("console:console", "IWM"), ("telegram:1", "QQQ")]


@pytest.mark.parametrize(
    ("recipient", "symbol", "threshold"),
    [("telegram:1", "SPY", 101), ("telegram:1", "SPY", float("nan")), ("telegram:1", "not a symbol", 50),
     ("nobody", "SPY", 50), ("telegram:", "SPY", 50)],
)
def test_bad_subscription_is_refused_and_changes_nothing(db: StateDB, recipient: str, symbol: str,
                                                          threshold: float) -> None:
    db.subscribe("telegram:1", "SPY", 80)
    with pytest.raises(InvalidStateInput):
        db.subscribe(recipient, symbol, threshold)
    assert [(s.symbol, s.threshold) for s in db.subscriptions()] == [("SPY", 80.0)]


# --------------------------------------------------------------------------- outbox


def record(db: StateDB, key: str = "SPY:2024-05-01:long:10:00", recipient: str = "telegram:1",
           **over: object) -> int | None:
    args: dict[str, object] = dict(
        setup_key=key, recipient=recipient, symbol="SPY", direction="long", session=SESSION,
        quality_score=86.0, payload={"text": "SPY long", "score": 86.0}, created_at=T0,
    )
    args.update(over)
    return db.record_alert(**args)  # type: ignore[arg-type]


def test_same_setup_twice_is_recorded_once_per_recipient(db: StateDB) -> None:
    first = record(db)
    assert isinstance(first, int)
    assert record(db) is None
    assert record(db, created_at=T0 + timedelta(minutes=5)) is None
    other = record(db, recipient="discord:9")
    assert isinstance(other, int) and other != first
    rows = db.pending_alerts()
    assert [(r.id, r.recipient) for r in rows] == [(first, "telegram:1"), (other, "discord:9")]
    assert rows[0].payload == {"text": "SPY long", "score": 86.0}
    assert rows[0].session == SESSION and rows[0].status == "pending" and rows[0].attempts == 0


def test_crash_between_record_and_send_sends_exactly_once(db_path: Path) -> None:
    sent: list[int] = []

    def deliver(state: StateDB) -> None:
        for row in state.pending_alerts():
            assert state.claim_alert(row.id)
            sent.append(row.id)  # the transport call
            assert state.mark_sent(row.id, T0 + timedelta(seconds=1))

    db = StateDB(db_path)
    alert_id = record(db)
    db.close()  # the process dies before sending

    db = StateDB(db_path)
    assert [r.id for r in db.pending_alerts()] == [alert_id]
    deliver(db)
    db.close()

    for _ in range(2):  # later restarts: never again
        db = StateDB(db_path)
        assert db.pending_alerts() == []
        assert record(db) is None  # a rescan of the same setup does not re-queue it
        deliver(db)
        assert db.mark_sent(alert_id, T0) is False
        db.close()
    assert sent == [alert_id]
    with StateDB(db_path) as db:
        row = db.alert(alert_id)
        assert row is not None and row.status == "sent"
        assert row.sent_at == T0 + timedelta(seconds=1)


def test_row_left_in_sending_by_a_dead_process_is_pending_again(db_path: Path) -> None:
    db = StateDB(db_path)
    alert_id = record(db)
    assert db.claim_alert(alert_id)
    assert not db.claim_alert(alert_id)  # a second worker cannot take it
    assert db.pending_alerts() == []
    db.close()  # died mid-send

    with StateDB(db_path, recover_sends=False) as reader:  # a read-only tool leaves it alone
        assert outbox_counts(reader)["sending"] == 1
    with StateDB(db_path) as db:
        assert [r.id for r in db.pending_alerts()] == [alert_id]


def test_failures_retry_later_then_go_dead(db: StateDB) -> None:
    alert_id = record(db)
    assert alert_id is not None
    assert db.mark_failed(alert_id, "429 Too Many Requests", False, retry_at=T0 + timedelta(seconds=30)) == "pending"
    assert db.pending_alerts(now=T0 + timedelta(seconds=10)) == []
    [row] = db.pending_alerts(now=T0 + timedelta(seconds=30))
    assert (row.attempts, row.last_error) == (1, "429 Too Many Requests")

    assert db.mark_failed(alert_id, "timeout", False, max_attempts=3) == "pending"
    assert db.mark_failed(alert_id, "timeout", False, max_attempts=3) == "dead"
    assert db.pending_alerts() == []
    assert db.mark_failed(alert_id, "again", False) is None
    assert db.mark_sent(alert_id, T0) is False

    blocked = record(db, recipient="telegram:2")
    assert blocked is not None
    assert db.mark_failed(blocked, "Forbidden: bot was blocked by the user", True) == "dead"
    assert outbox_counts(db) == {"pending": 0, "sending": 0, "sent": 0, "dead": 2}


def test_last_alert_time_for_cooldown(db: StateDB) -> None:
    assert db.last_alert_time("SPY", "long", SESSION, "telegram:1") is None
    record(db, key="a", created_at=T0)
    second = record(db, key="b", created_at=T0 + timedelta(minutes=40))
    record(db, key="c", created_at=T0 + timedelta(minutes=50), direction="short")
    record(db, key="d", created_at=T0 + timedelta(minutes=55), recipient="telegram:2")
    assert db.last_alert_time("SPY", "long", SESSION, "telegram:1") == T0 + timedelta(minutes=40)
    assert second is not None
    db.mark_failed(second, "gone", True)  # a dead alert did not reach anyone
    assert db.last_alert_time("SPY", "long", SESSION, "telegram:1") == T0
    assert db.last_alert_time("SPY", "long", date(2024, 5, 2), "telegram:1") is None


def test_sent_alert_marks_its_prediction_alerted(db: StateDB) -> None:
    pid = db.log_prediction(prediction(), "scan", None, horizon_end=T0 + timedelta(hours=1))
    alert_id = record(db, prediction_id=pid)
    assert alert_id is not None
    assert db.prediction(pid).alerted is False  # type: ignore[union-attr]
    db.mark_sent(alert_id, T0)
    assert db.prediction(pid).alerted is True  # type: ignore[union-attr]
    with pytest.raises(InvalidStateInput, match="no logged prediction"):
        record(db, key="other", prediction_id=999)


def test_bad_alert_input_changes_nothing(db: StateDB) -> None:
    with pytest.raises(InvalidStateInput):
        record(db, direction="sideways")
    with pytest.raises(InvalidStateInput, match="no timezone"):
        record(db, created_at=datetime(2024, 5, 1, 10, 0))
    circular: dict[str, object] = {}
    circular["self"] = circular
    with pytest.raises(InvalidStateInput, match="JSON"):
        record(db, payload=circular)
    assert db.pending_alerts() == []


# --------------------------------------------------------------------------- prediction log


def test_prediction_log_outcomes_and_unscored(db: StateDB) -> None:
    ids = [
        db.log_prediction(prediction(i, as_of=T0 + timedelta(minutes=5 * i)), "command", "telegram:1",
                          horizon_end=T0 + timedelta(minutes=5 * i + 60), alerted=(i == 1))
        for i in range(3)
    ]
    # horizon_end may also travel inside the dict
    ids.append(db.log_prediction(prediction(3, as_of=T0 + timedelta(minutes=20), horizon_end=(T0 + timedelta(hours=2)).isoformat()), "scan", None))

    due = db.unscored_predictions(before=T0 + timedelta(minutes=65))
    assert [p.id for p in due] == ids[:2]
    first = due[0]
    assert first.as_of == T0 and first.price == 500.0 and first.vix == 13.2 and first.symbol == "SPY"
    assert (first.source, first.requested_by, first.alerted, first.scored) == ("command", "telegram:1", False, False)
    assert due[1].alerted is True

    assert db.record_outcome(ids[0], 503.2, 499.1, "target", 1.0, scored_at=T0 + timedelta(hours=2), bars=12)
    assert not db.record_outcome(ids[0], 1.0, 1.0, "stop", -1.0, scored_at=T0 + timedelta(hours=3))
    with pytest.raises(InvalidStateInput, match="no logged prediction"):
        db.record_outcome(999, 1.0, 1.0, "stop", -1.0, scored_at=T0)
    with pytest.raises(InvalidStateInput):
        db.record_outcome(ids[1], 1.0, 1.0, "maybe", -1.0, scored_at=T0)

    assert [p.id for p in db.unscored_predictions(before=T0 + timedelta(hours=5))] == ids[1:]
    recent = db.recent_predictions(3)
    assert [p.id for p in recent] == ids[:0:-1]
    scored = db.prediction(ids[0])
    assert scored is not None
    assert (scored.realised_high, scored.realised_low, scored.first_hit, scored.outcome_r, scored.bars) == (
        503.2, 499.1, "target", 1.0, 12)
    assert db.recent_predictions(10)[-1] == scored


@pytest.mark.parametrize(
    ("pred", "horizon"),
    [(prediction(direction="up"), T0), (prediction(win_probability=1.5), T0),
     (prediction(price="abc"), T0), ({"symbol": "SPY"}, T0), (prediction(), None),
     (prediction(), T0 - timedelta(minutes=5)), (prediction(naive_as_of="2024-05-01T10:00:00"), T0)],
)
def test_bad_prediction_is_refused(db: StateDB, pred: dict[str, object], horizon: datetime | None) -> None:
    with pytest.raises(InvalidStateInput):
        db.log_prediction(pred, "scan", None, horizon_end=horizon)
    assert db.recent_predictions(5) == []


def test_export_csv_round_trip(db: StateDB, tmp_path: Path) -> None:
    for i in range(3):
        db.log_prediction(prediction(i, as_of=T0 + timedelta(minutes=5 * i)), "command",
                          "=HYPERLINK(\"x\")" if i == 2 else f"telegram:{i}",
                          horizon_end=T0 + timedelta(minutes=5 * i + 60))
    db.record_outcome(1, 503.2, 499.1, "stop", -1.0, scored_at=T0 + timedelta(hours=2), bars=12)

    out = tmp_path / "exports" / "log.csv"
    assert db.export_log_csv(out) == 3
    assert sorted(p.name for p in out.parent.iterdir()) == ["log.csv"]  # no temp file left behind
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    by_db = {p.id: p for p in db.all_predictions()}
    for row in rows:
        want = by_db[int(row["id"])]
        assert datetime.fromisoformat(row["as_of"]) == want.as_of
        assert datetime.fromisoformat(row["horizon_end"]) == want.horizon_end
        for col in ("price", "predicted_high", "predicted_low", "target", "stop", "win_probability"):
            assert float(row[col]) == getattr(want, col)
        assert row["symbol"] == want.symbol and row["model_version"] == want.model_version
    assert (rows[0]["first_hit"], float(rows[0]["outcome_r"]), rows[0]["bars"]) == ("stop", -1.0, "12")
    assert rows[1]["first_hit"] == "" and rows[1]["scored_at"] == ""
    assert rows[2]["requested_by"] == "'=HYPERLINK(\"x\")"  # stays text in a spreadsheet

    assert db.export_log_csv(out) == 3  # replaces the file atomically


async def test_many_threads_share_one_database(db: StateDB) -> None:
    async def one(i: int) -> int:
        return await asyncio.to_thread(
            db.log_prediction, prediction(i), "scan", None, horizon_end=T0 + timedelta(hours=1))

    ids = await asyncio.gather(*(one(i) for i in range(40)))
    assert sorted(ids) == list(range(1, 41))
    assert len(db.recent_predictions(100)) == 40


# --------------------------------------------------------------------------- robustness

_WRITER = """
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from bot.state import StateDB

db = StateDB(Path(sys.argv[1]))
t0 = datetime(2024, 5, 1, 14, 0, tzinfo=timezone.utc)
i = 0
while True:
    pred = {"symbol": "SPY", "as_of": t0.isoformat(), "price": 500.0, "direction": "long",
            "quality_score": 85.0, "win_probability": 0.6, "predicted_high": 502.0, "predicted_low": 499.0,
            "target": 502.0, "stop": 499.0, "model_version": "v1", "data_source": "simulated",
            "pad": "x" * 4000}
    pid = db.log_prediction(pred, "scan", None, horizon_end=t0 + timedelta(hours=1))
    db.record_alert(f"k{i}", "telegram:1", "SPY", "long", date(2024, 5, 1), 85.0, {"pad": "y" * 4000},
                    t0, prediction_id=pid)
    if i == 0:
        print("ready", flush=True)
    i += 1
"""


def test_kill_9_during_writes_reopens_cleanly(db_path: Path) -> None:
    proc = run_python(_WRITER, str(db_path))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        time.sleep(0.4)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with StateDB(db_path) as db:
        assert db.integrity_check() == "ok"
        n = len(db.recent_predictions(100_000))
        assert n >= 1
        # every committed alert belongs to a committed prediction; nothing half-written
        alerts = db.pending_alerts()
        assert len(alerts) in (n, n - 1)
        assert all(a.prediction_id is not None and a.prediction_id <= n for a in alerts)
        db.log_prediction(prediction(), "scan", None, horizon_end=T0 + timedelta(hours=1))


def _drop_file_permission_override() -> None:
    """Run as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so file modes apply to us."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # PR_CAPBSET_DROP = 24: dropped from what the exec'd program can have
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _open_without_write_permission(db_file: Path) -> str:
    """Open StateDB as a process that file permissions apply to; return its StateError message."""
    code = (
        "import sys\nfrom pathlib import Path\nfrom bot.state import StateDB, StateError\n"
        "try:\n    StateDB(Path(sys.argv[1]))\nexcept StateError as exc:\n    print(exc)\n    sys.exit(3)\n"
    )
    kwargs: dict[str, object] = {}
    if os.geteuid() == 0:
        kwargs["preexec_fn"] = _drop_file_permission_override
    proc = run_python(code, str(db_file), **kwargs)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    return out.strip()


def test_read_only_folder_gives_a_clear_error(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    existing = tmp_path / "existing"
    StateDB(existing / DB_FILENAME).close()
    for folder in (fresh, existing):
        folder.chmod(0o555)
    try:
        assert _open_without_write_permission(fresh / DB_FILENAME) == (
            f"cannot write state under {fresh}/: Permission denied")
        assert _open_without_write_permission(existing / DB_FILENAME) == (
            f"cannot write state under {existing}/: Permission denied")
    finally:
        for folder in (fresh, existing):
            folder.chmod(0o755)


def test_read_only_database_file_gives_a_clear_error(db_path: Path) -> None:
    StateDB(db_path).close()
    for p in db_path.parent.iterdir():
        p.chmod(0o444)
    message = _open_without_write_permission(db_path)
    assert message.startswith(f"cannot write state under {db_path.parent}/:"), message


def test_full_disk_gives_a_clear_error_and_keeps_the_database(db: StateDB, db_path: Path) -> None:
    with db.reading() as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 4}")  # what a full disk looks like to SQLite
    written = 0
    with pytest.raises(StateError) as err:
        for i in range(200):
            db.log_prediction(prediction(i, pad="z" * 3000), "scan", None, horizon_end=T0 + timedelta(hours=1))
            written += 1
    assert str(err.value) == f"cannot write state under {db_path.parent}/: No space left on device"
    assert 0 < written < 200
    assert len(db.recent_predictions(1000)) == written  # the failed write left nothing behind
    assert db.integrity_check() == "ok"


def test_corrupt_file_gives_a_clear_error_naming_it(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StateError, match=rf"state database {db_path} is corrupt or not a SQLite file"):
        StateDB(db_path)
    assert db_path.read_bytes().startswith(b"this is not")  # left as it was, for forensics


def test_damaged_pages_give_a_clear_error(db_path: Path) -> None:
    with StateDB(db_path) as db:
        for i in range(60):
            db.log_prediction(prediction(i, pad="p" * 2000), "scan", None, horizon_end=T0 + timedelta(hours=1))
    data = bytearray(db_path.read_bytes())
    page = 4096
    assert len(data) > 10 * page
    data[5 * page: 8 * page] = os.urandom(3 * page)
    db_path.write_bytes(bytes(data))
    with pytest.raises(StateError, match=rf"state database {db_path} is corrupt"):
        StateDB(db_path)


def test_closed_database_refuses_calls(db_path: Path) -> None:
    db = StateDB(db_path)
    db.close()
    db.close()
    with pytest.raises(StateError, match="is closed"):
        db.subscriptions()


# --------------------------------------------------------------------------- instance lock

_HOLDER = """
import sys, time
from pathlib import Path
from bot.instance_lock import InstanceLock
with InstanceLock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""

_TRY_LOCK = """
import sys
from pathlib import Path
from bot.instance_lock import InstanceLock, InstanceLockError
try:
    with InstanceLock(Path(sys.argv[1])):
        print("acquired")
except InstanceLockError as exc:
    print(exc)
    sys.exit(3)
"""


def test_second_instance_is_refused_until_the_first_is_killed(tmp_path: Path) -> None:
    state_dir = tmp_path / "var"
    holder = run_python(_HOLDER, str(state_dir))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(InstanceLockError) as err:
            InstanceLock(state_dir).acquire()
        assert str(err.value) == f"another tradebot is already running with STATE_DIR={state_dir} (pid {holder.pid})"

        other = run_python(_TRY_LOCK, str(state_dir))
        out, _ = other.communicate(timeout=30)
        assert other.returncode == 3 and f"(pid {holder.pid})" in out
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)

    with InstanceLock(state_dir) as lock:  # kill -9 left no stale lock
        assert lock.held
        other = run_python(_TRY_LOCK, str(state_dir))
        out, _ = other.communicate(timeout=30)
        assert other.returncode == 3 and f"(pid {os.getpid()})" in out
    assert not lock.held
    with InstanceLock(state_dir):
        pass


def test_lock_in_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InstanceLockError, match="cannot create the lock file"):
        InstanceLock(blocker / "var").acquire()


def test_prediction_row_is_plain_data() -> None:
    row = PredictionRow(
        id=1, symbol="SPY", as_of=T0, price=1.0, vix=None, direction="long", quality_score=1.0,
        win_probability=0.5, predicted_high=2.0, predicted_low=0.5, target=2.0, stop=0.5,
        model_version="v", data_source="csv", horizon_end=T0, source="scan", requested_by=None,
        alerted=False, logged_at=T0.astimezone(UTC),
    )
    assert row.to_dict()["logged_at"] == T0.isoformat()
    assert row.session == SESSION and not row.scored
