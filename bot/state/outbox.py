"""The alert outbox: an alert is written here BEFORE it is sent, so a crash never loses or
duplicates one.

Delivery state machine of one row (one alert to one recipient)::

    record_alert ──> pending ──claim_alert──> sending ──mark_sent──> sent   (final)
                       ^  │                      │
                       │  └──mark_sent───────────┼──────────────────> sent
                       │                         │
                       └──mark_failed (transient, attempts < max)────┘
                          mark_failed (permanent, or attempts >= max) ──> dead (final)

- Each row has a kind: 'score' (a model setup: direction and quality score required), 'level' (a bar
  closed across an options level) or 'digest'; the cooldown (`last_alert_time`) counts score rows only.
- UNIQUE(setup_key, recipient): recording the same setup twice for a recipient returns None and
  stores nothing, so a rescan after a restart cannot alert twice.
- A row marked sent is never returned by `pending_alerts` again.
- A row still pending (or left in 'sending') when the process dies is sent again after the
  restart (`recover_interrupted_sends` runs on open): at-least-once at the transport boundary.
  Telegram's sendMessage has no idempotency key, so the only window for a duplicate is a crash
  between the single send call returning and `mark_sent` committing (synchronous=FULL).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from typing import Any

from bot.state.connection import StateConnection
from bot.state.errors import InvalidStateInput
from bot.state.rows import ALERT_KINDS, AlertStatus, OutboxRow, finite, from_db_time, to_db_date, to_db_time
from bot.state.subscriptions import check_recipient, normalise_symbol

DEFAULT_MAX_ATTEMPTS = 8
_MAX_ERROR_CHARS = 500


def _row(r: sqlite3.Row) -> OutboxRow:
    created = from_db_time(r["created_at"])
    assert created is not None
    return OutboxRow(
        id=int(r["id"]), setup_key=r["setup_key"], recipient=r["recipient"], symbol=r["symbol"],
        direction=r["direction"], session=date.fromisoformat(r["session"]),
        quality_score=None if r["quality_score"] is None else float(r["quality_score"]),
        payload=json.loads(r["payload"]), status=r["status"],
        attempts=int(r["attempts"]), last_error=r["last_error"],
        next_attempt_at=from_db_time(r["next_attempt_at"]), created_at=created,
        sent_at=from_db_time(r["sent_at"]), prediction_id=r["prediction_id"], kind=r["kind"],
    )


def _direction(direction: str) -> str:
    if direction not in ("long", "short"):
        raise InvalidStateInput(f"direction {direction!r} is not 'long' or 'short'")
    return direction


class OutboxMixin(StateConnection):
    def record_alert(
        self, setup_key: str, recipient: str, symbol: str, direction: str | None, session: date,
        quality_score: float | None, payload: dict[str, Any], created_at: datetime,
        prediction_id: int | None = None, *, kind: str = "score",
    ) -> int | None:
        """Insert a pending row before sending; None if this setup was already recorded for them.
        Only a 'score' row needs a direction and a quality score; 'level' and 'digest' rows may omit them."""
        if not isinstance(setup_key, str) or not setup_key or len(setup_key) > 300:
            raise InvalidStateInput("setup_key must be a non-empty string of at most 300 characters")
        if kind not in ALERT_KINDS:
            raise InvalidStateInput(f"alert kind {kind!r} is not one of {', '.join(ALERT_KINDS)}")
        if kind == "score" or direction is not None:
            direction = _direction(str(direction))
        score = finite(quality_score, "quality_score", optional=kind != "score")
        try:
            payload_json = json.dumps(payload, sort_keys=True, default=str)
        except (TypeError, ValueError) as exc:
            raise InvalidStateInput(f"alert payload cannot be stored as JSON: {exc}") from None
        args = (
            setup_key, check_recipient(recipient), normalise_symbol(symbol, allow_all=False),
            direction, to_db_date(session, "session"), score,
            payload_json, to_db_time(created_at, "created_at"), prediction_id, kind,
        )
        with self.writing() as conn:
            if prediction_id is not None and conn.execute(
                "SELECT 1 FROM predictions WHERE id = ?", (prediction_id,)
            ).fetchone() is None:
                raise InvalidStateInput(f"no logged prediction with id {prediction_id}")
            cur = conn.execute(
                "INSERT INTO alerts (setup_key, recipient, symbol, direction, session, quality_score, "
                "payload, created_at, prediction_id, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (setup_key, recipient) DO NOTHING",
                args,
            )
            return int(cur.lastrowid) if cur.rowcount == 1 and cur.lastrowid is not None else None

    def setup_recipients(self, setup_key: str) -> set[str]:
        """Everyone this setup was already recorded for, whatever became of the row."""
        with self.reading() as conn:
            rows = conn.execute("SELECT recipient FROM alerts WHERE setup_key = ?", (setup_key,)).fetchall()
        return {r["recipient"] for r in rows}

    def pending_alerts(self, now: datetime | None = None, limit: int | None = None) -> list[OutboxRow]:
        """Rows to send, oldest first. With `now`, rows whose retry time is later are left out."""
        sql = "SELECT * FROM alerts WHERE status = 'pending'"
        args: list[Any] = []
        if now is not None:
            sql += " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            args.append(to_db_time(now, "now"))
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, int(limit)))
        with self.reading() as conn:
            return [_row(r) for r in conn.execute(sql, args).fetchall()]

    def alert(self, alert_id: int) -> OutboxRow | None:
        with self.reading() as conn:
            r = conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return None if r is None else _row(r)

    def claim_alert(self, alert_id: int) -> bool:
        """pending -> sending, just before the transport call; False if another sender has it or it
        is no longer pending (so two workers never send the same row)."""
        with self.writing() as conn:
            cur = conn.execute(
                "UPDATE alerts SET status = 'sending' WHERE id = ? AND status = 'pending'", (alert_id,)
            )
            return cur.rowcount == 1

    def mark_sent(self, alert_id: int, sent_at: datetime) -> bool:
        """pending|sending -> sent (final). Also marks the linked prediction as alerted.
        False (and no change) if the row was already sent or dead, or does not exist."""
        when = to_db_time(sent_at, "sent_at")
        with self.writing() as conn:
            cur = conn.execute(
                "UPDATE alerts SET status = 'sent', sent_at = ?, next_attempt_at = NULL "
                "WHERE id = ? AND status IN ('pending', 'sending')",
                (when, alert_id),
            )
            if cur.rowcount != 1:
                return False
            conn.execute(
                "UPDATE predictions SET alerted = 1 WHERE id = "
                "(SELECT prediction_id FROM alerts WHERE id = ?)",
                (alert_id,),
            )
            return True

    def mark_failed(
        self, alert_id: int, error: str, permanent: bool, *, retry_at: datetime | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> AlertStatus | None:
        """Count a failed attempt. permanent (chat gone, bot blocked) or too many attempts -> 'dead';
        otherwise back to 'pending', not returned by `pending_alerts(now)` before `retry_at`.
        Returns the new status, or None if the row was not pending/sending. `error` must already be
        free of secrets; it is cut to 500 characters."""
        retry = None if retry_at is None else to_db_time(retry_at, "retry_at")
        with self.writing() as conn:
            r = conn.execute(
                "SELECT attempts FROM alerts WHERE id = ? AND status IN ('pending', 'sending')", (alert_id,)
            ).fetchone()
            if r is None:
                return None
            attempts = int(r["attempts"]) + 1
            status: AlertStatus = "dead" if permanent or attempts >= max_attempts else "pending"
            conn.execute(
                "UPDATE alerts SET status = ?, attempts = ?, last_error = ?, next_attempt_at = ? WHERE id = ?",
                (status, attempts, str(error)[:_MAX_ERROR_CHARS], None if status == "dead" else retry,
                 alert_id),
            )
            return status

    def recover_interrupted_sends(self) -> int:
        """sending -> pending for rows a dead process was sending; return how many."""
        with self.writing() as conn:
            return conn.execute("UPDATE alerts SET status = 'pending' WHERE status = 'sending'").rowcount

    def last_alert_time(self, symbol: str, direction: str, session: date, recipient: str) -> datetime | None:
        """When the latest non-dead score alert for this symbol/direction/session went to the recipient
        (its created_at), for the cooldown; None if none. Level alerts neither obey nor start it."""
        with self.reading() as conn:
            r = conn.execute(
                "SELECT MAX(created_at) AS t FROM alerts WHERE symbol = ? AND direction = ? AND session = ? "
                "AND recipient = ? AND status != 'dead' AND kind = 'score'",
                (normalise_symbol(symbol, allow_all=False), _direction(direction),
                 to_db_date(session, "session"), check_recipient(recipient)),
            ).fetchone()
        return from_db_time(r["t"])


