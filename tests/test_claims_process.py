"""The README's process claims, against ``python -m gateway`` as a child process.

- SIGINT drains and exits 0, as SIGTERM does;
- when ``server.shutdown_grace_seconds`` runs out, the requests still running are cancelled: the
  process exits soon after the grace period, the client's connection is closed, and the backend
  sees its call cancelled;
- ``server.metrics_port`` serves the metrics on a side port (real scrapes), and the main port
  keeps serving them too, as ``config.yaml`` says.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fake_backend import HANG, Delay, FakeModelServer
from gateway_process import GatewayProcess, gateway_config
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

_METRICS_LINE = re.compile(r"tfs-gateway: serving metrics http://127\.0\.0\.1:(\d+) \(pid")
# A client waits at most this long for anything; far above every grace period below.
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=60)


async def predict(session: aiohttp.ClientSession, url: str, value: float) -> tuple[int, Any]:
    async with session.post(f"{url}/model-serving/my-dep:predict", json={"instances": [value]}) as resp:
        return resp.status, await resp.json()


async def wait_until(condition: Any, what: str, seconds: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- signals


async def test_sigint_drains_in_flight_requests_then_exits_0(tmp_path: Path, fake_backend: FakeModelServer) -> None:
    """README: "On SIGTERM or SIGINT ... requests in flight finish ... and the process exits 0"."""
    async with GatewayProcess(gateway_config(fake_backend.target), workdir=tmp_path) as gw:
        fake_backend.set_reply("Predict", Delay(1.0))
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as clients:
            flights = [asyncio.ensure_future(predict(clients, gw.url, float(i))) for i in range(3)]
            await wait_until(lambda: len(fake_backend.calls("Predict")) == 3, "the calls to reach the backend")
            gw.send(signal.SIGINT)
            await gw.wait_log("draining")
            answers = await asyncio.gather(*flights)
            assert await gw.wait_exit() == 0
    assert answers == [(200, {"predictions": [i * 0.5 + 2]}) for i in range(3)]
    assert "drained in" in gw.stderr()
    assert not fake_backend.cancelled


GRACE_SECONDS = 1.0
# Exit must come from the grace period, not from the request's own deadline (far later) nor from
# the harness killing the process: 10 s of margin is generous on a loaded machine, and far below
# the 120 s deadline that would otherwise end the hanging call.
EXIT_MARGIN_SECONDS = 10.0


async def test_grace_expiry_cancels_the_requests_still_running(tmp_path: Path, fake_backend: FakeModelServer) -> None:
    """lifecycle.py: after the grace period "whatever is left is cancelled ... and the process exits 0".

    A backend that never answers; SIGTERM; the process exits 0 soon after the grace period; the
    client's request is not left hanging (its connection is closed without an answer, since the
    handler was cancelled); and the backend sees its call cancelled.
    """
    config = gateway_config(
        fake_backend.target,
        server={"shutdown_grace_seconds": GRACE_SECONDS},
        timeouts={"default_seconds": 120.0},
    )
    async with GatewayProcess(config, workdir=tmp_path) as gw:
        fake_backend.set_reply("Predict", HANG)
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as clients:
            flight = asyncio.ensure_future(predict(clients, gw.url, 1.0))
            await wait_until(lambda: fake_backend.calls("Predict"), "the call to reach the backend")
            sent = time.monotonic()
            gw.send(signal.SIGTERM)
            assert await gw.wait_exit() == 0
            exited = time.monotonic() - sent
            outcome = await asyncio.gather(flight, return_exceptions=True)
        await wait_until(lambda: "Predict" in fake_backend.cancelled, "the backend to see the cancellation")
    assert exited < GRACE_SECONDS + EXIT_MARGIN_SECONDS, f"exited {exited:.1f}s after SIGTERM"
    assert isinstance(outcome[0], aiohttp.ClientError), f"expected a closed connection, got {outcome[0]!r}"
    assert "grace period of 1s is over; cancelling 1 requests in flight" in gw.stderr()
    print(f"\n[grace] exit 0 {exited:.2f}s after SIGTERM (grace {GRACE_SECONDS}s); client got {outcome[0]!r}")


# --------------------------------------------------------------------------- metrics port


def metrics_port(gw: GatewayProcess) -> int:
    match = _METRICS_LINE.search(gw.stderr())
    assert match is not None, gw.stderr()
    return int(match.group(1))


async def scrape(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> dict[str, float]:
    """``{sample name + labels: value}`` from one real scrape (fails unless 200)."""
    async with session.get(url, headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def predicts_answered(samples: dict[str, float]) -> float:
    return sum(
        value
        for name, value in samples.items()
        if name.startswith("tfs_gateway_http_requests_total{") and "verb=predict" in name and "code=200" in name
    )


async def test_metrics_port_serves_metrics_and_the_main_port_still_does(
    tmp_path: Path, fake_backend: FakeModelServer
) -> None:
    """config.yaml: ``server.metrics_port`` "also serve[s] metrics on this port"; the side port serves
    the metrics paths and nothing else, and counts what the main port answered."""
    config = gateway_config(fake_backend.target, server={"metrics_port": 0})
    async with GatewayProcess(config, workdir=tmp_path) as gw:
        await gw.wait_log("serving metrics")
        side = f"http://127.0.0.1:{metrics_port(gw)}"
        assert metrics_port(gw) != gw.port
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
            for value in (1.0, 2.0):
                assert await predict(session, gw.url, value) == (200, {"predictions": [value * 0.5 + 2]})
            for path in ("/metrics", "/monitoring/prometheus/metrics"):
                assert predicts_answered(await scrape(session, side + path)) == 2
                assert predicts_answered(await scrape(session, gw.url + path)) == 2
            async with session.post(f"{side}/model-serving/my-dep:predict", json={"instances": [1.0]}) as resp:
                assert resp.status == 404, "the side port serves metrics only"
    assert len(fake_backend.calls("Predict")) == 2


async def test_the_metrics_port_obeys_protect_metrics_like_the_main_port(
    tmp_path: Path, fake_backend: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auth.protect_metrics`` guards the side port too: it once served metrics to anyone there.
    The status page, its JSON and its assets are guarded alike, and served on both ports."""
    monkeypatch.setenv("CLAIMS_SIDE_KEY", "side-secret")
    auth = {"type": "api_key", "api_keys": [{"env": "CLAIMS_SIDE_KEY"}], "protect_metrics": True}
    config = gateway_config(fake_backend.target, server={"metrics_port": 0}, auth=auth)
    async with GatewayProcess(config, workdir=tmp_path) as gw:
        await gw.wait_log("serving metrics")
        side = f"http://127.0.0.1:{metrics_port(gw)}"
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
            for base in (side, gw.url):
                async with session.get(base + "/metrics") as resp:
                    assert resp.status == 401, base
                    assert resp.headers["WWW-Authenticate"]
                    assert next(iter(await resp.json())) == "error"
                async with session.get(base + "/metrics", headers={"X-API-Key": "wrong"}) as resp:
                    assert resp.status in (401, 403), base
                samples = await scrape(session, base + "/metrics", {"X-API-Key": "side-secret"})
                assert "tfs_gateway_build_info{python_version=" in "".join(samples)
                for path in ("/status", "/status.json", "/status.js", "/status.css"):
                    async with session.get(base + path) as resp:
                        assert resp.status == 401, (base, path)
                    async with session.get(base + path, headers={"X-API-Key": "side-secret"}) as resp:
                        assert resp.status == 200, (base, path)
