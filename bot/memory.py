"""Give freed memory back to the OS after each scan.

A bot that runs for months allocates and frees many pandas frames and chart buffers; glibc keeps
freed heap pages in its arenas, so resident memory creeps up even without a leak. A full collection
plus `malloc_trim(0)` after each scan (every few minutes) keeps it flat; elsewhere it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import lru_cache


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
