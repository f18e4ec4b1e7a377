"""REST's policies on the gRPC port, for both services on it: OIP's GRPCInferenceService (through
tritonclient.grpc.aio) and TF Serving's PredictionService (through tensorflow-serving-api's stub).

Auth, message limits, client deadlines and their cap, overload shedding, TLS and the in-flight
gauge run in-process (the gRPC port served in the test's loop, as ``gateway.process.serve`` does)
in front of the fake ModelServer; drain on SIGTERM, reload on SIGHUP and the access log run
``python -m gateway`` as a child process. Every call crosses a real socket both ways.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc.aio as triton
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from certs import make_cert
from fake_backend import HANG, FakeModelServer
from gateway_process import GrpcGateway
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import MODEL, base_settings, merge, requests_total
from prometheus_client import CollectorRegistry
from tensorflow_serving.apis import model_pb2, predict_pb2
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from gateway.config import Settings
from gateway.grpcfront.server import GrpcServer
from gateway.web.app import create_app
from gateway.web.keys import HEALTH, SERVICES

API_KEY = "grpc-policy-key"
SECONDS = 30.0  # a bound on a hang, never a timing assertion
X = np.array([1.0, 2.0], dtype=np.float32)
Metadata = tuple[tuple[str, str], ...]


@dataclass
class Port:
    """The gateway's gRPC port (and its REST app, for the metrics page)."""

    rest: TestServer
    port: int
    root: bytes | None = None  # the server certificate, when TLS is on

    @property
    def address(self) -> str:
        return f"{'localhost' if self.root else '127.0.0.1'}:{self.port}"

    def channel(self) -> grpc.aio.Channel:
        if self.root is None:
            return grpc.aio.insecure_channel(self.address)
        return grpc.aio.secure_channel(self.address, grpc.ssl_channel_credentials(self.root))

    def oip(self) -> triton.InferenceServerClient:
        if self.root is None:
            return triton.InferenceServerClient(self.address)
        return triton.InferenceServerClient(self.address, ssl=True, creds=grpc.ssl_channel_credentials(self.root))


MakePort = Callable[[Mapping[str, Any]], Awaitable[Port]]


@pytest.fixture
async def make_port(fake_backend: FakeModelServer, aiohttp_server: Callable[..., Any]) -> AsyncIterator[MakePort]:
    servers: list[GrpcServer] = []

    async def make(overrides: Mapping[str, Any]) -> Port:
        mapping = merge(base_settings(fake_backend), {"server": {"host": "127.0.0.1", "grpc_port": 0}})
        settings = Settings.from_mapping(merge(mapping, overrides))
        app = create_app(settings, registry=CollectorRegistry())
        rest: TestServer = await aiohttp_server(app)
        server = await GrpcServer.start(app[SERVICES], app[HEALTH], settings.server, 0)
        servers.append(server)
        cert = settings.server.tls.cert_file
        return Port(rest, server.port, Path(cert).read_bytes() if cert else None)

    yield make
    for server in servers:
        await server.close()


def predict_request(x: np.ndarray = X) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=MODEL))
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    return request


def oip_input(x: np.ndarray = X) -> triton.InferInput:
    item = triton.InferInput("x", list(x.shape), "FP32")
    item.set_data_from_numpy(x)
    return item


async def oip_infer(port: Port, metadata: Metadata = (), timeout: float = SECONDS, x: np.ndarray = X) -> np.ndarray:
    """ModelInfer through tritonclient.grpc.aio; its InferenceServerException is turned into the status code."""
    client = port.oip()
    try:
        result = await client.infer(MODEL, [oip_input(x)], headers=dict(metadata), client_timeout=timeout)
    finally:
        await client.close()
    output = result.as_numpy("y")
    assert output is not None
    return output


async def tfs_predict(port: Port, metadata: Metadata = (), timeout: float = SECONDS, x: np.ndarray = X) -> np.ndarray:
    async with port.channel() as channel:
        reply = await PredictionServiceStub(channel).Predict(predict_request(x), metadata=metadata, timeout=timeout)
    return np.asarray(tf.make_ndarray(reply.outputs["y"]))


Caller = Callable[..., Awaitable[np.ndarray]]
SERVICES_ON_PORT = [pytest.param(oip_infer, id="oip"), pytest.param(tfs_predict, id="tfs")]


