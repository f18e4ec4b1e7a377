"""A real Prometheus server (Debian's ``prometheus``) scrapes a running gateway; read the series back.

The gateway serves REST and its gRPC port; traffic over each protocol must appear under its bounded
``route`` label, and the dashboard's per-protocol queries must group it, through PromQL.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
import yaml
from fake_backend import FakeModelServer
from gateway_process import DEADLINE_SECONDS, GrpcGateway, gateway_config
from google.protobuf.message import Message
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub
from tritonclient.grpc import service_pb2, service_pb2_grpc

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
async def gateway(tmp_path: Path, fake_backend: FakeModelServer) -> AsyncIterator[GrpcGateway]:
    workdir = tmp_path / "gateway"
    workdir.mkdir()
    config = gateway_config(fake_backend.target, server={"grpc_port": 0})
    async with GrpcGateway(config, workdir=workdir) as gw:
        yield gw


@pytest.fixture
async def prometheus(tmp_path: Path, gateway: GrpcGateway) -> AsyncIterator[str]:
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


async def test_prometheus_scrapes_the_gateway(gateway: GrpcGateway, prometheus: str) -> None:
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


# --------------------------------------------------------------------------- one row per protocol

MODEL = "half_plus_two"
DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "tfs-gateway-dashboard.json"


@dataclass(frozen=True)
class Clients:
    session: aiohttp.ClientSession
    url: str
    channel: grpc.aio.Channel


Send = Callable[[Clients], Awaitable[int | grpc.StatusCode]]


def http(path: str, body: dict[str, Any]) -> Send:
    """A POST of ``body`` to ``path``; the HTTP status."""

    async def send(clients: Clients) -> int:
        async with clients.session.post(clients.url + path, json=body) as resp:
            await resp.read()
            return resp.status

    return send


def grpc_unary(method: Callable[[grpc.aio.Channel], Callable[..., Awaitable[Any]]], request: Message) -> Send:
    """One unary call through the gateway's gRPC port with a real stub's ``method``; the status."""

    async def send(clients: Clients) -> grpc.StatusCode:
        try:
            await method(clients.channel)(request, timeout=DEADLINE_SECONDS)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    return send


def tfs_predict(model: str) -> Send:
    """TF Serving's ``PredictionService/Predict`` with tensorflow-serving-api's own stub."""
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model))
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add(size=2)
    request.inputs["x"].float_val.extend([1.0, 3.0])
    return grpc_unary(lambda channel: PredictionServiceStub(channel).Predict, request)


@dataclass(frozen=True)
class Protocol:
    """One protocol's traffic: the route label it must land under, and the dashboard's name for it."""

    route: str
    protocol: str  # what the dashboard's label_replace derives from ``route``
    ok: Send  # answered 200 (gRPC: OK)
    refused: Send  # answered 4xx (gRPC: a status whose REST twin is 4xx)


V2_INPUT = {"name": "x", "datatype": "FP32", "shape": [2]}


def oip_infer(model: str) -> Send:
    """OIP's ``GRPCInferenceService/ModelInfer`` with tritonclient's own generated stub."""
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="x", datatype="FP32", shape=[2])
    request.raw_input_contents.append(np.array([1.0, 3.0], dtype="<f4").tobytes())
    return grpc_unary(lambda channel: service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer, request)


# Adding a protocol is one row.
PROTOCOLS = (
    Protocol(
        "v1_predict",
        "tfs_rest",
        http(f"/v1/models/{MODEL}:predict", {"instances": [1.0, 3.0]}),
        http(f"/v1/models/{MODEL}:predict", {"instances": "not a list"}),
    ),
    Protocol(
        "v2_infer",
        "v2_rest",
        http(f"/v2/models/{MODEL}/infer", {"inputs": [{**V2_INPUT, "data": [1.0, 3.0]}]}),
        http(f"/v2/models/{MODEL}/infer", {"inputs": [{**V2_INPUT, "datatype": "INT32", "data": [1, 3]}]}),
    ),
    Protocol("grpc_tfs_predict", "tfs_grpc", tfs_predict(MODEL), tfs_predict("no-such-model")),
    Protocol("grpc_v2_infer", "v2_grpc", oip_infer(MODEL), oip_infer("no-such-model")),
)
OK = (200, grpc.StatusCode.OK)


def requests_for(index: int) -> int:
    """A different count per protocol, so traffic counted under the wrong one cannot add up."""
    return 2 + index


def dashboard_expr(title: str, ref: str = "A") -> str:
    """A dashboard query over all jobs, routes and models, on counters instead of rates: exact counts."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    target = next(t for p in panels if p["title"] == title for t in p["targets"] if t["refId"] == ref)
    expr = re.sub(r"rate\((\w+\{[^}]*\})\[\$__rate_interval\]\)", r"\1", target["expr"])
    return expr.replace("$job", ".*").replace("$route", ".*").replace("$model", ".*")


async def by_protocol(session: aiohttp.ClientSession, base: str, promql: str) -> dict[str, float]:
    return {r["metric"].get("protocol", ""): float(r["value"][1]) for r in await query(session, base, promql)}


async def test_each_protocol_lands_under_its_route_and_the_dashboards_protocol(
    gateway: GrpcGateway, prometheus: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
    ):
        clients = Clients(session, gateway.url, channel)
        for index, proto in enumerate(PROTOCOLS):
            for _ in range(requests_for(index)):
                assert await proto.ok(clients) in OK, proto.route
            assert await proto.refused(clients) not in OK, proto.route
        for index, proto in enumerate(PROTOCOLS):
            served = f'tfs_gateway_http_requests_total{{route="{proto.route}", code="200"}}'
            labels = await wait_value(session, prometheus, served, requests_for(index))
            assert labels["model"] == MODEL, labels
            refused = f'sum(tfs_gateway_http_requests_total{{route="{proto.route}", code=~"4.."}})'
            await wait_value(session, prometheus, refused, 1)
            latency = f'sum(tfs_gateway_http_request_duration_seconds_count{{route="{proto.route}"}})'
            await wait_value(session, prometheus, latency, requests_for(index) + 1)
        # Every request above has been scraped: the dashboard's protocol queries see exact counts.
        total = {p.protocol: requests_for(i) + 1.0 for i, p in enumerate(PROTOCOLS)}
        rate = await by_protocol(session, prometheus, dashboard_expr("Request rate by protocol"))
        assert rate == total
        server_errors = await by_protocol(session, prometheus, dashboard_expr("Error ratio by protocol", "A"))
        assert server_errors in ({}, {p: 0.0 for p in total})  # no 5xx: no series, or zeros
        client_errors = await by_protocol(session, prometheus, dashboard_expr("Error ratio by protocol", "B"))
        assert client_errors == {p: 1 / n for p, n in total.items()}
        p99 = await by_protocol(session, prometheus, dashboard_expr("Latency p99 by protocol"))
        assert set(p99) == set(total) and all(v > 0 for v in p99.values()), p99
