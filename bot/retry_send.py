"""Send-with-retry shared by the chat adapters: bounded attempts, honour the service's
retry-after, exponential backoff for network trouble, stop at once on permanent failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from bot.reply import DeliveryError

T = TypeVar("T")
log = logging.getLogger(__name__)

FailureKind = Literal["retry_after", "transient", "permanent"]


@dataclass(frozen=True)
class Failure:
    """How a send error should be treated. `message` must not contain secrets."""

    kind: FailureKind
    message: str
    retry_after: float | None = None


async def send_with_retry(
    op: Callable[[], Awaitable[T]],
    classify: Callable[[Exception], Failure | None],
    *,
    max_attempts: int = 8,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    max_retry_after: float = 300.0,
    what: str = "send",
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Run `op` until it succeeds or `max_attempts` are used; raise DeliveryError otherwise.

    `classify` maps an exception to a Failure, or None for exceptions that are bugs and must
    propagate unchanged. A retry-after longer than `max_retry_after` is not waited for here:
    the caller (an outbox) gets DeliveryError(retry_after=...) and can reschedule instead.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    delay = base_delay
    for attempt in range(1, max_attempts + 1):
        try:
            return await op()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if failure.kind == "permanent":
                raise DeliveryError(f"{what} failed: {failure.message}", permanent=True) from None
            last = attempt == max_attempts
            if failure.kind == "retry_after":
                wait = failure.retry_after if failure.retry_after is not None else delay
                if last or wait > max_retry_after:
                    raise DeliveryError(
                        f"{what} rate-limited: {failure.message}", retry_after=wait
                    ) from None
            else:
                if last:
                    raise DeliveryError(
                        f"{what} failed after {attempt} attempts: {failure.message}"
                    ) from None
                wait = delay
                delay = min(max_delay, delay * 2)
            log.info("%s attempt %d/%d failed (%s); retrying in %.1fs",
                     what, attempt, max_attempts, failure.message, wait)
            await sleep(wait)
    raise AssertionError("unreachable")  # the loop always returns or raises
