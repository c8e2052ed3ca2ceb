"""The process's one reading of the wall clock.

Code that needs "now" takes a clock (a callable returning an aware datetime) and falls back to
`wall_clock`, never to `datetime.now`/`time.time` directly. The test suite pins the source once
(`tests/conftest.py`), so no test depends on the hour, the machine's time zone or the weekday.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from core.types import NY

Clock = Callable[[], datetime]


def _system_now() -> datetime:
    return datetime.now(UTC)


_source: Clock = _system_now  # replaced only by the test suite's pinned clock


def wall_clock() -> datetime:
    """Now, timezone-aware (UTC)."""
    return _source()


def wall_clock_ny() -> datetime:
    return wall_clock().astimezone(NY)


def wall_time() -> float:
    """Now as POSIX seconds, for comparisons with file modification times."""
    return wall_clock().timestamp()
