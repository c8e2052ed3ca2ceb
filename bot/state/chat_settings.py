"""Per-chat notification settings (/settings): for each alert kind, on, silent or off."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from bot.state.connection import StateConnection
from bot.state.errors import InvalidStateInput
from bot.state.rows import to_db_time
from bot.state.subscriptions import check_recipient
from core.clock import wall_clock

AlertKind = Literal["score", "level", "digest"]
Mode = Literal["on", "silent", "off"]
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)
MODES: tuple[str, ...] = get_args(Mode)
DEFAULT_MODE: Mode = "on"


def check_kind(kind: str) -> str:
    if kind not in ALERT_KINDS:
        raise InvalidStateInput(f"alert kind {kind!r} is not one of {', '.join(ALERT_KINDS)}")
    return kind


class ChatSettingsMixin(StateConnection):
    def chat_setting(self, recipient: str, kind: str) -> str:
        """How `recipient` receives alerts of `kind`: 'on' (the default), 'silent' or 'off'."""
        recipient, kind = check_recipient(recipient), check_kind(kind)
        with self.reading() as conn:
            row = conn.execute("SELECT mode FROM chat_settings WHERE recipient = ? AND kind = ?",
                               (recipient, kind)).fetchone()
        return str(row["mode"]) if row is not None else DEFAULT_MODE

    def chat_settings(self, recipient: str) -> dict[str, str]:
        """Every kind's mode for `recipient`, in ALERT_KINDS order."""
        recipient = check_recipient(recipient)
        with self.reading() as conn:
            rows = conn.execute("SELECT kind, mode FROM chat_settings WHERE recipient = ?",
                                (recipient,)).fetchall()
        stored = {r["kind"]: r["mode"] for r in rows}
        return {kind: str(stored.get(kind, DEFAULT_MODE)) for kind in ALERT_KINDS}

    def set_chat_setting(self, recipient: str, kind: str, mode: str, now: datetime | None = None) -> None:
        recipient, kind = check_recipient(recipient), check_kind(kind)
        if mode not in MODES:
            raise InvalidStateInput(f"mode {mode!r} is not one of {', '.join(MODES)}")
        updated = to_db_time(now or wall_clock(), "now")
        with self.writing() as conn:
            conn.execute(
                "INSERT INTO chat_settings (recipient, kind, mode, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (recipient, kind) DO UPDATE SET mode = excluded.mode, updated_at = excluded.updated_at",
                (recipient, kind, mode, updated))
