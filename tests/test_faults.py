"""Fault injection through real sockets: a gateway subprocess in front of the fake ModelServer.

Each scenario runs closed-loop load for a bounded time while the backend dies, restarts,
hangs, slows down, fails or sends garbage, and checks that every request got exactly one
answer with the right status (never a gateway-made 500, never a hang), that the gateway
recovered within 2 s of the backend's return, and that its memory stayed bounded. Figures
are printed (``pytest -s tests/test_faults.py``); assertions are on correctness only.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
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
RECOVERY_LIMIT_SECONDS = 2.0
RSS_GROWTH_LIMIT_KIB = 64 * 1024
FAST = {"retry": {"initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.05}}


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
    load = Load()
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def worker() -> None:
            while time.monotonic() < deadline:
                await one_request(http, gw.url + PREDICT_URL, load, headers or {})

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return load


async def during(
    load: Awaitable[Load], *steps: tuple[float, Callable[[], Awaitable[None]]]
) -> tuple[Load, list[float]]:
    """Run ``load`` while each step runs at its offset in seconds; returns when each step finished."""
    start = time.monotonic()
    done: list[float] = []

    async def play() -> None:
        for offset, step in steps:
            await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
            await step()
            done.append(time.monotonic())

    result, _ = await asyncio.gather(load, play())
    return result, done


def report(name: str, load: Load, gw: GatewayProcess, rss_before: int, recovery: float | None = None) -> None:
    rss, peak = gw.memory_kib()
    recovered = "" if recovery is None else f" recovery={recovery:.2f}s"
    print(
        f"\n[fault:{name}] sent={len(load.outcomes)} by_status={load.by_status()} hung={load.hung}"
        f"{recovered} rss={rss / 1024:.1f}MiB (start {rss_before / 1024:.1f}MiB) peak={peak / 1024:.1f}MiB"
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
    """One good request (fills the signature cache), then the RSS to compare against."""
    load = await run_load(gw, 0.3, concurrency=2)
    assert load.by_status() == {200: len(load.outcomes)}, load.by_status()
    return gw.memory_kib()[0]


async def test_backend_killed_mid_load_then_back(fake: FakeModelServer) -> None:
    async with GatewayProcess(settings_for(fake)) as gw:
        rss = await warm(gw)
        load, (killed, back) = await during(run_load(gw, 5.0), (1.0, fake.stop), (2.5, fake.start))
        recovery = load.recovery_after(back)
        report("killed-mid-load", load, gw, rss, recovery)
        check(load, {200, 503}, gw, rss)
        assert load.reasons(503) <= {"backend_unavailable", "circuit_open"}
        assert recovery <= RECOVERY_LIMIT_SECONDS
        assert any(o.status == 503 for o in load.outcomes if killed <= o.started <= back)


async def test_backend_restarted_under_load(fake: FakeModelServer) -> None:
    async with GatewayProcess(settings_for(fake)) as gw:
        rss = await warm(gw)
        load, (back,) = await during(run_load(gw, 3.0), (1.0, fake.restart))
        recovery = load.recovery_after(back)
        report("restarted", load, gw, rss, recovery)
        check(load, {200, 503}, gw, rss)
        assert recovery <= RECOVERY_LIMIT_SECONDS


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
    async with FakeModelServer() as second:
        install_models(second)
        backend = {"health_check": {"interval_seconds": 0.5, "timeout_seconds": 0.25, "model": MODEL}}
        async with GatewayProcess(settings_for(fake, second, backend=backend)) as gw:
            rss = await warm(gw)
            load, (_, back) = await during(run_load(gw, 4.0), (1.0, second.stop), (2.5, second.start))
            report("one-of-two-down", load, gw, rss, load.recovery_after(back))
            check(load, {200}, gw, rss)
            second.clear_calls()
            after = await run_load(gw, 1.5)
            assert after.by_status() == {200: len(after.outcomes)}
            assert second.calls("Predict"), "the returning target must get traffic again"
