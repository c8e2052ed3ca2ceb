"""The bot's SQLite state. See `StateDB`; the outbox delivery rules are in `bot.state.outbox`."""

from bot.state.db import DB_FILENAME, StateDB
from bot.state.errors import InvalidStateInput, StateError
from bot.state.outbox import DEFAULT_MAX_ATTEMPTS
from bot.state.rows import OutboxRow, PredictionRow, Subscription
from bot.state.schema import MIGRATIONS, SCHEMA_VERSION, apply_migrations
from bot.state.subscriptions import ALL_SYMBOLS

__all__ = [
    "ALL_SYMBOLS", "DB_FILENAME", "DEFAULT_MAX_ATTEMPTS", "MIGRATIONS", "SCHEMA_VERSION", "InvalidStateInput",
    "OutboxRow", "PredictionRow", "StateDB", "StateError", "Subscription", "apply_migrations",
]
