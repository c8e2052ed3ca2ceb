"""Who a market-data request is for, so the pacer serves a user's command before scan traffic.

The priority travels in a context variable: a scan sets `SCAN` around its work, and every task it
starts (asyncio copies the context) asks the pacer at that priority. Anything else, e.g. /predict
and /levels, is `USER`. A user request that joins an identical scan request already in flight shares
its place in the queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

USER = 0  # lower goes first
SCAN = 1

_current: ContextVar[int] = ContextVar("market_priority", default=USER)


def current_priority() -> int:
    return _current.get()


@contextmanager
def market_priority(priority: int) -> Iterator[None]:
    token = _current.set(priority)
    try:
        yield
    finally:
        _current.reset(token)
