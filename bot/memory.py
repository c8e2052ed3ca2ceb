"""Give freed memory back to the OS after each scan.

A bot that runs for months allocates and frees many pandas frames and chart buffers; glibc keeps
freed heap pages in its arenas, so resident memory creeps up even without a leak. A full collection
plus `malloc_trim(0)` after each scan (every few minutes) keeps it flat; elsewhere it is a no-op.
Charts are drawn in worker threads, each with its own malloc arena: a /predict burst left each arena
holding its freed pages (200 console /predict: 1209 -> 1356 MB, flat only once every arena was full),
so chart rendering trims too, at most every TRIM_INTERVAL_SECONDS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from functools import lru_cache

TRIM_INTERVAL_SECONDS = 2.0
_last_trim = [0.0]  # monotonic time of the last trim_heap; a race between threads only trims twice


@lru_cache(maxsize=1)
def _malloc_trim():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


def release_memory() -> None:
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def trim_heap(min_interval: float = TRIM_INTERVAL_SECONDS) -> None:
    """Hand freed heap pages back to the OS (no collection: cheap), at most every min_interval s."""
    now = time.monotonic()
    if now - _last_trim[0] < min_interval:
        return
    _last_trim[0] = now
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
