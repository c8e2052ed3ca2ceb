"""Read-only look at the alert outbox for assertions (the bot itself never needs counts)."""

from __future__ import annotations

from bot.state import StateDB


def outbox_counts(state: StateDB) -> dict[str, int]:
    """Rows per status."""
    with state.reading() as conn:
        rows = conn.execute("SELECT status, COUNT(*) AS n FROM alerts GROUP BY status").fetchall()
    counts = {"pending": 0, "sending": 0, "sent": 0, "dead": 0}
    counts.update({r["status"]: int(r["n"]) for r in rows})
    return counts
