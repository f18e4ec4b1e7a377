"""Metrics read back from a fresh registry after real requests, and a promtool check of a real scrape."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import grpc
import pytest
from conftest import AiohttpClient, GatewayClient, build_app
from fake_backend import Abort, FakeModelServer
from prometheus_client import CollectorRegistry

from gateway.ops.metrics import ROUTES

PREDICT = {"instances": [1.0, 2.0]}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, gateway_settings: dict[str, Any], registry: CollectorRegistry
) -> GatewayClient:
    return await aiohttp_client(build_app(gateway_settings, registry))


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def http_labels(route: str, model: str, version: str, verb: str, code: str, arm: str = "") -> dict[str, str]:
    return {"route": route, "model": model, "version": version, "verb": verb, "code": code, "arm": arm}


async def test_predict_is_counted_timed_and_sized(client: GatewayClient, registry: CollectorRegistry) -> None:
    for _ in range(3):
        async with client.post("/v1/models/half_plus_two:predict", json=PREDICT) as resp:
            assert resp.status == 200
            body = await resp.read()
    labels = http_labels("v1_predict", "half_plus_two", "latest", "predict", "200")
    assert sample(registry, "tfs_gateway_http_requests_total", **labels) == 3
    assert sample(registry, "tfs_gateway_http_request_duration_seconds_count", **labels) == 3
    assert sample(registry, "tfs_gateway_http_request_duration_seconds_bucket", le="60.0", **labels) == 3
    sizes = {"route": "v1_predict", "verb": "predict"}
    assert sample(registry, "tfs_gateway_http_request_size_bytes_count", **sizes) == 3
    assert sample(registry, "tfs_gateway_http_request_size_bytes_sum", **sizes) > 0
    assert sample(registry, "tfs_gateway_http_response_size_bytes_sum", **sizes) == 3 * len(body)


async def test_versions_labels_and_deployments_are_labelled(client: GatewayClient, registry: CollectorRegistry) -> None:
    for path in (
        "/v1/models/half_plus_two/versions/2:predict",
        "/v1/models/half_plus_two/labels/stable:predict",
        "/model-serving/my-dep:predict",
    ):
        async with client.post(path, json=PREDICT) as resp:
            assert resp.status == 200
    expected = [
        http_labels("v1_predict", "half_plus_two", "2", "predict", "200"),
        http_labels("v1_predict", "half_plus_two", "label:stable", "predict", "200"),
        http_labels("deployment_predict", "my-dep", "latest", "predict", "200"),
    ]
    for labels in expected:
        assert sample(registry, "tfs_gateway_http_requests_total", **labels) == 1, labels


async def test_unknown_models_fold_into_other(client: GatewayClient, registry: CollectorRegistry) -> None:
    for name in ("nope-1", "nope-2", "nope-3"):
        async with client.get(f"/v1/models/{name}/versions/7") as resp:
            assert resp.status == 404
    assert (
        sample(registry, "tfs_gateway_http_requests_total", **http_labels("v1_status", "other", "", "status", "404"))
        == 3
    )
    models = {
        s.labels["model"] for m in registry.collect() for s in m.samples if s.name == "tfs_gateway_http_requests_total"
    }
    assert models == {"other"}


async def test_backend_rpcs_are_timed_by_grpc_code(
    client: GatewayClient, registry: CollectorRegistry, fake_backend: FakeModelServer
) -> None:
    fake_backend.enqueue("Predict", Abort(grpc.StatusCode.INTERNAL, "boom"))
    async with client.post("/model-serving/my-dep:predict", json=PREDICT) as resp:
        assert resp.status == 500
    async with client.post("/model-serving/my-dep:predict", json=PREDICT) as resp:
        assert resp.status == 200
    name = "tfs_gateway_backend_rpc_duration_seconds_count"
    assert sample(registry, name, backend="default", rpc="Predict", grpc_code="INTERNAL") == 1
    assert sample(registry, name, backend="default", rpc="Predict", grpc_code="OK") == 1
    assert sample(registry, name, backend="default", rpc="GetModelMetadata", grpc_code="OK") >= 1


async def test_signature_cache_hits_and_misses(client: GatewayClient, registry: CollectorRegistry) -> None:
    for _ in range(4):
        async with client.post("/model-serving/my-dep:predict", json=PREDICT) as resp:
            assert resp.status == 200
    hits = sample(registry, "tfs_gateway_signature_cache_requests_total", result="hit")
    misses = sample(registry, "tfs_gateway_signature_cache_requests_total", result="miss")
    assert (hits, misses) == (3, 1)


async def test_known_label_values_exist_before_any_request(registry: CollectorRegistry, client: GatewayClient) -> None:
    for route in ROUTES:
        assert registry.get_sample_value("tfs_gateway_http_requests_in_flight", {"route": route}) == 0
    assert registry.get_sample_value("tfs_gateway_backend_up", {"backend": "default"}) == 0
    build = [s for m in registry.collect() for s in m.samples if s.name == "tfs_gateway_build_info"]
    assert [s.value for s in build] == [1]


async def test_process_metrics_are_on_the_injected_registry(client: GatewayClient, registry: CollectorRegistry) -> None:
    assert sample(registry, "process_resident_memory_bytes") > 0
    assert sample(registry, "process_start_time_seconds") > 0
    assert registry.get_sample_value("python_info", None) is None  # it has labels; look it up by name
    assert any(m.name == "python_info" for m in registry.collect())


@pytest.mark.parametrize("path", ["/metrics", "/monitoring/prometheus/metrics"])
async def test_metrics_page_serves_the_exposition(client: GatewayClient, path: str) -> None:
    async with client.post("/v1/models/half_plus_two:predict", json=PREDICT) as resp:
        assert resp.status == 200
    async with client.get(path) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    assert 'tfs_gateway_http_requests_total{arm="",code="200",model="half_plus_two",route="v1_predict"' in text


async def test_promtool_accepts_a_real_scrape(client: GatewayClient) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: apt-get install -y prometheus"
    for path in ("/v1/models/half_plus_two:predict", "/model-serving/my-dep:predict", "/v1/models/x:predict"):
        async with client.post(path, json=PREDICT) as resp:
            await resp.read()
    async with client.get("/metrics") as resp:
        scrape = await resp.read()
    result = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "", result.stdout.decode()  # no lint warnings either
