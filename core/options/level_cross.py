"""A bar closing across an options level: it opened on one side of the call wall, the put wall or zero
gamma (as the latest snapshot drew it) and closed on the other. Data only; the bot decides who hears."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.options.snapshot import LevelsSnapshot

CROSSING_KINDS: tuple[str, ...] = ("call_wall", "put_wall", "zero_gamma")


@dataclass(frozen=True)
class LevelCross:
    symbol: str
    kind: str  # one of CROSSING_KINDS
    direction: Literal["up", "down"]
    level: float
    bar_start: datetime
    bar_close: datetime
    open: float
    close: float
    snapshot_at: datetime  # when the level was drawn

    def to_dict(self) -> dict[str, object]:
        return {"symbol": self.symbol, "level_kind": self.kind, "crossing": self.direction, "level": self.level,
                "bar_start": self.bar_start.isoformat(), "bar_close": self.bar_close.isoformat(),
                "open": self.open, "close": self.close, "snapshot_at": self.snapshot_at.isoformat()}


def bar_crossings(snapshot: LevelsSnapshot, bar_start: datetime, bar_close: datetime, open_: float,
                  close: float) -> list[LevelCross]:
    """Every level of `snapshot` the bar closed across. A bar that opens or closes exactly on a level
    is not on the other side of it, so it does not count."""
    out = []
    for kind in CROSSING_KINDS:
        level = getattr(snapshot, kind)
        if level is None:
            continue
        if open_ < level < close:
            direction: Literal["up", "down"] = "up"
        elif close < level < open_:
            direction = "down"
        else:
            continue
        out.append(LevelCross(snapshot.symbol, kind, direction, float(level), bar_start, bar_close,
                              float(open_), float(close), snapshot.taken_at))
    return out
