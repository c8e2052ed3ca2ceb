"""Which exceptions carry a message fit for the user (one short line), and which are bugs."""

from __future__ import annotations

from core.predictor import PredictionError
from core.store import StoreError
from core.types import MarketDataError


def user_message(exc: BaseException) -> str | None:
    """The exception's own short message if it is an expected failure, else None (a bug: log it)."""
    from bot.state import StateError
    from core.calendar import CalendarRangeError
    from core.marketdata.csv_file import CsvFormatError

    if isinstance(exc, CsvFormatError | CalendarRangeError):
        return str(exc)  # a bad file or date: the data is there, it is wrong
    if isinstance(exc, MarketDataError):
        return f"market data unavailable: {exc}"
    if isinstance(exc, PredictionError | StoreError | StateError):
        return str(exc)
    return None
