"""Who wants alerts for which symbol, above which quality score."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime

from bot.state.connection import StateConnection
from bot.state.errors import InvalidStateInput
from bot.state.rows import Subscription, finite, from_db_time, to_db_time
from config.settings import SYMBOL_RE
from core.clock import wall_clock

ALL_SYMBOLS = "*"
_RECIPIENT_RE = re.compile(r"^[a-z]+:\S{1,100}$")


def check_recipient(recipient: str) -> str:
    if not isinstance(recipient, str) or not _RECIPIENT_RE.match(recipient):
        raise InvalidStateInput(f"recipient {recipient!r} is not like 'telegram:12345'")
    return recipient


def normalise_symbol(symbol: str, *, allow_all: bool = True) -> str:
    text = str(symbol).strip().upper()
    if allow_all and text in (ALL_SYMBOLS, "ALL"):
        return ALL_SYMBOLS
    if not SYMBOL_RE.match(text):
        raise InvalidStateInput(f"{symbol!r} is not a ticker symbol")
    return text


def _row(r: sqlite3.Row) -> Subscription:
    created = from_db_time(r["created_at"])
    assert created is not None
    return Subscription(r["recipient"], r["symbol"], float(r["threshold"]), created)


class SubscriptionsMixin(StateConnection):
    def subscribe(self, recipient: str, symbol: str, threshold: float,
                  now: datetime | None = None, *, guild_id: str | None = None) -> Subscription:
        """Add or update (upsert) a subscription. symbol "all" or "*" means every traded symbol.
        guild_id: the Discord guild of the channel (None elsewhere)."""
        recipient = check_recipient(recipient)
        symbol = normalise_symbol(symbol)
        value = finite(threshold, "threshold")
        assert value is not None
        if not 0 <= value <= 100:
            raise InvalidStateInput(f"threshold {threshold} is not between 0 and 100")
        created = to_db_time(now or wall_clock(), "now")
        with self.writing() as conn:
            conn.execute(
                "INSERT INTO subscriptions (recipient, symbol, threshold, created_at, guild_id) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (recipient, symbol) DO UPDATE SET "
                "threshold = excluded.threshold, guild_id = excluded.guild_id",
                (recipient, symbol, value, created, guild_id),
            )
            row = conn.execute(
                "SELECT * FROM subscriptions WHERE recipient = ? AND symbol = ?", (recipient, symbol)
            ).fetchone()
        return _row(row)

    def unsubscribe(self, recipient: str, symbol: str | None) -> int:
        """Remove one subscription (symbol) or all of the recipient's (None); return how many."""
        recipient = check_recipient(recipient)
        with self.writing() as conn:
            if symbol is None:
                cur = conn.execute("DELETE FROM subscriptions WHERE recipient = ?", (recipient,))
            else:
                cur = conn.execute(
                    "DELETE FROM subscriptions WHERE recipient = ? AND symbol = ?",
                    (recipient, normalise_symbol(symbol)),
                )
            return cur.rowcount

    def recipient_guild(self, recipient: str) -> tuple[bool, str | None]:
        """(has subscriptions, their Discord guild or None when not stored yet)."""
        with self.reading() as conn:
            rows = conn.execute("SELECT guild_id FROM subscriptions WHERE recipient = ?",
                                (check_recipient(recipient),)).fetchall()
        guilds = [r["guild_id"] for r in rows if r["guild_id"] is not None]
        return bool(rows), (guilds[0] if guilds else None)

    def set_recipient_guild(self, recipient: str, guild_id: str) -> int:
        """Store the guild on every subscription of `recipient` (a row from before schema 4)."""
        with self.writing() as conn:
            return conn.execute("UPDATE subscriptions SET guild_id = ? WHERE recipient = ?",
                                (str(guild_id), check_recipient(recipient))).rowcount

    def subscriptions(self, recipient: str | None = None, symbol: str | None = None) -> list[Subscription]:
        """Stored rows as they are ("*" rows are not expanded), ordered by recipient, symbol."""
        where, args = [], []
        if recipient is not None:
            where.append("recipient = ?")
            args.append(check_recipient(recipient))
        if symbol is not None:
            where.append("symbol = ?")
            args.append(normalise_symbol(symbol))
        sql = "SELECT * FROM subscriptions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.reading() as conn:
            rows = conn.execute(sql + " ORDER BY recipient, symbol", args).fetchall()
        return [_row(r) for r in rows]

    def subscribers(self, symbol: str) -> list[Subscription]:
        """One subscription per recipient who wants alerts for `symbol`: their row for that symbol,
        else their "*" row (so nobody gets the same alert twice)."""
        symbol = normalise_symbol(symbol, allow_all=False)
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT * FROM subscriptions WHERE symbol IN (?, ?) "
                "ORDER BY recipient, symbol = ? ",  # the specific row sorts before '*'
                (symbol, ALL_SYMBOLS, ALL_SYMBOLS),
            ).fetchall()
        out: dict[str, Subscription] = {}
        for r in rows:
            out.setdefault(r["recipient"], _row(r))
        return list(out.values())
