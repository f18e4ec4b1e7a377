"""/healthz and /readyz through real sockets, with the backend probes running against the fake."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from conftest import AiohttpClient, GatewayClient
from fake_backend import Delay, FakeModelServer
from harness import merge
from prometheus_client import CollectorRegistry

from gateway.config import Settings
from gateway.process import serve as lifecycle
from gateway.web.app import create_app
from gateway.web.keys import HEALTH, SERVICES

FAST_PROBES = {"health_check": {"interval_seconds": 0.2, "timeout_seconds": 0.2}}
DEADLINE_SECONDS = 15.0

MakeClient = Callable[..., Awaitable[GatewayClient]]


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient, gateway_settings: dict[str, Any]) -> MakeClient:
    async def make(overrides: dict[str, Any] | None = None, *, deployments: bool = True) -> GatewayClient:
        mapping = merge(gateway_settings, overrides or {})
        if not deployments:
            mapping["deployments"] = {}
        for backend in mapping["backends"].values():
            backend.update(FAST_PROBES)
        app = create_app(Settings.from_mapping(mapping), registry=CollectorRegistry(), probes=True)
        return await aiohttp_client(app)

    return make


async def readiness(client: GatewayClient) -> tuple[int, dict[str, Any]]:
    async with client.get("/readyz") as resp:
        return resp.status, await resp.json()


async def wait_readiness(client: GatewayClient, status: int, says: str = "") -> dict[str, Any]:
    """Poll /readyz until it answers ``status`` with ``says`` in its body; probes run in the background."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        got, body = await readiness(client)
        if got == status and "not probed yet" not in str(body) and says in str(body):
            return body
        assert loop.time() < deadline, f"/readyz stayed {got}: {body}"
        await asyncio.sleep(0.02)


def backend_up(client: GatewayClient) -> float | None:
    metrics = client.app[SERVICES].current.metrics
    return metrics.registry.get_sample_value("tfs_gateway_backend_up", {"backend": "default"})


async def test_healthz_answers_while_the_process_serves(make_client: MakeClient) -> None:
    client = await make_client()
    async with client.get("/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_ready_when_every_deployed_model_is_available(
    make_client: MakeClient, fake_backend: FakeModelServer
) -> None:
    client = await make_client()
    body = await wait_readiness(client, 200)
    assert body == {"status": "ready", "checks": {"draining": {"ok": True}, "backend:default": {"ok": True}}}
    assert backend_up(client) == 1
    probed = {
        (c.request.model_spec.name, c.request.model_spec.version.value) for c in fake_backend.calls("GetModelStatus")
    }
    assert {("half_plus_two", 0), ("half_plus_two", 2), ("multi", 0)} <= probed


async def test_not_ready_says_which_model_is_not_available(
    make_client: MakeClient, fake_backend: FakeModelServer
) -> None:
    fake_backend.registry.models["multi"].states.update({1: "LOADING"})
    client = await make_client()
    body = await wait_readiness(client, 503, says="LOADING")
    assert body["status"] == "not ready"
    assert body["checks"]["draining"] == {"ok": True}
    assert body["checks"]["backend:default"] == {
        "ok": False,
        "reason": "model multi: no version is AVAILABLE (1: LOADING)",
    }
    assert backend_up(client) == 0


async def test_a_pinned_version_must_itself_be_available(
    make_client: MakeClient, fake_backend: FakeModelServer
) -> None:
    client = await make_client({"deployments": {"gone": {"model": "half_plus_two", "version": 9}}})
    body = await wait_readiness(client, 503, says="NOT_FOUND")
    reason = body["checks"]["backend:default"]["reason"]
    assert reason.startswith("model half_plus_two: NOT_FOUND: "), reason


async def test_a_dead_backend_fails_readiness_and_recovers(
    make_client: MakeClient, fake_backend: FakeModelServer
) -> None:
    client = await make_client()
    await wait_readiness(client, 200)
    await fake_backend.stop()
    body = await wait_readiness(client, 503, says="UNAVAILABLE")
    assert "Backend default is unavailable" in body["checks"]["backend:default"]["reason"]
    await fake_backend.start()
    await wait_readiness(client, 200)
    assert backend_up(client) == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_without_deployments_readiness_is_channel_connectivity(make_client: MakeClient) -> None:
    client = await make_client(deployments=False)
    await wait_readiness(client, 200)
    dead_target = {"backends": {"default": {"targets": [f"127.0.0.1:{closed_port()}"]}}}
    dead = await make_client(dead_target, deployments=False)
    body = await wait_readiness(dead, 503, says="no connection")
    # The reason names the configured backend, never its internal address.
    assert body["checks"]["backend:default"]["reason"] == "no connection to backend default within 0.2s"


async def test_without_probes_readiness_says_so(
    aiohttp_client: AiohttpClient, gateway_settings: dict[str, Any]
) -> None:
    app = create_app(Settings.from_mapping(gateway_settings), registry=CollectorRegistry())
    client = await aiohttp_client(app)
    status, body = await readiness(client)
    assert status == 503
    assert body["checks"]["backends"]["ok"] is False


async def test_draining_fails_readiness_at_once_and_in_flight_requests_finish(
    make_client: MakeClient, fake_backend: FakeModelServer
) -> None:
    client = await make_client()
    await wait_readiness(client, 200)
    connector = aiohttp.TCPConnector(limit=2)
    async with aiohttp.ClientSession(connector=connector) as session:
        base = str(client.make_url(""))
        # Two kept-alive connections: one carries the slow predict, the other asks /readyz during the drain.
        await asyncio.gather(*(session.get(f"{base}/healthz") for _ in range(2)))
        fake_backend.set_reply("Predict", Delay(0.5))
        predict = asyncio.ensure_future(session.post(f"{base}/model-serving/my-dep:predict", json={"instances": [1.0]}))
        await wait_for_call(fake_backend, "Predict")
        drain = asyncio.ensure_future(lifecycle.drain(client.app, client.server.runner))  # type: ignore[arg-type]
        async with session.get(f"{base}/readyz") as resp:
            assert resp.status == 503
            assert (await resp.json())["checks"]["draining"] == {"ok": False, "reason": "shutting down"}
            assert resp.headers["Connection"] == "close"
        async with await predict as resp:
            assert resp.status == 200
            assert await resp.json() == {"predictions": [2.5]}
        await asyncio.wait_for(drain, DEADLINE_SECONDS)
    assert client.app[HEALTH].draining  # type: ignore[index]


async def wait_for_call(fake: FakeModelServer, method: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not fake.calls(method):
        assert loop.time() < deadline, f"no {method} call reached the fake"
        await asyncio.sleep(0.01)
