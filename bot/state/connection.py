"""Opening the SQLite file safely and running short transactions on it from any thread."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from bot.state.errors import StateError, cannot_write, corrupt, translate
from bot.state.schema import apply_migrations

BUSY_TIMEOUT_MS = 5000


def ensure_writable_dir(state_dir: Path) -> None:
    """Create the folder and prove a file can be written there, so a read-only or full disk is
    reported once, with the OS's own reason, instead of as a vague SQLite error later."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private(state_dir)
        probe = state_dir / f".write-probe-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                probe.unlink()
    except OSError as exc:
        raise cannot_write(state_dir, exc.strerror or str(exc)) from None


def _private(path: Path) -> None:
    """Take group and other bits off a folder or file we own (chat ids live in the state); never adds
    a bit, so a read-only folder stays read-only."""
    with contextlib.suppress(OSError):
        st = path.stat()
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.chmod(path, st.st_mode & 0o700)


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask, typically 0644);
    SQLite gives the -wal and -shm files the database file's permissions."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if existing.exists():
            _private(existing)


class StateConnection:
    """One connection shared by every thread, serialised by a lock; all calls are short."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = self._open_read_only() if read_only else self._open()

    def _open_read_only(self) -> sqlite3.Connection:
        """For readers beside a running bot: no migration, no recovery, no file created. A state
        that does not exist yet reads as an empty one (in memory)."""
        if not self.path.exists():
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            apply_migrations(conn, self.path)
            return conn
        if not self.path.is_file():
            raise StateError(f"state database {self.path} is not a file")
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                   timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails now if not a database
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from None
        return conn

    def _open(self) -> sqlite3.Connection:
        ensure_writable_dir(self.path.parent)
        if self.path.exists() and not self.path.is_file():
            raise StateError(f"state database {self.path} is not a file")
        try:
            _create_private(self.path)
        except OSError as exc:
            raise cannot_write(self.path.parent, exc.strerror or str(exc)) from None
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from None
        try:
            conn.row_factory = sqlite3.Row
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateError(f"state database {self.path}: the filesystem does not support WAL mode")
            # FULL: a COMMIT (e.g. an alert marked sent) survives a power cut, not just a crash.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise corrupt(self.path, str(verdict))
            apply_migrations(conn, self.path)
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc, self.path) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> StateConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _use(self, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise StateError(f"state database {self.path} is closed")
            conn = self._conn
            if write and self.read_only:
                raise StateError(f"state database {self.path} is open read-only")
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    if write:
                        conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from None

    def reading(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._use(write=False)

    def writing(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed on normal exit, rolled back on any exception."""
        return self._use(write=True)

    def integrity_check(self) -> str:
        with self.reading() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
