"""Refused chats, screened before any work: not allow-listed, or over their command rate.

Every refusal used to be a reply, and replies are paced per chat, so one chat flooding the bot
filled every update slot with refusals waiting their turn and stalled everyone else. Now a refused
chat is told why at most once per window; everything else it sends is dropped unanswered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.formatting import rate_limited_text
from bot.reply import Requester

MAX_REMEMBERED = 4096


class Access(Protocol):
    allowed: bool
    refusal: str


class RateLimiter(Protocol):
    def blocked_for(self, key: str) -> float: ...


class ScreenedLayer(Protocol):
    limiter: RateLimiter

    def access(self, who: Requester) -> Access: ...


@dataclass(frozen=True)
class Screening:
    admitted: bool
    refusal: str = ""  # why, when not admitted
    tell: bool = False  # send the refusal: the first one in this chat's window


ADMITTED = Screening(True)


class RefusalGate:
    def __init__(self, layer: ScreenedLayer, window_minutes: float,
                 clock: Callable[[], float] = time.monotonic):
        self._layer = layer
        self._window = window_minutes * 60.0
        self._clock = clock
        self._told: dict[str, float] = {}  # recipient -> when it was last told it is refused

    def screen(self, who: Requester) -> Screening:
        access = self._layer.access(who)
        if not access.allowed:
            return self._refuse(who, access.refusal)
        if who.transport != "console":
            wait = self._layer.limiter.blocked_for(who.recipient)
            if wait:
                return self._refuse(who, rate_limited_text(wait))
        return ADMITTED

    def _refuse(self, who: Requester, refusal: str) -> Screening:
        now = self._clock()
        last = self._told.get(who.recipient)
        if last is not None and now - last < self._window:
            return Screening(False, refusal, tell=False)
        if len(self._told) >= MAX_REMEMBERED:  # a flood from many chats must not grow this forever
            self._told = {k: t for k, t in self._told.items() if now - t < self._window}
        self._told[who.recipient] = now
        return Screening(False, refusal, tell=True)
