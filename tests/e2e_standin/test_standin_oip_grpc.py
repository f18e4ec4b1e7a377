"""The Open Inference Protocol's gRPC service, through tritonclient.grpc (sync and aio), against the stand-in.

Every call goes over a real gRPC socket into the gateway's gRPC port (served in the test's
loop beside the REST app, as ``python -m gateway`` serves both) and over real gRPC into the
ModelServer stand-in running the example SavedModels; TensorFlow, run here on the same
SavedModel, is the oracle. The sync client blocks, so it runs on a thread. Typed (non-raw)
contents, which tritonclient never sends, go through tritonclient's own generated stub.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
import tritonclient.http as triton_http
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from harness import requests_total
from prometheus_client import CollectorRegistry
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from devserver.testing import DevServer
from gateway import __version__
from gateway.config import Settings
from gateway.grpcfront.server import GrpcServer
from gateway.web.app import create_app
from gateway.web.keys import HEALTH, SERVICES

from .conftest import DEPLOYMENTS, HALF_PLUS_TWO, LATEST, tf_outputs, version_dir
from .test_standin_oip_rest import EVERY_DATATYPE, MULTI_IO, X, assert_equal, wait_ready

T = TypeVar("T")
DATATYPES = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.int8): "INT8",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.uint16): "UINT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(ml_dtypes.bfloat16): "BF16",
    np.dtype(object): "BYTES",
}
# The dtypes model's inputs at their edges: one per datatype it carries (the REST tests' set).
DTYPES_INPUTS = EVERY_DATATYPE
SECONDS = 30.0  # a bound on a hang for every call, never a timing assertion


@dataclass(frozen=True)
class Gateway:
    rest: TestServer
    grpc_port: int

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def gateway_settings(address: str, **sections: Any) -> Settings:
    return Settings.from_mapping(
        {
            "server": {"host": "127.0.0.1", "grpc_port": 0},
            "backends": {"default": {"targets": [address]}},
            "deployments": {name: dict(spec) for name, spec in DEPLOYMENTS.items()},
            **sections,
        }
    )


async def start_gateway(settings: Settings, aiohttp_server: Callable[..., Any]) -> tuple[TestServer, GrpcServer]:
    """The REST app and the gRPC port on one ``ServicesRef``, as ``gateway.process.serve`` runs them."""
    app = create_app(settings, registry=CollectorRegistry(), probes=True)
    rest: TestServer = await aiohttp_server(app)
    await wait_ready(rest)
    server = await GrpcServer.start(app[SERVICES], app[HEALTH], settings.server, 0)
    return rest, server


@pytest.fixture
async def gateway(standin: DevServer, aiohttp_server: Callable[..., Any]) -> AsyncIterator[Gateway]:
    rest, server = await start_gateway(gateway_settings(standin.address), aiohttp_server)
    try:
        yield Gateway(rest, server.port)
    finally:
        await server.close()


async def sync_call(gw: Gateway, use: Callable[[triton.InferenceServerClient], T]) -> T:
    """Run ``use`` with a sync tritonclient.grpc client on a thread (it blocks; the gateway must not)."""

    def run() -> T:
        client = triton.InferenceServerClient(gw.url)
        try:
            return use(client)
        finally:
            client.close()

    return await asyncio.to_thread(run)


def infer_input(name: str, array: np.ndarray) -> triton.InferInput:
    item = triton.InferInput(name, list(array.shape), DATATYPES[array.dtype])
    item.set_data_from_numpy(array)
    return item


# --------------------------------------------------------------------------- health and metadata


async def test_sync_client_health_and_server_metadata(gateway: Gateway) -> None:
    live, ready, meta = await sync_call(
        gateway, lambda c: (c.is_server_live(), c.is_server_ready(), c.get_server_metadata(as_json=True))
    )
    assert live is True and ready is True
    assert meta == {"name": "tfserving-gateway", "version": __version__, "extensions": ["binary_tensor_data"]}


async def test_aio_client_health_and_server_metadata(gateway: Gateway) -> None:
    async with triton_aio.InferenceServerClient(gateway.url) as client:
        assert await client.is_server_live() is True
        assert await client.is_server_ready() is True
        meta = await client.get_server_metadata()
    assert (meta.name, meta.version) == ("tfserving-gateway", __version__)


@pytest.mark.parametrize(
    ("model", "version", "headers", "expected"),
    [
        (HALF_PLUS_TWO, "", None, True),
        (HALF_PLUS_TWO, "1", None, True),
        (HALF_PLUS_TWO, "2", None, True),
        (HALF_PLUS_TWO, "stable", None, True),
        (HALF_PLUS_TWO, "9", None, False),
        (HALF_PLUS_TWO, "no_such_label", None, False),
        ("no_such_model", "", None, False),
        ("mnist", "", None, True),
        ("hp2", "", {"x-deployment-id": "hp2"}, True),
        (HALF_PLUS_TWO, "", {"x-deployment-id": "hp2-v1"}, True),
        ("mnist", "", {"x-deployment-id": "hp2"}, False),  # not that deployment's model
        ("x", "", {"x-deployment-id": "no_such_deployment"}, False),
    ],
)
async def test_model_ready(
    gateway: Gateway, model: str, version: str, headers: dict[str, str] | None, expected: bool
) -> None:
    assert await sync_call(gateway, lambda c: c.is_model_ready(model, version, headers=headers)) is expected
    async with triton_aio.InferenceServerClient(gateway.url) as client:
        assert await client.is_model_ready(model, version, headers=headers) is expected


async def test_model_metadata_is_the_rest_fronts(gateway: Gateway) -> None:
    meta = await sync_call(gateway, lambda c: c.get_model_metadata(HALF_PLUS_TWO, as_json=True))
    assert meta == {
        "name": HALF_PLUS_TWO,
        "versions": ["1", "2"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": ["-1"]}],  # int64 as JSON strings (protobuf's rule)
        "outputs": [{"name": "y", "datatype": "FP32", "shape": ["-1"]}],
    }
    async with triton_aio.InferenceServerClient(gateway.url) as client:
        multi = await client.get_model_metadata("multi_io", "1")
    assert [(t.name, t.datatype, list(t.shape)) for t in multi.inputs] == [
        ("a", "FP32", [-1, 3]),
        ("b", "INT64", [-1]),
        ("s", "BYTES", [-1]),
    ]
    assert [(t.name, t.datatype) for t in multi.outputs] == [
        ("b_times_2", "INT64"),
        ("s_len", "INT32"),
        ("s_upper", "BYTES"),
        ("sum", "FP32"),
    ]
    assert list(multi.versions) == ["1"]
    async with ClientSession() as session, session.get(gateway.rest.make_url("/v2/models/multi_io")) as reply:
        rest = await reply.json()
    assert [(t["name"], t["datatype"], t["shape"]) for t in rest["inputs"]] == [
        (t.name, t.datatype, list(t.shape)) for t in multi.inputs
    ]


# --------------------------------------------------------------------------- infer


async def test_sync_infer_half_plus_two_matches_tensorflow(gateway: Gateway, standin_models: Path) -> None:
    outputs = [triton.InferRequestedOutput("y")]
    result = await sync_call(
        gateway,
        lambda c: c.infer(
            HALF_PLUS_TWO, [infer_input("x", X)], outputs=outputs, request_id="42", client_timeout=SECONDS
        ),
    )
    expected = tf_outputs(version_dir(standin_models, HALF_PLUS_TWO), {"x": X})
    assert_equal(result.as_numpy("y"), expected["y"], "y")
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == (
        "42",
        HALF_PLUS_TWO,
        str(LATEST[HALF_PLUS_TWO]),
    )
    assert len(response.raw_output_contents) == 1 and not response.outputs[0].HasField("contents")


async def test_aio_infer_multi_io_requested_outputs_in_order(gateway: Gateway, standin_models: Path) -> None:
    names = ["sum", "b_times_2", "s_upper", "s_len"]
    inputs = [infer_input(name, array) for name, array in MULTI_IO.items()]
    async with triton_aio.InferenceServerClient(gateway.url) as client:
        result = await client.infer("multi_io", inputs, outputs=[triton_aio.InferRequestedOutput(n) for n in names])
        only = await client.infer("multi_io", inputs, outputs=[triton_aio.InferRequestedOutput("s_len")])
    expected = tf_outputs(version_dir(standin_models, "multi_io"), MULTI_IO)
    assert [o.name for o in result.get_response().outputs] == names
    for name in names:
        assert_equal(result.as_numpy(name), expected[name], name)
    assert [o.name for o in only.get_response().outputs] == ["s_len"]


async def test_every_datatype_of_the_dtypes_model_matches_tensorflow(gateway: Gateway, standin_models: Path) -> None:
    names = sorted(f"{alias}_out" for alias in DTYPES_INPUTS)
    inputs = [infer_input(alias, array) for alias, array in DTYPES_INPUTS.items()]
    wanted = [triton.InferRequestedOutput(name) for name in names]
    result = await sync_call(gateway, lambda c: c.infer("dtypes", inputs, outputs=wanted))
    expected = tf_outputs(version_dir(standin_models, "dtypes"), DTYPES_INPUTS)
    assert [o.datatype for o in result.get_response().outputs] == [DATATYPES[expected[name].dtype] for name in names]
    for name in names:
        assert_equal(result.as_numpy(name), expected[name], name)


async def test_typed_contents_equal_raw_ones(gateway: Gateway, standin_models: Path) -> None:
    """What tritonclient never sends: every input in InferTensorContents, through its generated stub."""
    typed = service_pb2.ModelInferRequest(model_name="dtypes")
    fields = {"bool": "bool_contents", "int8": "int_contents", "uint8": "uint_contents", "int16": "int_contents"}
    fields |= {"int32": "int_contents", "int64": "int64_contents", "fp32": "fp32_contents", "fp64": "fp64_contents"}
    fields |= {"bytes": "bytes_contents"}  # tf_serving_json's nine: FP16, BF16 and UINT16 are raw-only or absent
    for alias, field in fields.items():
        array = DTYPES_INPUTS[alias]
        tensor = typed.inputs.add(name=alias, datatype=DATATYPES[array.dtype], shape=list(array.shape))
        getattr(tensor.contents, field).extend(array.tolist())
    typed.parameters["signature_name"].string_param = "tf_serving_json"
    async with grpc.aio.insecure_channel(gateway.url) as channel:
        reply = await service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(typed, timeout=SECONDS)
    inputs = {alias: DTYPES_INPUTS[alias] for alias in fields}
    expected = tf_outputs(version_dir(standin_models, "dtypes"), inputs, "tf_serving_json")
    result = triton.InferResult(reply)
    assert [o.name for o in reply.outputs] == sorted(expected)
    for name, array in expected.items():
        assert_equal(result.as_numpy(name), array, name)


async def test_results_equal_the_rest_fronts(gateway: Gateway) -> None:
    images = np.random.default_rng(11).random((3, 784), dtype=np.float32)
    grpc_result = await sync_call(gateway, lambda c: c.infer("mnist", [infer_input("images", images)]))

    def rest(client: triton_http.InferenceServerClient) -> triton_http.InferResult:
        item = triton_http.InferInput("images", list(images.shape), "FP32")
        item.set_data_from_numpy(images)
        return client.infer("mnist", [item])

    def run() -> triton_http.InferResult:
        client = triton_http.InferenceServerClient(f"127.0.0.1:{gateway.rest.port}")
        try:
            return rest(client)
        finally:
            client.close()

    rest_result = await asyncio.to_thread(run)
    for name in ("classes", "probabilities"):
        assert_equal(grpc_result.as_numpy(name), rest_result.as_numpy(name), name)


@pytest.mark.parametrize(("version", "offset"), [("1", 2.0), ("2", 3.0), ("stable", 2.0), ("canary", 3.0)])
async def test_versions_and_labels(gateway: Gateway, version: str, offset: float) -> None:
    x = np.array([1.0, 4.0], dtype=np.float32)
    async with triton_aio.InferenceServerClient(gateway.url) as client:
        result = await client.infer(HALF_PLUS_TWO, [infer_input("x", x)], model_version=version)
    np.testing.assert_array_equal(result.as_numpy("y"), x * np.float32(0.5) + np.float32(offset), strict=True)
    assert result.get_response().model_version == ("1" if offset == 2.0 else "2")


async def test_signature_and_unknown_parameters(gateway: Gateway, standin_models: Path) -> None:
    x = np.array([2.0], dtype=np.float32)
    result = await sync_call(
        gateway,
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", x)], priority=3, timeout=5_000_000, parameters={"k": "v"}),
    )
    np.testing.assert_array_equal(result.as_numpy("y"), np.array([4.0], dtype=np.float32), strict=True)


@pytest.mark.parametrize(
    ("deployment", "model", "offset"), [("hp2", "hp2", 3.0), ("hp2", HALF_PLUS_TWO, 3.0), ("hp2-v1", "hp2-v1", 2.0)]
)
async def test_a_deployment_chosen_by_metadata(gateway: Gateway, deployment: str, model: str, offset: float) -> None:
    x = np.array([1.0, 4.0], dtype=np.float32)
    headers = {"x-deployment-id": deployment}

    def use(c: triton.InferenceServerClient) -> tuple[Any, ...]:
        return (
            c.is_server_ready(headers=headers),
            c.get_model_metadata(model, headers=headers),
            c.infer(model, [infer_input("x", x)], headers=headers),
        )

    ready, meta, result = await sync_call(gateway, use)
    assert ready is True and meta.name == model
    assert result.get_response().model_name == model
    np.testing.assert_array_equal(result.as_numpy("y"), x * np.float32(0.5) + np.float32(offset), strict=True)


# --------------------------------------------------------------------------- errors, as the clients show them


def _shown(use: Callable[[triton.InferenceServerClient], Any]) -> Callable[[triton.InferenceServerClient], str]:
    def run(client: triton.InferenceServerClient) -> str:
        with pytest.raises(InferenceServerException) as caught:
            use(client)
        return f"{caught.value.status()}|{caught.value.message()}"

    return run


F32 = np.array([1.0], dtype=np.float32)
HP2 = {"x-deployment-id": "hp2"}
ERRORS: list[tuple[str, Callable[[triton.InferenceServerClient], Any], str, str]] = [
    ("unknown-model", lambda c: c.infer("nope", [infer_input("x", F32)]), "NOT_FOUND", "nope"),
    (
        "wrong-datatype",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32.astype(np.float64))]),
        "INVALID_ARGUMENT",
        "input 'x': model expects FP32 (DT_FLOAT), request has FP64",
    ),
    (
        "wrong-rank",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32.reshape(1, 1))]),
        "INVALID_ARGUMENT",
        "input 'x': model expects shape [-1], request has [1, 1]",
    ),
    (
        "unknown-input",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("z", F32)]),
        "INVALID_ARGUMENT",
        "unknown input 'z'",
    ),
    (
        "unknown-output",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32)], outputs=[triton.InferRequestedOutput("w")]),
        "INVALID_ARGUMENT",
        "unknown output 'w'",
    ),
    (
        "unknown-signature",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32)], parameters={"signature_name": "nope"}),
        "INVALID_ARGUMENT",
        'Serving signature name: "nope" not found in signature def',
    ),
    (
        "classification",
        lambda c: c.infer(
            HALF_PLUS_TWO, [infer_input("x", F32)], outputs=[triton.InferRequestedOutput("y", class_count=2)]
        ),
        "UNIMPLEMENTED",
        "classification output parameter is not supported",
    ),
    ("unknown-version", lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32)], model_version="9"), "NOT_FOUND", ""),
    (
        "version-overflow",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32)], model_version="99999999999999999999"),
        "INVALID_ARGUMENT",
        "Failed to convert version: 99999999999999999999 to numeric.",
    ),
    ("metadata-unknown-model", lambda c: c.get_model_metadata("nope"), "NOT_FOUND", "nope"),
    (
        "unknown-deployment",
        lambda c: c.infer("x", [infer_input("x", F32)], headers={"x-deployment-id": "nope"}),
        "NOT_FOUND",
        "Deployment not found: nope",
    ),
    (
        "deployment-other-model",
        lambda c: c.get_model_metadata("mnist", headers=HP2),
        "NOT_FOUND",
        "not served by deployment",
    ),
    (
        "deployment-ready-unknown",
        lambda c: c.is_server_ready(headers={"x-deployment-id": "nope"}),
        "NOT_FOUND",
        "Deployment not found: nope",
    ),
    ("triton-only-rpc", lambda c: c.get_inference_statistics(), "UNIMPLEMENTED", ""),
]


@pytest.mark.parametrize(("case", "use", "status", "message"), [pytest.param(*e, id=e[0]) for e in ERRORS])
async def test_errors_reach_the_client(
    gateway: Gateway, case: str, use: Callable[[triton.InferenceServerClient], Any], status: str, message: str
) -> None:
    got_status, got_message = (await sync_call(gateway, _shown(use))).split("|", 1)
    assert got_status == f"StatusCode.{status}", (got_status, got_message)
    assert message in got_message, got_message


async def test_status_message_is_the_rest_error_text(gateway: Gateway) -> None:
    async with triton_aio.InferenceServerClient(gateway.url) as client:
        with pytest.raises(InferenceServerException) as caught:
            await client.infer(HALF_PLUS_TWO, [infer_input("x", F32.astype(np.float64))])
    async with ClientSession() as session:
        doc = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
        async with session.post(gateway.rest.make_url(f"/v2/models/{HALF_PLUS_TWO}/infer"), json=doc) as reply:
            rest = await reply.json()
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert caught.value.message() == rest["error"]


TYPED_ERRORS = [
    ("mixed", "FP32", [1], "fp32_contents", [1.0], [b"\0\0\0\0"], "give every input raw or every input typed"),
    ("raw-count", "FP32", [1], None, None, [b"\0" * 4, b"\0" * 4], "raw_input_contents holds 2 entries for 1 inputs"),
    ("raw-size", "FP32", [2], None, None, [b"\0" * 4], "4 bytes of binary data"),
    ("typed-count", "FP32", [2], "fp32_contents", [1.0], [], "1 elements in contents.fp32_contents"),
    ("typed-field", "FP32", [1], "int_contents", [1], [], "FP32 data goes in contents.fp32_contents"),
    ("negative-dim", "FP32", [-1], "fp32_contents", [], [], "shape of integers >= 0"),
    ("unknown-datatype", "FP8", [1], None, None, [b"\0"], "unknown datatype"),
    ("fp16-typed", "FP16", [1], "fp32_contents", [1.0], [], "FP16 data travels only in raw_input_contents"),
    ("bytes-past-end", "BYTES", [1], None, None, [b"\xff\0\0\0ab"], "length-prefixed elements"),
]


@pytest.mark.parametrize(
    ("datatype", "shape", "field", "values", "raw", "message"), [pytest.param(*e[1:], id=e[0]) for e in TYPED_ERRORS]
)
async def test_malformed_tensors_are_invalid_argument(
    gateway: Gateway,
    datatype: str,
    shape: list[int],
    field: str | None,
    values: list[Any] | None,
    raw: list[bytes],
    message: str,
) -> None:
    model, name = ("string_bytes", "text") if datatype == "BYTES" else (HALF_PLUS_TWO, "x")
    request = service_pb2.ModelInferRequest(model_name=model, raw_input_contents=raw)
    tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
    if field is not None:
        getattr(tensor.contents, field).extend(values or [])
    async with grpc.aio.insecure_channel(gateway.url) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=SECONDS)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert message in (caught.value.details() or ""), caught.value.details()


async def test_bytes_that_are_not_a_request_are_invalid_argument(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(gateway.url) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"\xff\xff\xff", timeout=SECONDS)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "The request is not a valid inference.ModelInferRequest"


# --------------------------------------------------------------------------- health, reflection, metrics


async def test_grpc_health_follows_readiness(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(gateway.url) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService", "tensorflow.serving.PredictionService"):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=SECONDS)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=SECONDS)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_grpc_health_is_not_serving_when_a_backend_is_down(
    aiohttp_server: Callable[..., Any], unused_tcp_port: int
) -> None:
    settings = gateway_settings(
        f"127.0.0.1:{unused_tcp_port}",
        backends={
            "default": {
                "targets": [f"127.0.0.1:{unused_tcp_port}"],
                "health_check": {"interval_seconds": 0.1, "timeout_seconds": 0.1},
            }
        },
    )
    app = create_app(settings, registry=CollectorRegistry(), probes=True)
    await aiohttp_server(app)
    server = await GrpcServer.start(app[SERVICES], app[HEALTH], settings.server, 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=SECONDS)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        client = triton_aio.InferenceServerClient(f"127.0.0.1:{server.port}")
        try:
            assert await client.is_server_live() is True
            assert await client.is_server_ready() is False
        finally:
            await client.close()
    finally:
        await server.close()


async def test_reflection_lists_and_describes_our_services(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(gateway.url) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="tensorflow.serving.PredictionService"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1alpha.ServerReflection"),
        ]
        replies = [reply async for reply in stub.ServerReflectionInfo(iter(requests), timeout=SECONDS)]
    listed = {service.name for service in replies[0].list_services_response.service}
    assert {
        "inference.GRPCInferenceService",
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= listed
    from google.protobuf import descriptor_pb2

    oip_files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in replies[1].file_descriptor_response.file_descriptor_proto
    ]
    assert "inference/open_inference_grpc.proto" in [f.name for f in oip_files]
    oip_file = next(f for f in oip_files if f.name == "inference/open_inference_grpc.proto")
    assert [m.name for m in oip_file.service[0].method] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    ]
    tfs_files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in replies[2].file_descriptor_response.file_descriptor_proto
    ]
    assert any(f.package == "tensorflow.serving" and f.service for f in tfs_files)
    # Every listed service is described too, health's and reflection's own included (grpcurl describe).
    for reply, service in zip(
        replies[3:], ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"), strict=True
    ):
        assert reply.HasField("file_descriptor_response"), (service, reply.error_response.error_message)
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in reply.file_descriptor_response.file_descriptor_proto
        ]
        assert any(f"{f.package}.{svc.name}" == service for f in files for svc in f.service), service


async def test_metrics_count_every_route(gateway: Gateway) -> None:
    def use(c: triton.InferenceServerClient) -> None:
        c.is_server_live()
        c.is_server_ready()
        c.get_server_metadata()
        c.is_model_ready(HALF_PLUS_TWO)
        c.get_model_metadata(HALF_PLUS_TWO)
        c.infer(HALF_PLUS_TWO, [infer_input("x", F32)])
        with pytest.raises(InferenceServerException):
            c.infer("nope", [infer_input("x", F32)])

    await sync_call(gateway, use)
    async with ClientSession() as session, session.get(gateway.rest.make_url("/metrics")) as reply:
        page = await reply.text()
    for kind in ("live", "ready", "server_metadata", "model_ready", "model_metadata", "infer"):
        assert requests_total(page, f"grpc_v2_{kind}", "200") == 1.0, kind
    assert requests_total(page, "grpc_v2_infer", "404") == 1.0
    assert 'tfs_gateway_http_requests_in_flight{route="grpc_v2_infer"} 0.0' in page
