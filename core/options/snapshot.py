"""A recorded options-levels snapshot: what the bot drew at one moment, kept for scoring later.

`LevelsSnapshot.to_dict()` is the JSON of one row of `tradebot levels-history --json` and the line
format of the store archive (core.options.snapshot_archive); `from_dict` reads either back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from core.types import NY, Level, LevelsReport

NO_OPTION_DATA = "no option data"


class SnapshotFormatError(ValueError):
    """A stored snapshot cannot be read (the message says which field)."""


@dataclass(frozen=True)
class StrikeNet:
    strike: float
    net_gex: float
    net_vex: float

    def to_dict(self) -> dict[str, float]:
        return {"strike": self.strike, "net_gex": round(self.net_gex, 2), "net_vex": round(self.net_vex, 2)}


@dataclass(frozen=True)
class LevelsSnapshot:
    symbol: str
    taken_at: datetime  # New York time
    spot: float
    call_wall: float | None
    put_wall: float | None
    zero_gamma: float | None
    vanna_support: list[Level]
    vanna_resistance: list[Level]
    total_gex: float
    total_vex: float
    convention: str
    data_source: str
    strikes: list[StrikeNet] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "taken_at": self.taken_at.astimezone(NY).isoformat(),
            "spot": round(self.spot, 4),
            "call_wall": self.call_wall,
            "put_wall": self.put_wall,
            "zero_gamma": None if self.zero_gamma is None else round(self.zero_gamma, 4),
            "vanna_support": [lv.to_dict() for lv in self.vanna_support],
            "vanna_resistance": [lv.to_dict() for lv in self.vanna_resistance],
            "total_gex": round(self.total_gex, 2),
            "total_vex": round(self.total_vex, 2),
            "convention": self.convention,
            "data_source": self.data_source,
            "strikes": [s.to_dict() for s in self.strikes],
        }

    @classmethod
    def from_dict(cls, d: dict) -> LevelsSnapshot:
        try:
            taken_at = datetime.fromisoformat(str(d["taken_at"]))
            if taken_at.tzinfo is None:
                raise SnapshotFormatError("snapshot taken_at has no timezone")
            return cls(
                symbol=str(d["symbol"]).upper(), taken_at=taken_at.astimezone(NY), spot=float(d["spot"]),
                call_wall=_opt(d.get("call_wall")), put_wall=_opt(d.get("put_wall")),
                zero_gamma=_opt(d.get("zero_gamma")),
                vanna_support=[Level(float(x["price"]), float(x["strength"])) for x in d.get("vanna_support", [])],
                vanna_resistance=[Level(float(x["price"]), float(x["strength"]))
                                  for x in d.get("vanna_resistance", [])],
                total_gex=float(d["total_gex"]), total_vex=float(d["total_vex"]),
                convention=str(d["convention"]), data_source=str(d.get("data_source", "unknown")),
                strikes=[StrikeNet(float(s["strike"]), float(s["net_gex"]), float(s["net_vex"]))
                         for s in d.get("strikes", [])],
            )
        except SnapshotFormatError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotFormatError(f"snapshot is malformed ({type(exc).__name__}: {exc})") from None


def _opt(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def snapshot_from_report(report: LevelsReport, taken_at: datetime | None = None) -> LevelsSnapshot:
    """The snapshot of one levels report (taken_at defaults to the report's as_of)."""
    when = (taken_at or report.as_of).astimezone(NY)
    return LevelsSnapshot(
        symbol=report.symbol, taken_at=when, spot=report.spot, call_wall=report.call_wall,
        put_wall=report.put_wall, zero_gamma=report.zero_gamma,
        vanna_support=list(report.vanna_support), vanna_resistance=list(report.vanna_resistance),
        total_gex=float(sum(s.net_gex for s in report.strikes)),
        total_vex=float(sum(s.net_vex for s in report.strikes)),
        convention=report.convention, data_source=report.data_source,
        strikes=[StrikeNet(s.strike, s.net_gex, s.net_vex) for s in report.strikes],
    )
