"""The event-loop watchdog, as Envoy has one: loop lag, stalls, and an exit when drain cannot run.

- **Lag.** A heartbeat callback runs on the loop every ``INTERVAL_SECONDS`` (0.1 s). Each run
  observes how late it ran in ``tfs_gateway_event_loop_lag_seconds`` and schedules the next.
- **Stalls.** A monitor thread checks, several times per threshold, how overdue the next
  heartbeat is. Overdue by more than ``server.loop_stall_warning_seconds`` means the loop has
  not come back to its timers for that long: one callback, or one iteration's callbacks, blocked
  it. Each stall is counted once in ``tfs_gateway_event_loop_stalls_total``, when first seen:
  - while it lasts, by the thread, with a WARNING naming the route and request id running;
  - or, when it ends, by the heartbeat, if the thread could not look in time.
- **Stuck drain.** SIGTERM and SIGINT reach the thread without the loop (``stop_signals``). If,
  after the signal, the loop stays overdue for ``server.shutdown_grace_seconds`` (at least the
  stall threshold), the thread logs a CRITICAL line naming what runs and ends the process with
  ``os._exit(70)`` (EX_SOFTWARE). A loop that is busy but comes back drains as before and exits 0.

**What is running.** The thread reads the loop thread's stack (``sys._current_frames``). The
innermost frame holding a ``RequestInfo`` (the middleware's, the dispatcher's or a handler's)
names the request. Why not a "current request" slot that the middleware sets: many requests
interleave on one loop, so a slot names the last request to *enter*, not the one that blocks.
The stack names exactly the one running. It costs nothing per request, and it needs no hook
elsewhere. The innermost frame's file, line and function are logged too.

**Limits.** The signal's Python handler runs on the main thread between bytecodes, and the
monitor thread needs the GIL. Pure-Python busy loops are covered: they switch every 5 ms. So are
C calls that release the GIL (``time.sleep``, I/O, zlib, large numpy operations). One C call
that holds the GIL throughout (a single huge regex match or ``bytes.find``, one C-level JSON
parse) delays both until it returns. Then the stall is counted when it ends, unnamed, and on
SIGTERM only the orchestrator's SIGKILL ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

from gateway.config import ServerSettings
from gateway.ops.metrics import Metrics
from gateway.pipeline.services import RequestInfo

log = logging.getLogger("tfs_gateway.watchdog")

EX_SOFTWARE = 70
INTERVAL_SECONDS = 0.1
# The thread looks 4 times per threshold, within these bounds.
MIN_POLL_SECONDS, MAX_POLL_SECONDS = 0.005, 0.05
# os._exit(70) happens this long after the CRITICAL line even if writing it blocks (a full stderr pipe).
EXIT_LOG_SECONDS = 2.0

ServerView = Callable[[], ServerSettings]


@dataclass(frozen=True, slots=True)
class Running:
    """What the loop thread was running when the watchdog looked."""

    route: str = "-"
    request_id: str = "-"
    where: str = "unknown"

    def __str__(self) -> str:
        return f"route={self.route} request_id={self.request_id} at {self.where}"


class Watchdog:
    """The heartbeat on one loop and its monitor thread; made and started on the loop's thread.

    ``server`` is read on every look, so a config reload's threshold and grace apply at once.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: Metrics, server: ServerView) -> None:
        self._loop = loop
        self._metrics = metrics
        self._server = server
        self._loop_thread = threading.get_ident()
        self._due = time.monotonic() + INTERVAL_SECONDS  # when the next heartbeat should run
        self._counted = 0.0  # the ``_due`` of the last stall counted: each stall once
        self._lock = threading.Lock()
        self._stop_at: float | None = None
        self._closing = threading.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._thread = threading.Thread(target=self._watch, name="tfs-gateway-watchdog", daemon=True)

    def start(self) -> None:
        self._due = time.monotonic() + INTERVAL_SECONDS
        self._timer = self._loop.call_later(INTERVAL_SECONDS, self._beat)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and the thread; returns once the thread has ended."""
        if self._timer is not None:
            self._timer.cancel()
        self._closing.set()
        self._thread.join()

    def stop_requested(self) -> None:
        """A stop signal arrived; callable from a signal handler (the first one counts)."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()

    # ------------------------------------------------------------------ on the loop

    def _beat(self) -> None:
        now = time.monotonic()
        lag = max(0.0, now - self._due)
        self._metrics.loop_lag.observe(lag)
        threshold = self._server().loop_stall_warning_seconds
        if lag > threshold:
            self._stall_ended(self._due, lag, threshold)
        self._due = now + INTERVAL_SECONDS
        self._timer = self._loop.call_later(INTERVAL_SECONDS, self._beat)

    def _stall_ended(self, due: float, lag: float, threshold: float) -> None:
        if self._claim(due):  # the thread never saw it: too short between two looks, or the GIL was held
            self._metrics.loop_stalls.inc()
            log.warning(
                "event loop was blocked for %.3fs (server.loop_stall_warning_seconds=%g); "
                "it ended before the watchdog could look, so what ran is unknown",
                lag,
                threshold,
            )
        else:
            log.info("event loop unblocked after %.3fs", lag)

    # ------------------------------------------------------------------ on the monitor thread

    def _watch(self) -> None:
        while not self._closing.wait(self._poll_seconds()):
            self._look(time.monotonic(), self._server())

    def _poll_seconds(self) -> float:
        return max(MIN_POLL_SECONDS, min(MAX_POLL_SECONDS, self._server().loop_stall_warning_seconds / 4))

    def _look(self, now: float, server: ServerSettings) -> None:
        due = self._due
        overdue = now - due
        threshold = server.loop_stall_warning_seconds
        if overdue > threshold and self._counted != due and self._claim(due):
            self._metrics.loop_stalls.inc()
            log.warning(
                "event loop blocked for %.3fs so far (server.loop_stall_warning_seconds=%g): %s",
                overdue,
                threshold,
                self.running(),
            )
        if self._stop_at is not None:
            quiet = now - max(self._stop_at, due)
            if quiet >= max(server.shutdown_grace_seconds, threshold):
                self._exit(quiet, server.shutdown_grace_seconds)

    def _claim(self, due: float) -> bool:
        """True for the first caller about the stall that made the heartbeat due at ``due`` late."""
        with self._lock:
            if self._counted == due:
                return False
            self._counted = due
            return True

    def running(self) -> Running:
        """The request (and code) the loop thread is running now; ``-`` for what cannot be named."""
        try:
            return _running(sys._current_frames().get(self._loop_thread))
        except Exception:  # a diagnostic must never take the watchdog down
            log.debug("could not read the loop thread's stack", exc_info=True)
            return Running()

    def _exit(self, quiet: float, grace: float) -> NoReturn:
        killer = threading.Timer(EXIT_LOG_SECONDS, os._exit, args=(EX_SOFTWARE,))
        killer.daemon = True
        killer.start()
        log.critical(
            "event loop unresponsive for %.1fs after the stop signal (server.shutdown_grace_seconds=%g): %s; "
            "exiting with status %d without draining",
            quiet,
            grace,
            self.running(),
            EX_SOFTWARE,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EX_SOFTWARE)


