"""`StateDB`: the bot's one SQLite file (subscriptions, alert outbox, prediction log, levels snapshots,
per-chat notification settings)."""

from __future__ import annotations

from pathlib import Path

from bot.state.chat_settings import ChatSettingsMixin
from bot.state.digests import DigestsMixin
from bot.state.level_snapshots import LevelSnapshotsMixin
from bot.state.level_subscriptions import LevelSubscriptionsMixin
from bot.state.outbox import OutboxMixin
from bot.state.predictions import PredictionLogMixin
from bot.state.subscriptions import SubscriptionsMixin

DB_FILENAME = "tradebot.sqlite3"


class StateDB(SubscriptionsMixin, OutboxMixin, PredictionLogMixin, LevelSnapshotsMixin, DigestsMixin,
              ChatSettingsMixin, LevelSubscriptionsMixin):
    """Open (creating or upgrading) the state database at `path`.

    SQLite in WAL mode, synchronous=FULL, foreign keys on; one connection shared by all threads
    behind a lock, so every method may be called directly or via asyncio.to_thread. Every method
    is one short transaction. Failures raise `StateError` (one line, names the file or folder);
    bad arguments raise `InvalidStateInput` and change nothing.

    recover_sends: put alerts a killed process left in 'sending' back to 'pending'. Only the
    process holding the InstanceLock should do this; a tool beside a running bot passes False.

    read_only: a reader (performance, export-log): never writes, migrates or recovers anything.
    """

    def __init__(self, path: Path, *, recover_sends: bool = True, read_only: bool = False) -> None:
        super().__init__(Path(path), read_only=read_only)
        if recover_sends and not read_only:
            self.recover_interrupted_sends()

    def __enter__(self) -> StateDB:
        return self
