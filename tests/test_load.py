"""Load through real sockets: wrk against a gateway subprocess for a few seconds.

Figures (requests, p50/p99) are printed (``pytest -s tests/test_load.py``); the assertions
are about correctness only: no unexpected statuses, no socket errors, and when the offered
concurrency is far above ``max_concurrency + max_queue``, shedding with 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_backend import Delay, FakeModelServer
from gateway_process import GatewayProcess
from harness import MODEL, base_settings, install_models, merge

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("load.lua")
URL = f"/v1/models/{MODEL}:predict"


@dataclass
class WrkResult:
    statuses: dict[int, int] = field(default_factory=dict)
    no_retry_after: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    socket_errors: tuple[int, ...] = ()


def parse(output: str) -> WrkResult:
    result = WrkResult()
    for line in output.splitlines():
        key, *values = line.split()
        if key == "STATUS":
            result.statuses[int(values[0])] = int(values[1])
        elif key == "NO_RETRY_AFTER":
            result.no_retry_after = int(values[0])
        elif key in ("P50_US", "P99_US"):
            setattr(result, key.lower().replace("_us", "_ms"), int(values[0]) / 1000)
        elif key == "ERRORS":
            result.socket_errors = tuple(int(v) for v in values)
    return result


async def wrk(url: str, *, connections: int, seconds: int = 3, threads: int = 2) -> WrkResult:
    wrk_path = shutil.which("wrk")
    assert wrk_path, "wrk is required (apt-get install wrk)"
    proc = await asyncio.create_subprocess_exec(
        wrk_path,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    assert proc.returncode == 0, err.decode()
    return parse(out.decode())


def gateway_settings(fake: FakeModelServer, backend: dict[str, object] | None = None) -> dict[str, object]:
    overrides = {"server": {"access_log": False, "log_level": "error"}, "backends": {"default": backend or {}}}
    return merge(base_settings(fake), overrides)


async def test_steady_load() -> None:
    async with FakeModelServer() as fake:
        install_models(fake)
        async with GatewayProcess(gateway_settings(fake)) as gw:
            result = await wrk(gw.url + URL, connections=32)
            total = sum(result.statuses.values())
            print(
                f"\n[load:steady] requests={total} statuses={result.statuses} p50={result.p50_ms:.1f}ms "
                f"p99={result.p99_ms:.1f}ms peak_rss={gw.memory_kib()[1] / 1024:.1f}MiB"
            )
            assert set(result.statuses) == {200}
            assert result.socket_errors == (0, 0, 0, 0)


async def test_shedding_far_above_limits() -> None:
    async with FakeModelServer() as fake:
        install_models(fake)
        fake.set_reply("Predict", Delay(0.05))
        backend = {"max_concurrency": 4, "max_queue": 4}
        async with GatewayProcess(gateway_settings(fake, backend)) as gw:
            result = await wrk(gw.url + URL, connections=256, threads=4)
            total = sum(result.statuses.values())
            print(
                f"\n[load:shedding] requests={total} statuses={result.statuses} p50={result.p50_ms:.1f}ms "
                f"p99={result.p99_ms:.1f}ms peak_rss={gw.memory_kib()[1] / 1024:.1f}MiB"
            )
            assert set(result.statuses) == {200, 503}
            assert result.no_retry_after == 0
            assert result.socket_errors == (0, 0, 0, 0)
