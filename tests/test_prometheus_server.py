"""A real Prometheus server (Debian's ``prometheus``) scrapes a running gateway; read the series back."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from fake_backend import FakeModelServer
from gateway_process import DEADLINE_SECONDS, GatewayProcess, gateway_config

pytestmark = pytest.mark.slow

REQUESTS = 5
# Prometheus starts, then scrapes every second; a minute is a generous bound on a loaded machine.
QUERY_DEADLINE_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def gateway(tmp_path: Path, fake_backend: FakeModelServer) -> AsyncIterator[GatewayProcess]:
    workdir = tmp_path / "gateway"
    workdir.mkdir()
    async with GatewayProcess(gateway_config(fake_backend.target), workdir=workdir) as gw:
        yield gw


@pytest.fixture
async def prometheus(tmp_path: Path, gateway: GatewayProcess) -> AsyncIterator[str]:
    binary = shutil.which("prometheus")
    assert binary is not None, "the prometheus server is missing: apt-get install -y prometheus"
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "tfs-gateway",
                "metrics_path": "/monitoring/prometheus/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{gateway.port}"]}],
            }
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    command = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address={address}",
    ]
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://{address}"
    finally:
        server.kill()
        server.wait(timeout=DEADLINE_SECONDS)


async def query(session: aiohttp.ClientSession, base: str, promql: str) -> list[dict[str, Any]]:
    try:
        async with session.get(f"{base}/api/v1/query", params={"query": promql}) as resp:
            if resp.status != 200:
                return []
            body = await resp.json()
    except aiohttp.ClientConnectionError:  # still starting
        return []
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def wait_value(session: aiohttp.ClientSession, base: str, promql: str, expected: float) -> dict[str, str]:
    """Poll until ``promql`` has one series with value ``expected``; its labels."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + QUERY_DEADLINE_SECONDS
    while True:
        result = await query(session, base, promql)
        if len(result) == 1 and float(result[0]["value"][1]) == expected:
            labels: dict[str, str] = result[0]["metric"]
            return labels
        assert loop.time() < deadline, f"{promql} never became {expected}; last result {result}"
        await asyncio.sleep(0.25)


async def test_prometheus_scrapes_the_gateway(gateway: GatewayProcess, prometheus: str) -> None:
    async with aiohttp.ClientSession() as session:
        for value in range(REQUESTS):
            async with session.post(
                f"{gateway.url}/model-serving/my-dep:predict", json={"instances": [float(value)]}
            ) as resp:
                assert resp.status == 200
        await wait_value(session, prometheus, 'up{job="tfs-gateway"}', 1)
        labels = await wait_value(
            session, prometheus, 'tfs_gateway_http_requests_total{route="deployment_predict"}', REQUESTS
        )
        assert (labels["model"], labels["version"], labels["verb"], labels["code"]) == (
            "my-dep",
            "latest",
            "predict",
            "200",
        )
        await wait_value(session, prometheus, 'tfs_gateway_backend_up{backend="default"}', 1)
        await wait_value(
            session,
            prometheus,
            'sum(tfs_gateway_http_request_duration_seconds_count{route="deployment_predict"})',
            REQUESTS,
        )
        assert await query(session, prometheus, "process_resident_memory_bytes > 0")
