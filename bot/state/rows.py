"""What the state database hands back, and how times are stored.

Every time is stored as ISO 8601 UTC text with microseconds ("2024-05-01T14:30:00.000000+00:00"),
fixed width so text order is time order; it is handed back as an aware datetime in New York time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from bot.state.errors import InvalidStateInput

NY = ZoneInfo("America/New_York")
AlertStatus = Literal["pending", "sending", "sent", "dead"]
AlertKind = Literal["score", "level", "digest"]
ALERT_KINDS: tuple[str, ...] = ("score", "level", "digest")
FirstHit = Literal["target", "stop", "none"]


def to_db_time(value: datetime | str, name: str) -> str:
    """An aware datetime (or ISO string with an offset) as stored UTC text."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidStateInput(f"{name}: {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise InvalidStateInput(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidStateInput(f"{name}: time has no timezone")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(NY)


def to_db_date(value: date, name: str) -> str:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidStateInput(f"{name}: expected a date, got {type(value).__name__}")
    return value.isoformat()


def finite(value: Any, name: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidStateInput(f"{name}: {value!r} is not a number") from None
    if not math.isfinite(number):
        if optional:
            return None  # e.g. an unknown VIX travels as NaN
        raise InvalidStateInput(f"{name}: {value!r} is not a finite number")
    return number


@dataclass(frozen=True)
class Subscription:
    recipient: str  # "telegram:12345", "discord:98765", "console:console"
    symbol: str  # ticker, or "*" for every traded symbol
    threshold: float  # minimum quality score, 0..100
    created_at: datetime


@dataclass(frozen=True)
class OutboxRow:
    id: int
    setup_key: str
    recipient: str
    symbol: str
    direction: str | None  # None on level and digest rows
    session: date
    quality_score: float | None  # None on digest rows, and on level rows without a model score
    payload: dict[str, Any]
    status: AlertStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    prediction_id: int | None
    kind: AlertKind = "score"


@dataclass(frozen=True)
class PredictionRow:
    """One logged prediction with its outcome (outcome fields are None until it is scored)."""

    id: int
    symbol: str
    as_of: datetime
    price: float
    vix: float | None
    direction: str
    quality_score: float
    win_probability: float
    predicted_high: float
    predicted_low: float
    target: float
    stop: float
    model_version: str
    data_source: str
    horizon_end: datetime
    source: str
    requested_by: str | None
    alerted: bool
    logged_at: datetime
    realised_high: float | None = None
    realised_low: float | None = None
    first_hit: FirstHit | None = None
    outcome_r: float | None = None
    bars: int | None = None
    scored_at: datetime | None = None

    @property
    def scored(self) -> bool:
        return self.scored_at is not None

    @property
    def session(self) -> date:
        return self.as_of.astimezone(NY).date()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.astimezone(NY).isoformat()
        return out
