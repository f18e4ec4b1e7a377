"""The loop watchdog, through a real gateway process and real sockets.

The process is ``tests/watchdog_launcher.py``: the normal CLI plus a test-only route that blocks
the event loop on purpose. The tests check four things:
- a stall is counted and logged with its route and request id;
- the lag histogram fills;
- SIGTERM during a stuck loop ends the process with status 70, in each ``--workers`` child too;
- a loop that is busy but answering, or healthy, still drains and exits 0.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _pytest.logging import LogCaptureFixture
from fake_backend import FakeModelServer
from gateway_process import GatewayProcess, gateway_config
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import ConfigError, ServerSettings, load_settings
from gateway.ops.metrics import Metrics
from gateway.process.watchdog import EX_SOFTWARE, Watchdog, stop_signals, watching

pytestmark = pytest.mark.slow

LAUNCHER = Path(__file__).with_name("watchdog_launcher.py")
GRACE_SECONDS = 1.0
# Exit 70 is due about GRACE_SECONDS after SIGTERM; this bound only catches "never" (a SIGKILL wait).
EXIT_BOUND_SECONDS = 20.0
STALLS = "tfs_gateway_event_loop_stalls_total"
LAG = "tfs_gateway_event_loop_lag_seconds"


class LaunchedGateway(GatewayProcess):
    """``GatewayProcess`` running the launcher (CLI + ``/test/block``) instead of ``python -m gateway``."""

    program = (str(LAUNCHER),)


def watchdog_config(fake: FakeModelServer) -> dict[str, Any]:
    return gateway_config(fake.target, server={"shutdown_grace_seconds": GRACE_SECONDS})


def block_url(url: str, seconds: float, **params: str) -> str:
    query = "".join(f"&{key}={value}" for key, value in params.items())
    return f"{url}/test/block?seconds={seconds}{query}"


async def blocked_request(session: aiohttp.ClientSession, url: str, request_id: str) -> int:
    async with session.get(url, headers={"X-Request-ID": request_id}) as resp:
        await resp.read()
        return resp.status


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """The watchdog's series: ``name`` or ``name{le=...}`` -> value."""
    async with session.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        sample.name + (f"{{le={sample.labels['le']}}}" if "le" in sample.labels else ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith((STALLS, LAG))
    }


async def wait_lag_samples(gw: GatewayProcess, session: aiohttp.ClientSession, count: int) -> dict[str, float]:
    """A scrape once the heartbeat has run ``count`` times: the histogram fills while the process idles."""
    scraped: dict[str, float] = {}

    async def enough() -> bool:
        nonlocal scraped
        scraped = await scrape(session, gw.url)
        return scraped.get(f"{LAG}_count", 0) >= count

    deadline = time.monotonic() + 20
    while not await enough():
        assert time.monotonic() < deadline, f"lag histogram still has {scraped.get(f'{LAG}_count')} samples"
        await asyncio.sleep(0.1)
    return scraped


def above(scraped: dict[str, float], bound: str) -> float:
    return scraped[f"{LAG}_count"] - scraped[f"{LAG}_bucket{{le={bound}}}"]


async def test_a_stall_is_counted_once_and_names_its_route_and_request_id(
    tmp_path: Path, fake_backend: FakeModelServer
) -> None:
    async with (
        LaunchedGateway(watchdog_config(fake_backend), workdir=tmp_path) as gw,
        aiohttp.ClientSession() as session,
    ):
        before = await wait_lag_samples(gw, session, 5)
        assert await blocked_request(session, block_url(gw.url, 0.5), "stall-one") == 200
        await gw.wait_log("event loop unblocked after")
        after = await scrape(session, gw.url)
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0
    assert after[STALLS] - before[STALLS] >= 1  # others only if this busy machine stalled the loop too
    assert after[f"{LAG}_sum"] - before[f"{LAG}_sum"] >= 0.3  # the heartbeat ran >= 0.4 s late
    assert above(after, "0.25") - above(before, "0.25") >= 1
    warnings = [line for line in gw.stderr().splitlines() if "request_id=stall-one" in line]
    assert len(warnings) == 1, warnings  # counted and logged once, not again when it ended
    assert re.search(
        r"WARNING tfs_gateway\.watchdog: event loop blocked for 0\.\d+s so far "
        r"\(server\.loop_stall_warning_seconds=0\.25\): route=test_block request_id=stall-one "
        r"at tests/watchdog_launcher\.py:\d+ in block",
        warnings[0],
    ), warnings[0]
    print(f"\n[watchdog] {warnings[0]}")


