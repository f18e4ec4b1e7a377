"""Load generators: wrk for HTTP (with a small Python fallback), and a direct gRPC client."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import numpy as np

from bench.backend import OPTIONS
from bench.cases import Case
from bench.floor import _rpc_path

LUA = Path(__file__).with_name("lua") / "request.lua"
_RESULT = re.compile(r"BENCH_RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)")


@dataclass(frozen=True, slots=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk(url: str, case: Case, body_file: Path, concurrency: int, seconds: float) -> Load:
    env = {
        **os.environ,
        "BENCH_METHOD": case.method,
        "BENCH_CASE": case.name,
        "BENCH_BODY": str(body_file) if case.body else "",
        "BENCH_HEADERS": "\n".join(f"{name}: {value}" for name, value in case.headers),
    }
    # One wrk thread: on 2 cores, every extra load-generator thread steals from the server.
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "60s",
        "-s",
        str(LUA),
        url,
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    match = _RESULT.search(out)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    n, micros, p50, p99, status_errors, socket_errors = (int(g) for g in match.groups())
    return Load(n, micros / 1e6, p50 / 1e3, p99 / 1e3, status_errors + socket_errors)


async def _python_load(url: str, case: Case, concurrency: int, seconds: float) -> Load:
    latencies: list[float] = []
    errors = 0
    headers = {**dict(case.headers), "X-Bench-Case": case.name}
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            async with session.request(case.method, url, data=case.body or None, headers=headers) as response:
                await response.read()
                errors += response.status != 200
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return _summary(latencies, time.perf_counter() - started, errors)


def http_load(url: str, case: Case, body_file: Path, concurrency: int, seconds: float) -> Load:
    """wrk when installed; otherwise a slower Python client (fine for smoke runs, not for timings)."""
    if have_wrk():
        return wrk(url, case, body_file, concurrency, seconds)
    return asyncio.run(_python_load(url, case, concurrency, seconds))


def _summary(latencies: list[float], seconds: float, errors: int) -> Load:
    ms = np.asarray(latencies or [0.0]) * 1e3
    return Load(len(latencies), seconds, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), errors)


async def _direct(target: str, case: Case, concurrency: int, seconds: float) -> Load:
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target, options=OPTIONS) as channel:
        call = channel.unary_unary(_rpc_path(case.rpc), None, None)
        await call(case.grpc_request)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                await call(case.grpc_request)
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return _summary(latencies, elapsed, 0)


def direct_grpc(target: str, case: Case, concurrency: int, seconds: float) -> Load:
    """The floor of floors: a grpc.aio client sending pre-serialised bytes straight to the backend."""
    return asyncio.run(_direct(target, case, concurrency, seconds))
