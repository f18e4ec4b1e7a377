"""How a backend degrades: a concurrency limit with a bounded queue, a circuit breaker, retries.

Pure asyncio; no grpc and no aiohttp. ``backend.py`` wraps each call as::

    limiter slot (or Overloaded 503 + Retry-After)
      └── attempt 1..max_attempts, each:
            breaker.allow() (or CircuitOpen 503 + Retry-After)
            rpc with the time left until the deadline
            only UNAVAILABLE retries: jittered exponential backoff, paid from the retry
            budget, and never when the backoff would end past the deadline

Clocks are injectable (``clock=``) so the state machines are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.config import CircuitBreakerSettings, RetrySettings
from gateway.errors import BackendTimeout, CircuitOpen, Overloaded

Clock = Callable[[], float]
BreakerState = Literal["closed", "open", "half_open"]


def backoff_seconds(retry: int, settings: RetrySettings, rand: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff before retry number ``retry`` (1-based), as AWS recommends.

    Full jitter spreads the retries of many clients that failed together, so a backend that
    comes back is not hit by a synchronised wave.
    """
    ceiling = min(settings.max_backoff_seconds, settings.initial_backoff_seconds * 2.0 ** (retry - 1))
    return ceiling * rand()


class RetryBudget:
    """Retries may add at most ``budget_ratio`` of recent requests, plus a small floor per second.

    Linkerd's and Finagle's rule: without it, every client retrying a dead backend multiplies its
    load by ``max_attempts`` exactly when it can least take it. Counts are kept in one-second
    buckets over ``window_seconds``, so memory is constant whatever the request rate.
    """

    def __init__(self, settings: RetrySettings, *, window_seconds: int = 10, clock: Clock = time.monotonic) -> None:
        self._ratio = settings.budget_ratio
        self._floor = settings.min_retries_per_second * window_seconds
        self._window = window_seconds
        self._clock = clock
        self._buckets: deque[list[int]] = deque()  # [second, requests, retries]

    def _bucket(self) -> list[int]:
        now = int(self._clock())
        while self._buckets and self._buckets[0][0] <= now - self._window:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1][0] != now:
            self._buckets.append([now, 0, 0])
        return self._buckets[-1]

    def record_request(self) -> None:
        self._bucket()[1] += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when the budget is spent."""
        current = self._bucket()
        requests = sum(bucket[1] for bucket in self._buckets)
        retries = sum(bucket[2] for bucket in self._buckets)
        if retries + 1 > self._ratio * requests + self._floor:
            return False
        current[2] += 1
        return True


class CircuitBreaker:
    """closed -> (failure_threshold UNAVAILABLEs in a row) -> open -> half_open -> closed.

    While open every call fails fast. It half-opens after ``reset_seconds``, or as soon as
    ``ready()`` says the transport is connected again, so recovery follows the backend's return
    within gRPC's reconnect backoff rather than waiting out the reset period. In half_open one
    trial call goes through; its success closes the circuit, its failure opens it again.
    """

    def __init__(
        self,
        name: str,
        settings: CircuitBreakerSettings,
        *,
        ready: Callable[[], bool] = lambda: False,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.state: BreakerState = "closed"
        self._settings = settings
        self._ready = ready
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    def set_ready(self, ready: Callable[[], bool]) -> None:
        """Follow a new transport (the backend rebuilt its channel)."""
        self._ready = ready

    def allow(self) -> None:
        """Return if a call may go to the backend; raise CircuitOpen otherwise."""
        if self.state == "open" and (self._reset_due() or self._ready()):
            self.state = "half_open"
        if self.state == "closed":
            return
        if self.state == "half_open" and not self._trial_running:
            self._trial_running = True
            return
        raise CircuitOpen(self.name, self._retry_after())

    def _reset_due(self) -> bool:
        return self._clock() - self._opened_at >= self._settings.reset_seconds

    def _retry_after(self) -> float:
        return max(0.0, self._settings.reset_seconds - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        self._failures = 0
        self._trial_running = False
        self.state = "closed"

    def record_failure(self) -> None:
        """An UNAVAILABLE: the backend could not be reached."""
        self._failures += 1
        if self.state == "half_open" or self._failures >= self._settings.failure_threshold:
            self._open()

    def record_other(self) -> None:
        """The backend answered (even with an error) or the caller gave up: not evidence either way."""
        if self._trial_running:
            # A trial that ended without a verdict frees the slot for the next caller.
            self._trial_running = False

    def _open(self) -> None:
        self.state = "open"
        self._opened_at = self._clock()
        self._trial_running = False


@dataclass(frozen=True, slots=True)
class LimiterStats:
    active: int
    waiting: int


class ConcurrencyLimiter:
    """At most ``max_concurrency`` calls in flight and ``max_queue`` waiting; beyond that, shed.

    A bounded queue turns overload into a fast, explicit 503 with Retry-After instead of
    unbounded memory and latency. Waiting is bounded by the caller's deadline too.
    """

    def __init__(self, name: str, max_concurrency: int, max_queue: int) -> None:
        self.name = name
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._max_queue = max_queue
        self._active = 0
        self._waiting = 0

    @property
    def stats(self) -> LimiterStats:
        return LimiterStats(self._active, self._waiting)

    def slot(self, timeout: float | None) -> _Slot:
        """``async with limiter.slot(timeout):`` one call's place, waited for up to ``timeout``."""
        return _Slot(self, timeout)

    def _release(self) -> None:
        self._active -= 1
        self._semaphore.release()

    async def _acquire(self, timeout: float | None) -> None:
        if not self._semaphore.locked():
            # A free slot is taken at once; a deadline context would only cost time.
            await self._semaphore.acquire()
            return
        if self._waiting >= self._max_queue:
            raise Overloaded(
                f"Backend {self.name} is overloaded: {self._max_concurrency} requests in flight "
                f"and {self._max_queue} waiting",
                details={"backend": self.name},
                headers={"Retry-After": "1"},
            )
        self._waiting += 1
        try:
            async with asyncio.timeout(timeout):
                await self._semaphore.acquire()
        except TimeoutError:
            raise BackendTimeout("Deadline Exceeded while queued", details={"backend": self.name}) from None
        finally:
            self._waiting -= 1


class _Slot:
    """A limiter slot held for one block (a class, not a generator: it runs on every call)."""

    __slots__ = ("_limiter", "_timeout")

    def __init__(self, limiter: ConcurrencyLimiter, timeout: float | None) -> None:
        self._limiter = limiter
        self._timeout = timeout

    async def __aenter__(self) -> None:
        await self._limiter._acquire(self._timeout)
        self._limiter._active += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter._release()
