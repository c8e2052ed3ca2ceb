"""Who gets the pre-open brief and the close recap, and the day's delivered alerts the digests report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from bot.state.connection import StateConnection
from bot.state.rows import to_db_date, to_db_time
from bot.state.subscriptions import check_recipient
from core.clock import wall_clock

DIGEST_SETUP_PREFIX = "digest|"  # outbox setup keys of digests: never reported as alerts


@dataclass(frozen=True)
class DeliveredAlert:
    symbol: str
    kind: str  # 'score' or 'level' (outbox kind)
    direction: str | None  # None on a level alert
    quality_score: float | None  # None: a level alert sent without a prediction
    title: str
    created_at: str
    first_hit: str | None  # 'target', 'stop', 'none'; None: not scored yet
    outcome_r: float | None


class DigestsMixin(StateConnection):
    def subscribe_digest(self, recipient: str, now: datetime | None = None, *,
                         guild_id: str | None = None) -> bool:
        """Add the chat to the digests; False when it was already there (its guild is refreshed)."""
        recipient = check_recipient(recipient)
        created = to_db_time(now or wall_clock(), "now")
        with self.writing() as conn:
            cur = conn.execute("INSERT INTO digest_subscriptions (recipient, guild_id, created_at) VALUES (?, ?, ?) "
                               "ON CONFLICT (recipient) DO NOTHING", (recipient, guild_id, created))
            if cur.rowcount == 0:
                conn.execute("UPDATE digest_subscriptions SET guild_id = ? WHERE recipient = ?",
                             (guild_id, recipient))
            return cur.rowcount == 1

    def unsubscribe_digest(self, recipient: str) -> bool:
        with self.writing() as conn:
            return conn.execute("DELETE FROM digest_subscriptions WHERE recipient = ?",
                                (check_recipient(recipient),)).rowcount == 1

    def digest_subscribed(self, recipient: str) -> bool:
        with self.reading() as conn:
            return conn.execute("SELECT 1 FROM digest_subscriptions WHERE recipient = ?",
                                (check_recipient(recipient),)).fetchone() is not None

    def digest_recipients(self) -> list[str]:
        with self.reading() as conn:
            rows = conn.execute("SELECT recipient FROM digest_subscriptions ORDER BY recipient").fetchall()
        return [r["recipient"] for r in rows]

    def delivered_alerts(self, session: date) -> list[DeliveredAlert]:
        """Alerts of one session that reached at least one chat, once each (a setup sent to three chats is
        one alert), oldest first, with the outcome of the prediction each announced where it is scored."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT a.symbol, a.kind, a.direction, a.quality_score, MIN(a.created_at) AS created_at, "
                "json_extract(MIN(a.payload), '$.title') AS title, o.first_hit, o.outcome_r "
                "FROM alerts a LEFT JOIN outcomes o ON o.prediction_id = a.prediction_id "
                "WHERE a.session = ? AND a.status = 'sent' AND a.setup_key NOT LIKE ? "
                "GROUP BY a.setup_key ORDER BY created_at",
                (to_db_date(session, "session"), DIGEST_SETUP_PREFIX + "%"),
            ).fetchall()
        return [DeliveredAlert(r["symbol"], r["kind"], r["direction"],
                               None if r["quality_score"] is None else float(r["quality_score"]),
                               r["title"] or "", r["created_at"], r["first_hit"],
                               None if r["outcome_r"] is None else float(r["outcome_r"])) for r in rows]
