"""The real process: drain on SIGTERM, reload on SIGHUP, and --workers N with summed metrics."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fake_backend import Delay, FakeModelServer
from gateway_process import DEADLINE_SECONDS, GatewayProcess, gateway_config
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

IN_FLIGHT = 8
BACKEND_DELAY_SECONDS = 1.0


async def predict(session: aiohttp.ClientSession, url: str, value: float) -> tuple[int, Any]:
    async with session.post(f"{url}/model-serving/my-dep:predict", json={"instances": [value]}) as resp:
        return resp.status, await resp.json()


async def wait_calls(fake: FakeModelServer, method: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while len(fake.calls(method)) < count:
        assert loop.time() < deadline, f"only {len(fake.calls(method))} {method} calls reached the fake"
        await asyncio.sleep(0.01)


async def connection_refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_sigterm_drains_in_flight_requests_then_exits_0(tmp_path: Path, fake_backend: FakeModelServer) -> None:
    async with GatewayProcess(gateway_config(fake_backend.target), workdir=tmp_path) as gw:
        fake_backend.set_reply("Predict", Delay(BACKEND_DELAY_SECONDS))
        # A kept-alive connection of its own, to watch readiness from inside the drain.
        async with aiohttp.ClientSession() as watcher, aiohttp.ClientSession() as clients:
            async with watcher.get(f"{gw.url}/healthz") as resp:
                assert resp.status == 200
            flights = [asyncio.ensure_future(predict(clients, gw.url, float(i))) for i in range(IN_FLIGHT)]
            await wait_calls(fake_backend, "Predict", IN_FLIGHT)
            sent = time.perf_counter()
            gw.send(signal.SIGTERM)
            await gw.wait_for(lambda: "draining" in gw.stderr(), "the drain to start")
            async with watcher.get(f"{gw.url}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["checks"]["draining"]["ok"] is False
            assert await connection_refused(gw.port)
            answers = await asyncio.gather(*flights)
            assert await gw.wait_exit() == 0
            drained = time.perf_counter() - sent
    assert answers == [(200, {"predictions": [i * 0.5 + 2]}) for i in range(IN_FLIGHT)]
    assert "drained in" in gw.stderr()
    print(
        f"\n[drain] {IN_FLIGHT} requests in flight ({BACKEND_DELAY_SECONDS}s backend): "
        f"all 200, exit 0 {drained:.3f}s after SIGTERM"
    )


def with_deployment(config: dict[str, Any], name: str, model: str) -> dict[str, Any]:
    return {**config, "deployments": {**config["deployments"], name: {"model": model}}}


async def status_of(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status


async def test_sighup_reloads_deployments_and_rejects_an_invalid_file(
    tmp_path: Path, fake_backend: FakeModelServer
) -> None:
    config = gateway_config(fake_backend.target)
    async with GatewayProcess(config, workdir=tmp_path) as gw, aiohttp.ClientSession() as session:
        new_dep = f"{gw.url}/model-serving/new-dep"
        assert await status_of(session, new_dep) == 404
        fake_backend.set_reply("Predict", Delay(BACKEND_DELAY_SECONDS))
        in_flight = asyncio.ensure_future(predict(session, gw.url, 4.0))
        await wait_calls(fake_backend, "Predict", 1)

        gw.write_config(with_deployment(config, "new-dep", "multi"))
        gw.send(signal.SIGHUP)
        await gw.wait_log("config reloaded")
        assert await status_of(session, new_dep) == 200
        assert await in_flight == (200, {"predictions": [4.0]})  # started before, finished after the reload

        gw.write_config("deployments:\n  broken: {backend: default}\n")  # no model: invalid
        gw.send(signal.SIGHUP)
        await gw.wait_log("config reload rejected")
        assert "deployments.broken.model: is required" in gw.stderr()
        assert await status_of(session, new_dep) == 200
        assert await status_of(session, f"{gw.url}/model-serving/my-dep") == 200
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0


def per_worker_predicts(metrics_dir: Path, pid: int, scratch: Path) -> float:
    """One worker's predict count, from its own multiprocess files only."""
    scratch.mkdir()
    for file in metrics_dir.glob(f"*_{pid}.db"):
        (scratch / file.name).write_bytes(file.read_bytes())
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(scratch))  # type: ignore[no-untyped-call]
    return predicts_in(registry.collect())


def predicts_in(families: Any) -> float:
    return sum(
        s.value
        for family in families
        for s in family.samples
        if s.name == "tfs_gateway_http_requests_total" and s.labels.get("route") == "deployment_predict"
    )


async def test_workers_share_the_port_and_their_metrics_add_up(tmp_path: Path, fake_backend: FakeModelServer) -> None:
    metrics_dir = tmp_path / "prom"
    config = gateway_config(fake_backend.target, metrics={"multiprocess_dir": str(metrics_dir)})
    async with GatewayProcess(config, "--workers", "2", workdir=tmp_path, processes=2) as gw:
        pids = sorted({pid for _, pid in gw.serving_lines()})
        assert len(pids) == 2
        sent = 0
        # A fresh connection per request, so the kernel's SO_REUSEPORT hash spreads them.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            counts = [0.0, 0.0]
            for batch in range(20):
                answers = await asyncio.gather(*(predict(session, gw.url, 1.0) for _ in range(10)))
                assert all(status == 200 for status, _ in answers)
                sent += len(answers)
                counts = [per_worker_predicts(metrics_dir, pid, tmp_path / f"w{batch}-{pid}") for pid in pids]
                if min(counts) > 0:
                    break
            assert min(counts) > 0, f"one worker got every request: {counts}"
            async with session.get(f"{gw.url}/metrics") as resp:
                scrape = await resp.text()
        assert sum(counts) == sent
        assert predicts_in(text_string_to_metric_families(scrape)) == sent
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0
    print(f"\n[workers] {sent} requests split {counts[0]:g}/{counts[1]:g}; the scrape sums {sent}")


async def test_workers_status_page_counts_every_workers_traffic(tmp_path: Path, fake_backend: FakeModelServer) -> None:
    """Under --workers the status page reads the summed registry, as /metrics does, and sees all traffic."""
    config = gateway_config(fake_backend.target, metrics={"multiprocess_dir": str(tmp_path / "prom")})
    async with GatewayProcess(config, "--workers", "2", workdir=tmp_path, processes=2) as gw:
        connector = aiohttp.TCPConnector(force_close=True)  # spread over both workers
        async with aiohttp.ClientSession(connector=connector) as session:
            answers = await asyncio.gather(*(predict(session, gw.url, 1.0) for _ in range(20)))
            assert all(status == 200 for status, _ in answers)

            async def counted() -> float:
                async with session.get(f"{gw.url}/status.json") as resp:
                    rows = (await resp.json())["traffic"]
                return sum(row["requests_total"] for row in rows if row["name"] == "my-dep")

            # Each worker samples every few seconds: wait for a sample taken after the traffic.
            deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
            total = await counted()
            while total != len(answers) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.5)
                total = await counted()
        assert total == len(answers)
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0
