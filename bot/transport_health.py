"""Whether a chat transport is up, and since when it is down: for /status, the minute log line and
the run's exit when every chat transport stays down (a supervisor then restarts the process)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TransportHealth:
    """Down from creation until the transport first connects: a server unreachable at start-up is
    an outage like any other."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self._clock = clock
        self.down_since: float | None = clock()
        self.reason = "starting"
        self.ever_up = False

    @property
    def up(self) -> bool:
        return self.down_since is None

    def mark_up(self) -> float | None:
        """Record a working connection; returns how long it had been down after having been up
        (None at the first connection or when it was up already)."""
        if self.down_since is None:
            return None
        outage = self._clock() - self.down_since if self.ever_up else None
        self.down_since, self.reason, self.ever_up = None, "", True
        return outage

    def mark_down(self, reason: str) -> None:
        """The reason is updated on every failure; the start of the outage is kept."""
        self.reason = reason
        if self.down_since is None:
            self.down_since = self._clock()

    def down_for(self) -> float:
        """Seconds down so far; 0 when up."""
        return 0.0 if self.down_since is None else self._clock() - self.down_since


def all_down_longer_than(healths: list[TransportHealth], seconds: float) -> bool:
    return bool(healths) and all(not h.up and h.down_for() > seconds for h in healths)
