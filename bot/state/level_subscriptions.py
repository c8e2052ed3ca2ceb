"""Who wants level alerts (a bar closing across a wall or zero gamma) for which symbol."""

from __future__ import annotations

from datetime import datetime

from bot.state.connection import StateConnection
from bot.state.rows import to_db_time
from bot.state.subscriptions import ALL_SYMBOLS, check_recipient, normalise_symbol
from core.clock import wall_clock


class LevelSubscriptionsMixin(StateConnection):
    def subscribe_levels(self, recipient: str, symbol: str, now: datetime | None = None, *,
                         guild_id: str | None = None) -> None:
        """Add (or refresh) a level-alert subscription; symbol "all" or "*" means every traded symbol."""
        recipient, symbol = check_recipient(recipient), normalise_symbol(symbol)
        created = to_db_time(now or wall_clock(), "now")
        with self.writing() as conn:
            conn.execute(
                "INSERT INTO level_subscriptions (recipient, symbol, guild_id, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (recipient, symbol) DO UPDATE SET guild_id = excluded.guild_id",
                (recipient, symbol, guild_id, created))

    def unsubscribe_levels(self, recipient: str, symbol: str | None) -> int:
        """Remove one level subscription (symbol; "all" is the '*' row) or every one of the recipient's
        (None); return how many."""
        recipient = check_recipient(recipient)
        with self.writing() as conn:
            if symbol is None:
                return conn.execute("DELETE FROM level_subscriptions WHERE recipient = ?", (recipient,)).rowcount
            return conn.execute("DELETE FROM level_subscriptions WHERE recipient = ? AND symbol = ?",
                                (recipient, normalise_symbol(symbol))).rowcount

    def level_subscriptions(self, recipient: str) -> list[str]:
        """The recipient's level-alert symbols as stored ('*' not expanded), sorted."""
        with self.reading() as conn:
            rows = conn.execute("SELECT symbol FROM level_subscriptions WHERE recipient = ? ORDER BY symbol",
                                (check_recipient(recipient),)).fetchall()
        return [r["symbol"] for r in rows]

    def level_subscribers(self, symbol: str) -> list[str]:
        """Each recipient who wants level alerts for `symbol` (by its row or a '*' row), once, sorted."""
        symbol = normalise_symbol(symbol, allow_all=False)
        with self.reading() as conn:
            rows = conn.execute("SELECT DISTINCT recipient FROM level_subscriptions WHERE symbol IN (?, ?) "
                                "ORDER BY recipient", (symbol, ALL_SYMBOLS)).fetchall()
        return [r["recipient"] for r in rows]

    def level_recipient_guild(self, recipient: str) -> str | None:
        """The Discord guild stored with any of the recipient's level subscriptions."""
        with self.reading() as conn:
            r = conn.execute("SELECT guild_id FROM level_subscriptions WHERE recipient = ? AND guild_id IS NOT NULL "
                             "LIMIT 1", (check_recipient(recipient),)).fetchone()
        return None if r is None else str(r["guild_id"])
