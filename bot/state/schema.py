"""Versioned schema: an ordered list of SQL scripts; PRAGMA user_version = how many are applied.

Never edit a released script: append a new one. Each script runs in one transaction together
with the user_version bump, so a crash mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.state.errors import StateError

MIGRATIONS: tuple[str, ...] = (
    # 1: subscriptions, scheduler bookkeeping, alert outbox.
    """
    CREATE TABLE subscriptions (
        recipient  TEXT NOT NULL,
        symbol     TEXT NOT NULL,          -- ticker, or '*' for every traded symbol
        threshold  REAL NOT NULL CHECK (threshold BETWEEN 0 AND 100),
        created_at TEXT NOT NULL,
        PRIMARY KEY (recipient, symbol)
    );
    CREATE INDEX subscriptions_by_symbol ON subscriptions (symbol);

    CREATE TABLE meta (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE alerts (
        id              INTEGER PRIMARY KEY,
        setup_key       TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        symbol          TEXT NOT NULL,
        direction       TEXT NOT NULL CHECK (direction IN ('long', 'short')),
        session         TEXT NOT NULL,     -- trading day, YYYY-MM-DD
        quality_score   REAL NOT NULL,
        payload         TEXT NOT NULL,     -- JSON
        status          TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        next_attempt_at TEXT,
        created_at      TEXT NOT NULL,
        sent_at         TEXT,
        UNIQUE (setup_key, recipient)
    );
    CREATE INDEX alerts_by_status ON alerts (status, id);
    CREATE INDEX alerts_for_cooldown ON alerts (symbol, direction, session, recipient, created_at);
    """,
    # 2: the prediction log and its outcomes.
    """
    CREATE TABLE predictions (
        id              INTEGER PRIMARY KEY,
        symbol          TEXT NOT NULL,
        as_of           TEXT NOT NULL,
        price           REAL NOT NULL,
        vix             REAL,
        direction       TEXT NOT NULL CHECK (direction IN ('long', 'short')),
        quality_score   REAL NOT NULL,
        win_probability REAL NOT NULL,
        predicted_high  REAL NOT NULL,
        predicted_low   REAL NOT NULL,
        target          REAL NOT NULL,
        stop            REAL NOT NULL,
        model_version   TEXT NOT NULL,
        data_source     TEXT NOT NULL,
        horizon_end     TEXT NOT NULL,
        source          TEXT NOT NULL,     -- who asked: 'command', 'scan', ...
        requested_by    TEXT,
        alerted         INTEGER NOT NULL DEFAULT 0,
        logged_at       TEXT NOT NULL,
        payload         TEXT NOT NULL      -- the whole Prediction.to_dict(), JSON
    );
    CREATE INDEX predictions_by_as_of ON predictions (as_of);
    CREATE INDEX predictions_by_horizon ON predictions (horizon_end);

    CREATE TABLE outcomes (
        prediction_id INTEGER PRIMARY KEY REFERENCES predictions (id) ON DELETE CASCADE,
        realised_high REAL NOT NULL,
        realised_low  REAL NOT NULL,
        first_hit     TEXT NOT NULL CHECK (first_hit IN ('target', 'stop', 'none')),
        outcome_r     REAL NOT NULL,
        bars          INTEGER,             -- bars in the scored window; 0 = nothing to score
        scored_at     TEXT NOT NULL
    );
    """,
    # 3: link an outbox row to the prediction it announces, so a sent alert marks the log.
    """
    ALTER TABLE alerts ADD COLUMN prediction_id INTEGER REFERENCES predictions (id) ON DELETE SET NULL;
    """,
    # 4: the Discord guild of a subscription, so the allow-list (DISCORD_GUILD_IDS) applies to its
    # alerts. NULL on other transports, and on Discord rows from before: resolved once, on delivery.
    """
    ALTER TABLE subscriptions ADD COLUMN guild_id TEXT;
    """,
    # 5: options-levels snapshots taken during the session; payload = LevelsSnapshot.to_dict().
    """
    CREATE TABLE level_snapshots (
        id          INTEGER PRIMARY KEY,
        symbol      TEXT NOT NULL,
        taken_at    TEXT NOT NULL,
        data_source TEXT NOT NULL,
        spot        REAL NOT NULL,
        call_wall   REAL,
        put_wall    REAL,
        zero_gamma  REAL,
        total_gex   REAL NOT NULL,
        total_vex   REAL NOT NULL,
        convention  TEXT NOT NULL,
        payload     TEXT NOT NULL,     -- JSON, with the vanna levels and the per-strike net GEX/VEX
        UNIQUE (symbol, taken_at)
    );
    """,
    # 6: chats that get the pre-open brief and the close recap (one row per chat).
    """
    CREATE TABLE digest_subscriptions (
        recipient  TEXT PRIMARY KEY,
        guild_id   TEXT,               -- the Discord guild of the channel, for DISCORD_GUILD_IDS
        created_at TEXT NOT NULL
    );
    """,
    # 7: what each chat receives (/settings): per alert kind 'on', 'silent' (no notification sound) or
    # 'off' (sends nothing; its subscriptions stay). A chat without a row gets everything 'on'.
    """
    CREATE TABLE chat_settings (
        recipient  TEXT NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('score', 'level', 'digest')),
        mode       TEXT NOT NULL CHECK (mode IN ('on', 'silent', 'off')),
        updated_at TEXT NOT NULL,
        PRIMARY KEY (recipient, kind)
    );
    """,
    # 8: level alerts: who wants them per symbol ('*' = every traded symbol); and the outbox gets a kind
    # ('score', 'level', 'digest') where only score rows need a direction and a score. SQLite cannot
    # alter a CHECK, so the outbox is rebuilt (rows, ids and indexes kept) inside this one transaction.
    """
    CREATE TABLE level_subscriptions (
        recipient  TEXT NOT NULL,
        symbol     TEXT NOT NULL,          -- ticker, or '*' for every traded symbol
        guild_id   TEXT,                   -- the Discord guild of the channel; NULL elsewhere
        created_at TEXT NOT NULL,
        PRIMARY KEY (recipient, symbol)
    );
    CREATE INDEX level_subscriptions_by_symbol ON level_subscriptions (symbol);

    CREATE TABLE alerts_rebuilt (
        id              INTEGER PRIMARY KEY,
        kind            TEXT NOT NULL DEFAULT 'score' CHECK (kind IN ('score', 'level', 'digest')),
        setup_key       TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        symbol          TEXT NOT NULL,
        direction       TEXT CHECK (direction IN ('long', 'short')),
        session         TEXT NOT NULL,     -- trading day, YYYY-MM-DD
        quality_score   REAL,
        payload         TEXT NOT NULL,     -- JSON
        status          TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        next_attempt_at TEXT,
        created_at      TEXT NOT NULL,
        sent_at         TEXT,
        prediction_id   INTEGER REFERENCES predictions (id) ON DELETE SET NULL,
        CHECK (kind != 'score' OR (direction IS NOT NULL AND quality_score IS NOT NULL)),
        UNIQUE (setup_key, recipient)
    );
    INSERT INTO alerts_rebuilt (id, kind, setup_key, recipient, symbol, direction, session, quality_score,
                                payload, status, attempts, last_error, next_attempt_at, created_at, sent_at,
                                prediction_id)
        SELECT id, 'score', setup_key, recipient, symbol, direction, session, quality_score, payload, status,
               attempts, last_error, next_attempt_at, created_at, sent_at, prediction_id FROM alerts;
    DROP TABLE alerts;
    ALTER TABLE alerts_rebuilt RENAME TO alerts;
    CREATE INDEX alerts_by_status ON alerts (status, id);
    CREATE INDEX alerts_for_cooldown ON alerts (symbol, direction, session, recipient, created_at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def apply_migrations(conn: sqlite3.Connection, db_path: Path, upto: int | None = None) -> int:
    """Bring the database to version `upto` (default: the latest); return the version reached.

    `conn` must be in autocommit mode (isolation_level=None). A database newer than this code
    knows is refused: running old code on it could corrupt data the new code relies on."""
    target = SCHEMA_VERSION if upto is None else upto
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise StateError(
            f"state database {db_path} has schema version {current}, newer than this tradebot "
            f"understands ({SCHEMA_VERSION}); upgrade tradebot or use another STATE_DIR"
        )
    for version in range(current + 1, target + 1):
        script = MIGRATIONS[version - 1]
        try:
            # executescript commits any open transaction first, so BEGIN/COMMIT live in the script.
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return schema_version(conn)