async def code_of(call: Awaitable[Any]) -> tuple[str, str]:
    """The status code name and message a failing call shows its client."""
    try:
        await call
    except InferenceServerException as exc:
        return str(exc.status()).removeprefix("StatusCode."), str(exc.message())
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, str(exc.details())
    raise AssertionError("the call succeeded")


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("caller", SERVICES_ON_PORT)
async def test_auth_from_metadata(make_port: MakePort, tmp_path: Path, caller: Caller) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY)
    port = await make_port({"auth": {"type": "api_key", "api_keys": [{"file": str(key_file)}]}})
    for metadata in [(), (("x-api-key", "wrong"),), (("authorization", "Bearer wrong"),)]:
        assert (await code_of(caller(port, metadata)))[0] == "UNAUTHENTICATED", metadata
    expected = X * np.float32(0.5) + np.float32(2.0)
    for metadata in [(("x-api-key", API_KEY),), (("authorization", f"Bearer {API_KEY}"),)]:
        np.testing.assert_array_equal(await caller(port, metadata), expected)


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("caller", SERVICES_ON_PORT)
async def test_a_message_over_max_request_bytes_is_resource_exhausted(make_port: MakePort, caller: Caller) -> None:
    port = await make_port({"server": {"max_request_bytes": 4096}})
    big = np.zeros(4096, dtype=np.float32)  # 16 KiB of tensor alone
    code, _ = await code_of(caller(port, x=big))
    assert code == "RESOURCE_EXHAUSTED"
    assert len(await caller(port)) == 2  # the port still serves what fits


# --------------------------------------------------------------------------- deadlines


@pytest.mark.parametrize("caller", SERVICES_ON_PORT)
async def test_the_clients_deadline_reaches_the_backend(
    make_port: MakePort, fake_backend: FakeModelServer, caller: Caller
) -> None:
    fake_backend.set_reply("Predict", HANG)
    port = await make_port({})
    code, _ = await code_of(caller(port, timeout=0.5))
    assert code == "DEADLINE_EXCEEDED"
    await until(lambda: "Predict" in fake_backend.cancelled, "the backend call to be cancelled")


@pytest.mark.parametrize("caller", SERVICES_ON_PORT)
async def test_max_client_seconds_caps_the_clients_deadline(
    make_port: MakePort, fake_backend: FakeModelServer, caller: Caller
) -> None:
    fake_backend.set_reply("Predict", HANG)
    port = await make_port({"timeouts": {"max_client_seconds": 0.3}})
    code, _ = await code_of(caller(port, timeout=SECONDS))
    assert code == "DEADLINE_EXCEEDED"
    # The gateway answered (504 in its metrics), not the client giving up after 30 s (which it counts as 499).
    route = "grpc_v2_infer" if caller is oip_infer else "grpc_tfs_predict"
    page = await metrics_page(port)
    assert (requests_total(page, route, "504"), requests_total(page, route, "499")) == (1.0, 0.0)


# --------------------------------------------------------------------------- overload and in-flight


async def test_overload_is_shed_on_both_services_and_the_gauge_counts_calls_in_flight(
    make_port: MakePort, fake_backend: FakeModelServer
) -> None:
    fake_backend.set_reply("Predict", HANG)
    port = await make_port(
        {"backends": {"default": {"max_concurrency": 1, "max_queue": 0, "retry": {"max_attempts": 1}}}}
    )
    held = asyncio.ensure_future(tfs_predict(port))  # holds the backend's only slot
    await until(lambda: fake_backend.calls("Predict"), "the first Predict to reach the backend")
    page = await metrics_page(port)
    assert 'tfs_gateway_http_requests_in_flight{route="grpc_tfs_predict"} 1.0' in page
    for caller in (tfs_predict, oip_infer):
        code, message = await code_of(caller(port))
        assert code == "UNAVAILABLE" and "overloaded" in message, (caller, message)
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    await until(lambda: "Predict" in fake_backend.cancelled, "the held call to end")
    page = await metrics_page(port)
    assert 'tfs_gateway_http_requests_in_flight{route="grpc_tfs_predict"} 0.0' in page
    assert 'tfs_gateway_http_requests_in_flight{route="grpc_v2_infer"} 0.0' in page
    assert requests_total(page, "grpc_v2_infer", "503") == 1.0
    assert requests_total(page, "grpc_tfs_predict", "503") == 1.0


# --------------------------------------------------------------------------- TLS


async def test_tls_serves_both_services(make_port: MakePort, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "grpc")
    port = await make_port({"server": {"tls": {"cert_file": str(cert), "key_file": str(key)}}})
    expected = X * np.float32(0.5) + np.float32(2.0)
    np.testing.assert_array_equal(await oip_infer(port), expected)
    np.testing.assert_array_equal(await tfs_predict(port), expected)
    plain = Port(port.rest, port.port)  # the same port without TLS: refused
    assert (await code_of(tfs_predict(plain, timeout=5.0)))[0] == "UNAVAILABLE"


# --------------------------------------------------------------------------- the process: drain, reload, access log


def process_config(fake: FakeModelServer, **sections: Any) -> dict[str, Any]:
    return merge(base_settings(fake), {"server": {"grpc_port": 0, "shutdown_grace_seconds": 20.0}, **sections})


