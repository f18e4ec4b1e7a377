"""Fault injection through real sockets: a gateway subprocess in front of the fake ModelServer.

Each scenario runs closed-loop load while the backend dies, restarts, hangs, slows down,
fails or sends garbage, and checks that every request got exactly one answer with the right
status (never a gateway-made 500, never a hang), that the gateway recovered by itself once the
backend was back, and that its memory stayed bounded. Figures are printed
(``pytest -s tests/test_faults.py``); assertions are on correctness only.

Phases are driven by events, not by a clock: a scenario waits until the load has *seen*
something (answers, a 503 after the kill, the gateway's log line that a target is out, the
first 200 after the return), each wait capped by a generous ``PHASE_CAP_SECONDS`` that only a
real hang reaches. Recovery is proved without timing it: the circuit breaker's reset timer is
set far beyond the cap, so only the transport's return (``CircuitBreaker(ready=...)``) can close
the circuit in time, and no request that starts after the first good answer may fail again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
import pytest
from fake_backend import HANG, MALFORMED, Abort, Delay, FakeModelServer
from gateway_process import GatewayProcess
from harness import MODEL, base_settings, install_models, merge

pytestmark = pytest.mark.slow

PREDICT_URL = f"/v1/models/{MODEL}:predict"
BODY = b'{"instances": [1.0, 2.0, 5.0]}'
CLIENT_TIMEOUT_SECONDS = 15.0  # far above every deadline below: reaching it means the gateway hung
PHASE_CAP_SECONDS = 30.0  # a scenario phase that waits this long has found a hang, not slowness
RSS_GROWTH_LIMIT_KIB = 64 * 1024
FAST = {"retry": {"initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.05}}
# Far beyond PHASE_CAP_SECONDS: a circuit that closes in time closed because the backend came back.
NO_TIMER_RESET = {"circuit_breaker": {"reset_seconds": 600.0}}
WARM_REQUESTS = 20
SETTLED_ANSWERS = 200  # good answers in a row that show a recovery holds


@dataclass
class Outcome:
    started: float
    ended: float
    status: int  # 0: no answer (hung or connection error)
    reason: str = ""


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    hung: int = 0
    mismatched_ids: int = 0

    def by_status(self) -> dict[int, int]:
        return dict(sorted(Counter(o.status for o in self.outcomes).items()))

    def reasons(self, status: int) -> set[str]:
        return {o.reason for o in self.outcomes if o.status == status}

    def recovery_after(self, moment: float) -> float:
        """Seconds from ``moment`` to the start of the last failed request (0 if none failed after it)."""
        late = [o.started - moment for o in self.outcomes if o.status != 200 and o.started >= moment]
        return max(late, default=0.0)

    def started_after(self, moment: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.started >= moment]

    def first_ok_after(self, moment: float) -> Outcome | None:
        """The first request started after ``moment`` that got a 200 (by start time)."""
        good = [o for o in self.started_after(moment) if o.status == 200]
        return min(good, key=lambda o: o.started, default=None)

    def settled_after(self, moment: float, answers: int = SETTLED_ANSWERS) -> bool:
        """A 200 came after ``moment``, and ``answers`` more requests started after it ended."""
        first = self.first_ok_after(moment)
        return first is not None and len(self.started_after(first.ended)) >= answers

    def relapses_after(self, moment: float) -> list[Outcome]:
        """Failures among requests started after the first 200 following ``moment`` ended."""
        first = self.first_ok_after(moment)
        return [] if first is None else [o for o in self.started_after(first.ended) if o.status != 200]

    def failed_before(self, moment: float) -> list[Outcome]:
        """Failures answered before ``moment``."""
        return [o for o in self.outcomes if o.status != 200 and o.ended < moment]


async def one_request(http: aiohttp.ClientSession, url: str, load: Load, headers: dict[str, str]) -> None:
    request_id = uuid.uuid4().hex
    started = time.monotonic()
    try:
        async with http.post(url, data=BODY, headers={**headers, "X-Request-ID": request_id}) as resp:
            body = await resp.json(content_type=None)
            if resp.headers.get("X-Request-ID") != request_id:
                load.mismatched_ids += 1
            reason = body.get("reason", "") if isinstance(body, dict) else ""
            load.outcomes.append(Outcome(started, time.monotonic(), resp.status, reason))
    except (TimeoutError, aiohttp.ClientError):
        load.hung += 1
        load.outcomes.append(Outcome(started, time.monotonic(), 0))


async def run_load(
    gw: GatewayProcess, seconds: float, *, concurrency: int = 16, headers: dict[str, str] | None = None
) -> Load:
    """Closed-loop load for about ``seconds``; every worker sends at least one request, however
    late it starts on a busy machine, so a load never comes back empty."""
    load = Load()
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def worker() -> None:
            while True:
                await one_request(http, gw.url + PREDICT_URL, load, headers or {})
                if time.monotonic() >= deadline:
                    return

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return load


class Traffic:
    """Closed-loop load that runs until the scenario has seen what it waits for.

    ``async with Traffic(gw) as traffic: ... await traffic.until(lambda load: ..., "what")``
    """

    def __init__(self, gw: GatewayProcess, *, concurrency: int = 16) -> None:
        self.url = gw.url + PREDICT_URL
        self.concurrency = concurrency
        self.load = Load()
        self._stop = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Traffic:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS))
        self._workers = [asyncio.ensure_future(self._worker(self._http)) for _ in range(self.concurrency)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._workers)
        if self._http is not None:
            await self._http.close()

    async def _worker(self, http: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            await one_request(http, self.url, self.load, {})

    async def until(self, condition: Callable[[Load], bool], what: str) -> float:
        """Wait until ``condition(load)`` holds; the moment it was seen."""
        cap = time.monotonic() + PHASE_CAP_SECONDS
        while not condition(self.load):
            assert time.monotonic() < cap, f"waited {PHASE_CAP_SECONDS}s for {what}: {self.load.by_status()}"
            await asyncio.sleep(0.01)
        return time.monotonic()

    async def answers(self, count: int, what: str) -> float:
        """Wait for ``count`` more answers."""
        target = len(self.load.outcomes) + count
        return await self.until(lambda load: len(load.outcomes) >= target, what)


def report(name: str, load: Load, gw: GatewayProcess, rss_before: int, recovery: float | None = None) -> None:
    rss, peak = gw.memory_kib()
    recovered = "" if recovery is None else f" recovery={recovery:.2f}s"
    print(
        f"\n[fault:{name}] sent={len(load.outcomes)} by_status={load.by_status()} hung={load.hung}"
        f"{recovered} rss={rss / 1024:.1f}MiB (start {rss_before / 1024:.1f}MiB) peak={peak / 1024:.1f}MiB"
        f" reasons={dict(Counter(o.reason for o in load.outcomes if o.status != 200))}"
    )


def check(load: Load, allowed: set[int], gw: GatewayProcess, rss_before: int) -> None:
    assert load.outcomes, "no request was sent"
    assert load.hung == 0, f"{load.hung} requests got no answer"
    assert load.mismatched_ids == 0, "an answer came back for another request"
    assert set(load.by_status()) <= allowed, load.by_status()
    assert "internal" not in {o.reason for o in load.outcomes}, "the gateway itself failed"
    assert gw.memory_kib()[0] - rss_before < RSS_GROWTH_LIMIT_KIB


@pytest.fixture
async def fake() -> Any:
    async with FakeModelServer() as server:
        install_models(server)
        yield server


def settings_for(*fakes: FakeModelServer, backend: dict[str, Any] | None = None) -> dict[str, Any]:
    settings = merge(base_settings(fakes[0]), {"backends": {"default": {**FAST, **(backend or {})}}})
    settings["backends"]["default"]["targets"] = [f.target for f in fakes]
    settings["server"] = {"access_log": False, "log_level": "error"}
    return settings


async def warm(gw: GatewayProcess) -> int:
    """A fixed number of good requests (fills the signature cache, connects), then the RSS to compare against."""
    load = Load()
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for _ in range(WARM_REQUESTS // 2):
            await asyncio.gather(*(one_request(http, gw.url + PREDICT_URL, load, {}) for _ in range(2)))
    assert load.by_status() == {200: WARM_REQUESTS}, load.by_status()
    return gw.memory_kib()[0]


def check_recovery(load: Load, back: float) -> None:
    """Recovered by itself once the backend was back, and stayed recovered."""
    relapses = load.relapses_after(back)
    assert not relapses, f"{len(relapses)} requests failed after the first good answer: {relapses[:5]}"


async def test_backend_killed_mid_load_then_back(fake: FakeModelServer) -> None:
    async with GatewayProcess(settings_for(fake, backend=NO_TIMER_RESET)) as gw:
        rss = await warm(gw)
        async with Traffic(gw) as traffic:
            await traffic.answers(50, "answers before the kill")
            killed = time.monotonic()
            await fake.stop()
            await traffic.until(lambda load: any(o.status == 503 for o in load.started_after(killed)), "a 503")
            await fake.start()
            back = time.monotonic()
            await traffic.until(lambda load: load.settled_after(back), "the recovery")
        load = traffic.load
        recovery = load.recovery_after(back)
        report("killed-mid-load", load, gw, rss, recovery)
        check(load, {200, 503}, gw, rss)
        assert load.reasons(503) <= {"backend_unavailable", "circuit_open"}
        assert not load.failed_before(killed), "no failure before the backend died"
        check_recovery(load, back)


async def test_backend_restarted_under_load(fake: FakeModelServer) -> None:
    async with GatewayProcess(settings_for(fake, backend=NO_TIMER_RESET)) as gw:
        rss = await warm(gw)
        async with Traffic(gw) as traffic:
            await traffic.answers(50, "answers before the restart")
            restarting = time.monotonic()
            await fake.restart()
            back = time.monotonic()
            await traffic.until(lambda load: load.settled_after(back), "the recovery")
        load = traffic.load
        recovery = load.recovery_after(back)
        report("restarted", load, gw, rss, recovery)
        check(load, {200, 503}, gw, rss)
        assert load.reasons(503) <= {"backend_unavailable", "circuit_open"}
        assert not load.failed_before(restarting), "no failure before the restart"
        check_recovery(load, back)


async def test_backend_hangs(fake: FakeModelServer) -> None:
    async with GatewayProcess(settings_for(fake)) as gw:
        rss = await warm(gw)
        fake.set_reply("Predict", HANG)
        load = await run_load(gw, 2.0, headers={"X-Request-Timeout": "0.3"})
        report("hang", load, gw, rss)
        check(load, {504}, gw, rss)
        assert fake.cancelled, "the gateway must cancel the backend call at the deadline"
        fake.set_reply("Predict", None)
        after = await run_load(gw, 0.5)
        assert after.by_status() == {200: len(after.outcomes)}


async def test_backend_slow(fake: FakeModelServer) -> None:
    async with GatewayProcess(settings_for(fake)) as gw:
        rss = await warm(gw)
        fake.set_reply("Predict", Delay(0.2))
        load = await run_load(gw, 2.0)
        report("slow", load, gw, rss)
        check(load, {200}, gw, rss)
        short = await run_load(gw, 1.0, headers={"X-Request-Timeout": "0.05"})
        report("slow-short-deadline", short, gw, rss)
        check(short, {504}, gw, rss)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.INTERNAL, 500),
    ],
)
async def test_backend_non_ok_status(fake: FakeModelServer, code: grpc.StatusCode, status: int) -> None:
    async with GatewayProcess(settings_for(fake)) as gw:
        rss = await warm(gw)
        fake.set_reply("Predict", Abort(code, "the model says no"))
        load = await run_load(gw, 1.0, concurrency=4)
        report(f"status-{code.name}", load, gw, rss)
        check(load, {status}, gw, rss)


async def test_backend_malformed_reply(fake: FakeModelServer) -> None:
    async with GatewayProcess(settings_for(fake)) as gw:
        rss = await warm(gw)
        fake.set_reply("Predict", MALFORMED)
        load = await run_load(gw, 1.0, concurrency=4)
        report("malformed", load, gw, rss)
        check(load, {502}, gw, rss)
        assert load.reasons(502) == {"bad_backend_response"}


async def test_one_of_two_targets_down(fake: FakeModelServer) -> None:
    """One target of two dies and comes back. The requests caught on it as it dies may fail (503,
    after their retries); once the prober has taken it out (its log line is the event), every
    request is a 200, through the outage, the return and after; and the returning target gets
    traffic again."""
    async with FakeModelServer() as second:
        install_models(second)
        backend = {"health_check": {"interval_seconds": 0.5, "timeout_seconds": 0.25, "model": MODEL}}
        settings = settings_for(fake, second, backend=backend)
        settings["server"]["log_level"] = "info"  # the prober's verdicts are the events waited on
        out_line = f"target {second.target} is unhealthy"
        in_line = f"target {second.target} is healthy"
        async with GatewayProcess(settings) as gw:
            rss = await warm(gw)
            async with Traffic(gw) as traffic:
                await traffic.answers(50, "answers with both targets up")
                await second.stop()
                await gw.wait_log(out_line)
                out = time.monotonic()
                await traffic.answers(SETTLED_ANSWERS, "answers while one target is out")
                second.clear_calls()
                await second.start()
                await gw.wait_log(in_line)
                await traffic.until(lambda _: bool(second.calls("Predict")), "traffic to the returning target")
                await traffic.answers(SETTLED_ANSWERS, "answers with both targets back")
            load = traffic.load
            report("one-of-two-down", load, gw, rss, load.recovery_after(out))
            check(load, {200, 503}, gw, rss)
            assert load.reasons(503) <= {"backend_unavailable", "circuit_open"}
            late = [o for o in load.started_after(out) if o.status != 200]
            assert not late, f"{len(late)} failures after the dead target was taken out: {late[:5]}"
