"""The prediction log as a CSV file for spreadsheets."""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from bot.state.errors import StateError
from bot.state.rows import NY, PredictionRow

CSV_COLUMNS = (
    "id", "symbol", "as_of", "price", "vix", "direction", "quality_score", "win_probability",
    "predicted_high", "predicted_low", "target", "stop", "model_version", "data_source", "horizon_end",
    "source", "requested_by", "alerted", "logged_at", "realised_high", "realised_low", "first_hit",
    "outcome_r", "bars", "scored_at",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.astimezone(NY).isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        # A user name such as "=HYPERLINK(...)" must stay text when a spreadsheet opens the file.
        return "'" + value
    return value


def write_predictions_csv(rows: Iterable[PredictionRow], path: Path) -> int:
    """Write to a temp file in the same folder, then rename, so a reader never sees half a file."""
    count = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            for row in rows:
                writer.writerow([_cell(getattr(row, col)) for col in CSV_COLUMNS])
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from None
    return count