async def test_sigterm_lets_calls_in_flight_finish_and_refuses_new_ones(fake_backend: FakeModelServer) -> None:
    release = asyncio.Event()

    async def held(request: Any, context: Any) -> None:
        await release.wait()  # then the registry answers

    fake_backend.set_reply("Predict", held)
    async with GrpcGateway(process_config(fake_backend)) as gw:
        port = Port(None, gw.grpc_port)  # type: ignore[arg-type]
        in_flight = [asyncio.ensure_future(oip_infer(port)), asyncio.ensure_future(tfs_predict(port))]
        await until(lambda: len(fake_backend.calls("Predict")) == 2, "both calls to reach the backend")
        gw.send(signal.SIGTERM)
        await gw.wait_log("draining")
        for caller in (oip_infer, tfs_predict):
            # Refused: the listening socket is closed (UNAVAILABLE), or gRPC cancels a stream the
            # stopping server will not start (CANCELLED); either way no handler runs.
            assert (await code_of(caller(port, timeout=5.0)))[0] in ("UNAVAILABLE", "CANCELLED")
        assert len(fake_backend.calls("Predict")) == 2
        release.set()
        expected = X * np.float32(0.5) + np.float32(2.0)
        for result in await asyncio.gather(*in_flight):
            np.testing.assert_array_equal(result, expected)
        assert await gw.wait_exit() == 0
        lines = [json.loads(line) for line in gw.stdout().splitlines() if line.startswith("{")]
    served = {(line["path"], line["route"], line["status"], line["grpc_code"]) for line in lines}
    assert ("/inference.GRPCInferenceService/ModelInfer", "grpc_v2_infer", 200, "OK") in served
    assert ("/tensorflow.serving.PredictionService/Predict", "grpc_tfs_predict", 200, "OK") in served
    infer_lines = [line for line in lines if line["route"] == "grpc_v2_infer"]
    assert all(line["method"] == "POST" and line["model"] == MODEL for line in infer_lines), infer_lines


async def test_sighup_reload_reaches_both_services(fake_backend: FakeModelServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY)
    async with GrpcGateway(process_config(fake_backend)) as gw:
        port = Port(None, gw.grpc_port)  # type: ignore[arg-type]
        assert len(await oip_infer(port)) == 2 and len(await tfs_predict(port)) == 2
        gw.write_config(process_config(fake_backend, auth={"type": "api_key", "api_keys": [{"file": str(key_file)}]}))
        gw.send(signal.SIGHUP)
        await gw.wait_log("config reloaded")
        for caller in (oip_infer, tfs_predict):
            assert (await code_of(caller(port)))[0] == "UNAUTHENTICATED"
            assert len(await caller(port, (("x-api-key", API_KEY),))) == 2


# --------------------------------------------------------------------------- helpers


async def until(condition: Callable[[], Any], what: str) -> None:
    """Wait for ``condition`` (an event seen from outside), failing after SECONDS."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SECONDS
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def metrics_page(port: Port) -> str:
    async with ClientSession() as session, session.get(port.rest.make_url("/metrics")) as reply:
        return await reply.text()


# --------------------------------------------------------------------------- health


async def test_health_watch_streams_the_readiness_verdict(
    fake_backend: FakeModelServer, aiohttp_server: Callable[..., Any]
) -> None:
    probes = {"health_check": {"interval_seconds": 0.05, "timeout_seconds": 0.05}}
    mapping = merge(base_settings(fake_backend), {"server": {"host": "127.0.0.1"}, "backends": {"default": probes}})
    settings = Settings.from_mapping(mapping)
    app = create_app(settings, registry=CollectorRegistry(), probes=True)
    await aiohttp_server(app)
    server = await GrpcServer.start(app[SERVICES], app[HEALTH], settings.server, 0)
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watch = stub.Watch(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"))
            await next_status(watch, serving)  # once the first probes pass
            await fake_backend.stop()
            await next_status(watch, not_serving)
            check = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=SECONDS)
            assert check.status == not_serving
            await fake_backend.start()
            await next_status(watch, serving)
            watch.cancel()
    finally:
        await server.close()


async def next_status(watch: Any, wanted: int) -> None:
    """Read the Watch stream until it reports ``wanted``."""
    while True:
        reply = await asyncio.wait_for(watch.read(), SECONDS)
        assert reply is not grpc.aio.EOF
        if reply.status == wanted:
            return


async def test_the_request_id_comes_back_from_both_services(make_port: MakePort) -> None:
    port = await make_port({})
    async with port.channel() as channel:
        tfs = PredictionServiceStub(channel).Predict(predict_request(), metadata=(("x-request-id", "tfs-7"),))
        await tfs
        oip_request = service_pb2.ModelInferRequest(model_name=MODEL, raw_input_contents=[X.tobytes()])
        oip_request.inputs.add(name="x", datatype="FP32", shape=[2])
        oip = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            oip_request, metadata=(("x-request-id", "oip-7"),)
        )
        await oip
        failing = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            service_pb2.ModelInferRequest(model_name=MODEL), metadata=(("x-request-id", "oip-8"),)
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await failing
        assert ("x-request-id", "tfs-7") in tuple(await tfs.trailing_metadata() or ())
        assert ("x-request-id", "oip-7") in tuple(await oip.trailing_metadata() or ())
        assert ("x-request-id", "oip-8") in tuple(await failing.trailing_metadata() or ())
