"""Options-levels snapshots in SQLite: every snapshot the bot took, simulated or live."""

from __future__ import annotations

import json
from datetime import datetime

from bot.state.connection import StateConnection
from bot.state.errors import InvalidStateInput
from bot.state.rows import to_db_time
from bot.state.subscriptions import normalise_symbol
from core.options.snapshot import LevelsSnapshot, SnapshotFormatError


class LevelSnapshotsMixin(StateConnection):
    def record_level_snapshot(self, snapshot: LevelsSnapshot) -> bool:
        """Store one snapshot; False (and no change) if this symbol already has one at that time."""
        if not isinstance(snapshot, LevelsSnapshot):
            raise InvalidStateInput("expected a LevelsSnapshot")
        symbol = normalise_symbol(snapshot.symbol, allow_all=False)
        args = (symbol, to_db_time(snapshot.taken_at, "taken_at"), snapshot.data_source, snapshot.spot,
                snapshot.call_wall, snapshot.put_wall, snapshot.zero_gamma, snapshot.total_gex,
                snapshot.total_vex, snapshot.convention, json.dumps(snapshot.to_dict(), sort_keys=True))
        with self.writing() as conn:
            cur = conn.execute(
                "INSERT INTO level_snapshots (symbol, taken_at, data_source, spot, call_wall, put_wall, "
                "zero_gamma, total_gex, total_vex, convention, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (symbol, taken_at) DO NOTHING", args)
            return cur.rowcount == 1

    def level_snapshots(self, symbol: str, start: datetime | None = None,
                        end: datetime | None = None) -> list[LevelsSnapshot]:
        """Snapshots of `symbol` taken in [start, end] (both optional), oldest first."""
        sql = "SELECT payload FROM level_snapshots WHERE symbol = ?"
        args: list[object] = [normalise_symbol(symbol, allow_all=False)]
        if start is not None:
            sql += " AND taken_at >= ?"
            args.append(to_db_time(start, "start"))
        if end is not None:
            sql += " AND taken_at <= ?"
            args.append(to_db_time(end, "end"))
        with self.reading() as conn:
            rows = conn.execute(sql + " ORDER BY taken_at", args).fetchall()
        out = []
        for (payload,) in rows:
            try:
                out.append(LevelsSnapshot.from_dict(json.loads(payload)))
            except (ValueError, SnapshotFormatError) as exc:
                raise InvalidStateInput(f"a stored {symbol} levels snapshot is unreadable: {exc}") from None
        return out
