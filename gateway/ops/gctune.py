"""Garbage-collector tuning for large JSON bodies.

Parsing a 2 MB image body allocates ~50k lists and ~150k floats in one go. With the default
thresholds that triggers dozens of collections, some of them full ones that walk the whole
half-built tree, which costs more than the parse itself. None of those objects can form
reference cycles, so collection is simply paused while they are built.
"""

from __future__ import annotations

import gc
import threading

# Below this size a body's objects are too few for collections to matter, and its decoding takes
# at most a few milliseconds: it stays on the event loop (``gateway.pipeline.offload``).
LARGE_BODY_BYTES = 64 << 10


class _Pauses:
    """Nested and concurrent pauses (the loop and decode threads) as one count: the collector
    is off while any is open, and back to its previous state when the last one closes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._was_enabled = False

    def enter(self) -> None:
        with self._lock:
            if self._open == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._open += 1

    def leave(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0 and self._was_enabled:
                gc.enable()


_PAUSES = _Pauses()


class _Paused:
    """``with paused(active):`` no collections inside the block; a class, since it runs per request."""

    __slots__ = ("_active",)

    def __init__(self, active: bool) -> None:
        self._active = active

    def __enter__(self) -> None:
        if self._active:
            _PAUSES.enter()

    def __exit__(self, *exc_info: object) -> None:
        if self._active:
            _PAUSES.leave()


_INACTIVE = _Paused(False)
_ACTIVE = _Paused(True)


def paused(active: bool = True) -> _Paused:
    """No collections inside the block (when ``active``); the previous state afterwards."""
    return _ACTIVE if active else _INACTIVE


def freeze_startup_objects() -> None:
    """Move everything built at startup (modules, settings, protobuf descriptors) out of the
    collector's view, so that the full collections that do happen walk only request garbage.

    No ``gc.collect()`` first: it would cost every app built in the test suite a full pass,
    and the little startup garbage it could free is not worth that.
    """
    gc.freeze()
