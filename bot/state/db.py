"""`StateDB`: the bot's one SQLite file (subscriptions, alert outbox, prediction log)."""

from __future__ import annotations

from pathlib import Path

from bot.state.outbox import OutboxMixin
from bot.state.predictions import PredictionLogMixin
from bot.state.subscriptions import SubscriptionsMixin

DB_FILENAME = "tradebot.sqlite3"


class StateDB(SubscriptionsMixin, OutboxMixin, PredictionLogMixin):
    """Open (creating or upgrading) the state database at `path`.

    SQLite in WAL mode, synchronous=FULL, foreign keys on; one connection shared by all threads
    behind a lock, so every method may be called directly or via asyncio.to_thread. Every method
    is one short transaction. Failures raise `StateError` (one line, names the file or folder);
    bad arguments raise `InvalidStateInput` and change nothing.

    recover_sends: put alerts a killed process left in 'sending' back to 'pending'. Only the
    process holding the InstanceLock should do this; a read-only tool passes False.
    """

    def __init__(self, path: Path, *, recover_sends: bool = True) -> None:
        super().__init__(Path(path))
        if recover_sends:
            self.recover_interrupted_sends()

    def __enter__(self) -> StateDB:
        return self
