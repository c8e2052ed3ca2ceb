"""Errors of the state database, and the one place that turns sqlite3/OS errors into them."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path


class StateError(Exception):
    """The state database cannot be used (disk full, read-only, corrupt, too new).

    The message is one short line, safe to log and to show to an admin."""


class InvalidStateInput(StateError, ValueError):
    """A caller passed a value the state database will not store; nothing was changed."""


# SQLite primary result codes (the low byte of the extended code).
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


def dir_label(path: Path) -> str:
    """How a state folder is named in messages: as configured, with a trailing slash ("var/")."""
    text = str(path)
    return text if text.endswith("/") else text + "/"


def cannot_write(state_dir: Path, reason: str) -> StateError:
    return StateError(f"cannot write state under {dir_label(state_dir)}: {reason}")


def corrupt(db_path: Path, detail: str) -> StateError:
    return StateError(
        f"state database {db_path} is corrupt or not a SQLite file ({detail}); "
        "move it aside to start with an empty state"
    )


def translate(exc: sqlite3.Error, db_path: Path) -> StateError:
    """Map a sqlite3 error to a StateError whose message says what the operator can do."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    state_dir = db_path.parent
    if code == _SQLITE_FULL:
        return cannot_write(state_dir, os.strerror(errno.ENOSPC))
    if code == _SQLITE_READONLY:
        return cannot_write(state_dir, "the database or its folder is read-only")
    if code == _SQLITE_CANTOPEN:
        return cannot_write(state_dir, f"cannot open {db_path.name}")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return corrupt(db_path, str(exc))
    if code == _SQLITE_IOERR:
        # a file-size limit or a full disk mid-write often surfaces as a bare "disk I/O error"
        detail = "" if str(exc) == "disk I/O error" else f" ({exc})"
        return cannot_write(state_dir, f"disk I/O error{detail}: is the disk full or failing?")
    return StateError(f"state database {db_path}: {exc}")
