"""Small key/value bookkeeping for the scheduler (last_reload_version, last_scan_at, ...)."""

from __future__ import annotations

from bot.state.connection import StateConnection
from bot.state.errors import InvalidStateInput
from bot.state.rows import to_db_time
from core.clock import wall_clock


class MetaMixin(StateConnection):
    def get_meta(self, key: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not key or len(key) > 200:
            raise InvalidStateInput("meta key must be a non-empty string of at most 200 characters")
        if not isinstance(value, str):
            raise InvalidStateInput(f"meta value for {key!r} must be a string")
        with self.writing() as conn:
            conn.execute(
                "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, to_db_time(wall_clock(), "now")),
            )
