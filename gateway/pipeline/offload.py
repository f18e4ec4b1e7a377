"""CPU-bound work on large bodies runs on a worker thread, so the event loop keeps answering.

Parsing and converting a body costs time in proportion to its size: a few milliseconds per
megabyte for a regular numeric array, up to a few hundred for a megabyte of tiny objects,
which Python has to build one by one. Run on the loop, one such body delays every other
request, health probes included. Run here, it shares the interpreter with the loop: CPython
hands the GIL over every ``sys.getswitchinterval()`` (5 ms), so the loop waits at most a few
switch intervals per callback, whatever the body holds.

Small bodies stay on the loop: the hop to a thread and back costs more than their work.

A ``GatewayError`` raised on a thread loses its traceback there: the traceback's frames hold
what the failed step was working on (a hostile document of a million objects), which would
otherwise be freed on the loop when the error is rendered. The error's message and details are
all that its answer needs; unexpected exceptions keep their tracebacks for the log.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from gateway.errors import GatewayError
from gateway.ops.gctune import LARGE_BODY_BYTES

P = ParamSpec("P")
T = TypeVar("T")

# Two threads: one would serialise large requests behind each other; more buy nothing under
# the GIL, except where numpy or zlib release it, and two cores is the common pod size.
WORKERS = 2

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="tfs-gateway-decode")
    return _pool


async def run(size: int, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``: inline when ``size`` (the bytes it works on) is small, else on a
    worker thread. Exceptions propagate unchanged either way. A cancelled caller stops waiting;
    the thread finishes its (bounded) work and its result is dropped."""
    if size < LARGE_BODY_BYTES:
        return fn(*args, **kwargs)
    return await in_thread(fn, *args, **kwargs)


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on a worker thread whatever its size: for rare work whose cost has no
    byte count to judge it by (a document built from every servable). Exceptions as ``run``."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), _detaching, functools.partial(fn, *args, **kwargs))


def _detaching(call: Callable[[], T]) -> T:
    try:
        return call()
    except GatewayError as exc:
        exc.__traceback__ = None
        exc.__context__ = exc.__cause__ = None
        raise