@pytest.mark.parametrize(
    ("spin", "signum"),
    [(False, signal.SIGTERM), (True, signal.SIGTERM), (False, signal.SIGINT)],
    ids=["sleep-sigterm", "python-busy-loop-sigterm", "sleep-sigint"],
)
async def test_a_stop_signal_during_a_stuck_loop_exits_70_after_the_grace_period(
    tmp_path: Path, fake_backend: FakeModelServer, spin: bool, signum: signal.Signals
) -> None:
    async with (
        LaunchedGateway(watchdog_config(fake_backend), workdir=tmp_path) as gw,
        aiohttp.ClientSession() as session,
    ):
        url = block_url(gw.url, 60, spin="1" if spin else "0")
        stuck = asyncio.ensure_future(blocked_request(session, url, "stuck-one"))
        await gw.wait_log("request_id=stuck-one")  # the loop is inside the handler now
        sent = time.monotonic()
        gw.send(signum)
        code = await gw.wait_exit()
        exited = time.monotonic() - sent
        with pytest.raises(aiohttp.ClientError):
            await stuck
    assert code == EX_SOFTWARE, gw.stderr()
    assert exited < EXIT_BOUND_SECONDS
    critical = [line for line in gw.stderr().splitlines() if " CRITICAL " in line]
    assert len(critical) == 1, gw.stderr()
    assert "event loop unresponsive for" in critical[0]
    assert "(server.shutdown_grace_seconds=1): route=test_block request_id=stuck-one" in critical[0]
    assert critical[0].endswith("exiting with status 70 without draining")
    print(f"\n[watchdog] exit {code} {exited:.2f}s after {signum.name} (grace {GRACE_SECONDS}s): {critical[0]}")


async def test_sigterm_during_a_busy_loop_that_still_answers_drains_and_exits_0(
    tmp_path: Path, fake_backend: FakeModelServer
) -> None:
    # 8 stalls of 0.4 s: each is over the 0.25 s threshold, none as long as the 1 s grace, 3.2 s in all.
    async with (
        LaunchedGateway(watchdog_config(fake_backend), workdir=tmp_path) as gw,
        aiohttp.ClientSession() as session,
    ):
        url = block_url(gw.url, 0.4, chunks="8")
        busy = asyncio.ensure_future(blocked_request(session, url, "busy-one"))
        await gw.wait_log("request_id=busy-one")
        gw.send(signal.SIGTERM)
        code = await gw.wait_exit()
        # Cancelled when the grace period ran out, or answered if the machine was quick.
        await asyncio.gather(busy, return_exceptions=True)
    assert code == 0, gw.stderr()
    assert "draining" in gw.stderr()
    assert "event loop unresponsive" not in gw.stderr()


async def test_sigterm_on_a_healthy_loop_drains_and_exits_0(tmp_path: Path, fake_backend: FakeModelServer) -> None:
    async with (
        LaunchedGateway(watchdog_config(fake_backend), workdir=tmp_path) as gw,
        aiohttp.ClientSession() as session,
    ):
        assert await blocked_request(session, block_url(gw.url, 0), "quick-one") == 200
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0
    assert "drained in" in gw.stderr()
    assert "request_id=quick-one" not in gw.stderr()
    assert "event loop unresponsive" not in gw.stderr()


async def test_a_stuck_worker_exits_70_and_the_supervisor_reports_it(
    tmp_path: Path, fake_backend: FakeModelServer
) -> None:
    config = watchdog_config(fake_backend)
    async with (
        LaunchedGateway(config, "--workers", "2", workdir=tmp_path, processes=2) as gw,
        aiohttp.ClientSession() as session,
    ):
        stuck = asyncio.ensure_future(blocked_request(session, block_url(gw.url, 60), "stuck-worker"))
        await gw.wait_log("request_id=stuck-worker")
        gw.send(signal.SIGTERM)
        code = await gw.wait_exit()
        await asyncio.gather(stuck, return_exceptions=True)
    assert code == 1, gw.stderr()  # the supervisor: a worker did not exit 0
    assert re.search(r"CRITICAL .* request_id=stuck-worker at .*; exiting with status 70", gw.stderr()), gw.stderr()
    assert re.search(r"workers exited with \[(70, 0|0, 70)\]", gw.stderr()), gw.stderr()


@pytest.mark.parametrize("value", [0, -1])
def test_the_stall_threshold_must_be_positive(value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={}, overrides={"server": {"loop_stall_warning_seconds": value}})
    assert caught.value.path == "server.loop_stall_warning_seconds"


async def test_a_stall_the_thread_never_saw_is_counted_once_when_it_ends(
    monkeypatch: pytest.MonkeyPatch, caplog: LogCaptureFixture
) -> None:
    # As when one C call holds the GIL throughout: the monitor thread cannot look.
    monkeypatch.setattr(Watchdog, "_look", lambda self, now, server: None)
    registry = CollectorRegistry()
    server = ServerSettings(loop_stall_warning_seconds=0.1)
    with watching(Metrics(registry), lambda: server):
        await asyncio.sleep(0.15)
        time.sleep(0.4)  # blocks this test's own loop
        await asyncio.sleep(0.25)  # the late heartbeat runs, then one on time
    assert registry.get_sample_value(STALLS) == 1
    assert (registry.get_sample_value(f"{LAG}_sum") or 0) >= 0.25  # late by the block less one interval at most
    assert caplog.text.count("it ended before the watchdog could look") == 1


async def test_stop_signals_reach_the_loop_and_are_restored_after() -> None:
    signum = signal.SIGUSR1  # not one pytest itself relies on
    before = signal.getsignal(signum)
    drained = asyncio.Event()
    with watching(Metrics(CollectorRegistry()), ServerSettings) as dog, stop_signals(dog, drained.set, [signum]):
        os.kill(os.getpid(), signum)
        await asyncio.wait_for(drained.wait(), 10)
    assert signal.getsignal(signum) is before
