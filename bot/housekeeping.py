"""Disk hygiene for a process that runs for months: every /predict and alert writes a PNG."""

from __future__ import annotations

from pathlib import Path

from core.clock import wall_time


def delete_old_files(folder: Path, max_age_days: float, *, pattern: str = "*.png",
                     now: float | None = None) -> int:
    """Delete files matching `pattern` under `folder` (recursively) older than `max_age_days`."""
    if not folder.is_dir():
        return 0
    cutoff = (now if now is not None else wall_time()) - max_age_days * 86400.0
    removed = 0
    for path in folder.rglob(pattern):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue  # a file vanishing or a permission problem must not stop the rest
    return removed
