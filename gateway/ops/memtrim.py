"""Give the heap back to the OS after large requests.

A 3 MB JSON image becomes ~100 MB of short-lived Python objects and buffers. glibc keeps
what they freed in its arenas (and raises its mmap threshold after large frees), so a pod
that once served 64 images at a time stays at that size, and a memory limit sized for its
steady state gets it OOM-killed later. ``malloc_trim(0)`` hands free pages back. It walks the
heap, so it runs once the last large request in flight has finished, shortly after, not per
request. Fixed malloc thresholds would avoid the growth too, but cost ~40% more CPU per
image request (every large buffer then pays mmap and page faults).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

# Bodies at least this large make enough garbage to be worth a trim.
TRIM_AFTER_BYTES = 1 << 20
# Wait this long after the last large request, so its response has been written and freed.
DELAY_SECONDS = 0.05


def _libc_trim() -> Callable[[], object] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class Trimmer:
    """Counts large requests in flight; trims when the count falls back to zero."""

    def __init__(self, trim: Callable[[], object] | None = None) -> None:
        self._trim = trim if trim is not None else _libc_trim()
        self._in_flight = 0
        self.trims = 0

    def enter(self, body_bytes: int) -> bool:
        if self._trim is None or body_bytes < TRIM_AFTER_BYTES:
            return False
        self._in_flight += 1
        return True

    def leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            asyncio.get_running_loop().call_later(DELAY_SECONDS, self._trim_if_idle)

    def _trim_if_idle(self) -> None:
        if self._in_flight == 0 and self._trim is not None:
            self._trim()
            self.trims += 1
