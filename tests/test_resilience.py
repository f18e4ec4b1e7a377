"""The resilience state machines, driven by a fake clock (no sleeping, no timing assertions)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.backend.resilience import CircuitBreaker, ConcurrencyLimiter, RetryBudget, backoff_seconds
from gateway.config import CircuitBreakerSettings, RetrySettings
from gateway.errors import CircuitOpen, Overloaded


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_is_jittered_and_capped() -> None:
    settings = RetrySettings(initial_backoff_seconds=0.1, max_backoff_seconds=0.3)
    assert backoff_seconds(1, settings, rand=lambda: 1.0) == pytest.approx(0.1)
    assert backoff_seconds(2, settings, rand=lambda: 1.0) == pytest.approx(0.2)
    assert backoff_seconds(5, settings, rand=lambda: 1.0) == pytest.approx(0.3)
    assert backoff_seconds(5, settings, rand=lambda: 0.5) == pytest.approx(0.15)


def test_retry_budget_is_a_share_of_recent_requests() -> None:
    clock = Clock()
    budget = RetryBudget(RetrySettings(budget_ratio=0.2, min_retries_per_second=0), clock=clock)
    for _ in range(10):
        budget.record_request()
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]
    clock.now += 11  # the window moved on: old requests no longer pay for retries
    assert not budget.try_spend()


def test_retry_budget_floor() -> None:
    budget = RetryBudget(RetrySettings(budget_ratio=0, min_retries_per_second=1), window_seconds=2, clock=Clock())
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]


def test_breaker_opens_fails_fast_and_half_opens() -> None:
    clock = Clock()
    breaker = CircuitBreaker("b", CircuitBreakerSettings(failure_threshold=2, reset_seconds=5), clock=clock)
    breaker.allow()
    breaker.record_failure()
    breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as raised:
        breaker.allow()
    assert raised.value.headers["Retry-After"] == "5" and raised.value.http_status == 503
    clock.now += 5
    breaker.allow()  # the trial
    assert breaker.state == "half_open"
    with pytest.raises(CircuitOpen):
        breaker.allow()  # one trial at a time
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 5
    breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"


def test_breaker_half_opens_as_soon_as_transport_is_ready() -> None:
    ready = False
    breaker = CircuitBreaker("b", CircuitBreakerSettings(failure_threshold=1), ready=lambda: ready, clock=Clock())
    breaker.record_failure()
    with pytest.raises(CircuitOpen):
        breaker.allow()
    ready = True
    breaker.allow()
    assert breaker.state == "half_open"


def test_breaker_ignores_answers_that_are_not_transport_failures() -> None:
    breaker = CircuitBreaker("b", CircuitBreakerSettings(failure_threshold=2), clock=Clock())
    breaker.record_failure()
    breaker.record_other()
    breaker.record_failure()
    assert breaker.state == "open"  # consecutive UNAVAILABLEs; an INVALID_ARGUMENT is no reset


async def test_limiter_queues_then_sheds() -> None:
    limiter = ConcurrencyLimiter("b", max_concurrency=1, max_queue=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot(None):
            await release.wait()

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    queued = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert limiter.stats.active == 1 and limiter.stats.waiting == 1
    with pytest.raises(Overloaded) as raised:
        async with limiter.slot(None):
            pass
    assert raised.value.headers["Retry-After"] == "1"
    release.set()
    await asyncio.gather(first, queued)
    assert limiter.stats.active == 0 and limiter.stats.waiting == 0


async def test_limiter_wait_is_bounded_by_the_deadline() -> None:
    from gateway.errors import BackendTimeout

    limiter = ConcurrencyLimiter("b", max_concurrency=1, max_queue=5)
    async with limiter.slot(None):
        with pytest.raises(BackendTimeout):
            async with limiter.slot(0.01):
                pass
    assert limiter.stats.waiting == 0
