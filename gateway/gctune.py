"""Garbage-collector tuning for large JSON bodies.

Parsing a 2 MB image body allocates ~50k lists and ~150k floats in one go. With the default
thresholds that triggers dozens of collections, some of them full ones that walk the whole
half-built tree, which costs more than the parse itself. None of those objects can form
reference cycles, so collection is simply paused while they are built.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Below this size a body's objects are too few for collections to matter.
LARGE_BODY_BYTES = 64 << 10


@contextmanager
def paused(active: bool = True) -> Iterator[None]:
    """No collections inside the block (when ``active``); the previous state afterwards."""
    was_enabled = gc.isenabled()
    if active and was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if active and was_enabled:
            gc.enable()


def freeze_startup_objects() -> None:
    """Move everything built at startup (modules, settings, protobuf descriptors) out of the
    collector's view, so that the full collections that do happen walk only request garbage.

    No ``gc.collect()`` first: it would cost every app built in the test suite a full pass,
    and the little startup garbage it could free is not worth that.
    """
    gc.freeze()