def _running(innermost: FrameType | None) -> Running:
    where = _where(innermost)
    frame = innermost
    while frame is not None:
        for value in frame.f_locals.values():
            if isinstance(value, RequestInfo):
                return Running(value.route, value.request_id, where)
        frame = frame.f_back
    return Running(where=where)


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return "unknown"
    path = Path(frame.f_code.co_filename)
    return f"{path.parent.name}/{path.name}:{frame.f_lineno} in {frame.f_code.co_name}"


@contextlib.contextmanager
def watching(metrics: Metrics, server: ServerView) -> Iterator[Watchdog]:
    """A started watchdog on the running loop, stopped on exit."""
    dog = Watchdog(asyncio.get_running_loop(), metrics, server)
    dog.start()
    try:
        yield dog
    finally:
        dog.stop()


@contextlib.contextmanager
def stop_signals(dog: Watchdog, begin_drain: Callable[[], None], signals: Iterable[int]) -> Iterator[None]:
    """Deliver ``signals`` to the watchdog at once and to ``begin_drain`` on the loop; restore on exit.

    ``loop.add_signal_handler`` would run its callback on the loop only, which never comes if the
    loop is stuck. A Python-level handler runs on the main thread between bytecodes, even inside
    a busy callback, so the watchdog learns of the signal either way. Must run on the main thread.
    """
    loop = asyncio.get_running_loop()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        dog.stop_requested()
        with contextlib.suppress(RuntimeError):  # the loop is closed: there is nothing left to drain
            loop.call_soon_threadsafe(begin_drain)

    previous = {signum: signal.signal(signum, on_signal) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
