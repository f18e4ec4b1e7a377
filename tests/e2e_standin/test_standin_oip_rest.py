"""The Open Inference Protocol (V2) REST front, through tritonclient.http (sync and aio) and raw HTTP.

Every call goes over a real socket into the gateway (aiohttp on 127.0.0.1:0) and over real gRPC
into the ModelServer stand-in running the example SavedModels; TensorFlow, run here on the same
SavedModel, is the oracle. The sync client (geventhttpclient) blocks, so it runs on a thread while
the gateway keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import re
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import ml_dtypes
import numpy as np
import pytest
import requests
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from devserver.testing import DevServer
from gateway import __version__
from gateway.config import Settings
from gateway.web.app import create_app

from .conftest import DEPLOYMENTS, HALF_PLUS_TWO, LATEST, serialized_examples, strings, tf_outputs, version_dir

T = TypeVar("T")
X = np.array([1.0, 2.0, 0.1, -3.25, 1e-8, 3.4e38, np.inf, -np.inf, np.nan], dtype=np.float32)
MULTI_IO = {
    "a": np.array([[1.0, 2.0, 3.0], [0.1, 0.2, 0.3], [-1.5, 1e10, 7.0]], dtype=np.float32),
    "b": np.array([7, -(2**40), 2**53 + 1], dtype=np.int64),
    "s": strings("héllo wörld", "abc", ""),
}
# One input per datatype of the dtypes model, at its edges (wrap-around, sign, precision, non-finite).
EVERY_DATATYPE = {
    "bool": np.array([True, False]),
    "int8": np.array([-128, 127], dtype=np.int8),
    "uint8": np.array([0, 255], dtype=np.uint8),
    "int16": np.array([-(2**15), 2**15 - 1], dtype=np.int16),
    "uint16": np.array([0, 2**16 - 1], dtype=np.uint16),
    "int32": np.array([-(2**31), 2**31 - 1], dtype=np.int32),
    "int64": np.array([-(2**63), 2**53 + 1], dtype=np.int64),
    "fp16": np.array([0.1, -np.inf, 65504], dtype=np.float16),
    "bf16": np.array([0.1, 3e38, np.nan], dtype=ml_dtypes.bfloat16),
    "fp32": np.array([0.1, np.nan, 3.4e38], dtype=np.float32),
    "fp64": np.array([0.1, 1e300, -0.0], dtype=np.float64),
    "bytes": strings("h\u00e9llo", ""),
}
MODES = [pytest.param(True, id="binary"), pytest.param(False, id="json")]


READY_DEADLINE_SECONDS = 30.0


@pytest.fixture
async def server(standin: DevServer, aiohttp_server: Callable[..., Any]) -> AsyncIterator[TestServer]:
    """A gateway in front of the stand-in, once its readiness probes have passed (they run in the background)."""
    config = Settings.from_mapping(
        {
            "backends": {"default": {"targets": [standin.address]}},
            "deployments": {name: dict(spec) for name, spec in DEPLOYMENTS.items()},
        }
    )
    gateway: TestServer = await aiohttp_server(create_app(config, registry=CollectorRegistry(), probes=True))
    await wait_ready(gateway)
    yield gateway


async def wait_ready(gateway: TestServer) -> None:
    """Until /readyz passes: the readiness probes run in the background from startup."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_DEADLINE_SECONDS
    async with ClientSession() as session:
        while True:
            async with session.get(gateway.make_url("/readyz")) as reply:
                if reply.status == 200:
                    return
                assert loop.time() < deadline, await reply.text()
            await asyncio.sleep(0.05)


def host(server: TestServer, base: str = "") -> str:
    return f"127.0.0.1:{server.port}{base}"


async def sync_call(server: TestServer, use: Callable[[triton.InferenceServerClient], T], base: str = "") -> T:
    """Run ``use`` with a sync tritonclient on a thread of its own (it blocks; the gateway must not)."""

    def run() -> T:
        client = triton.InferenceServerClient(host(server, base))
        try:
            return use(client)
        finally:
            client.close()

    return await asyncio.to_thread(run)


async def both_clients(server: TestServer, use: Callable[[Any], Any], base: str = "") -> list[Any]:
    """``use`` through the sync client and then the aio one (where each call returns a coroutine)."""
    sync = await sync_call(server, use, base)
    async with triton_aio.InferenceServerClient(host(server, base)) as client:
        aio = await use(client)
    return [sync, aio]


def datatype(array: np.ndarray) -> str:
    return str(np_to_triton_dtype(array.dtype))


def infer_input(name: str, array: np.ndarray, binary: bool) -> triton.InferInput:
    item = triton.InferInput(name, list(array.shape), datatype(array))
    item.set_data_from_numpy(array, binary_data=binary)
    return item


def assert_equal(actual: np.ndarray | None, expected: np.ndarray, name: str) -> None:
    assert actual is not None, name
    if expected.dtype == object:
        assert actual.dtype == object, (name, actual.dtype)
        values = [v.encode() if isinstance(v, str) else bytes(v) for v in actual.ravel()]
        assert values == list(expected.ravel()), name
        assert actual.shape == expected.shape, name
        return
    if expected.dtype == ml_dtypes.bfloat16:
        # numpy's testing cannot see NaN in bfloat16; float32 holds every bfloat16 exactly.
        assert actual.dtype == expected.dtype, (name, actual.dtype)
        actual, expected = actual.astype(np.float32), expected.astype(np.float32)
    np.testing.assert_array_equal(actual, expected, err_msg=name, strict=True)


# --------------------------------------------------------------------------- health and metadata


async def test_sync_client_health_and_server_metadata(server: TestServer) -> None:
    live, ready, meta = await sync_call(
        server, lambda c: (c.is_server_live(), c.is_server_ready(), c.get_server_metadata())
    )
    assert live is True and ready is True
    assert meta == {"name": "tfserving-gateway", "version": __version__, "extensions": ["binary_tensor_data"]}


async def test_aio_client_health_and_server_metadata(server: TestServer) -> None:
    async with triton_aio.InferenceServerClient(host(server)) as client:
        assert await client.is_server_live() is True
        assert await client.is_server_ready() is True
        assert (await client.get_server_metadata())["name"] == "tfserving-gateway"


@pytest.mark.parametrize(
    ("model", "version", "expected"),
    [
        (HALF_PLUS_TWO, "", True),
        (HALF_PLUS_TWO, "1", True),
        (HALF_PLUS_TWO, "2", True),
        (HALF_PLUS_TWO, "stable", True),
        (HALF_PLUS_TWO, "9", False),
        ("no_such_model", "", False),
        ("mnist", "", True),
    ],
)
async def test_model_ready(server: TestServer, model: str, version: str, expected: bool) -> None:
    assert await sync_call(server, lambda c: c.is_model_ready(model, version)) is expected
    async with triton_aio.InferenceServerClient(host(server)) as client:
        assert await client.is_model_ready(model, version) is expected


async def test_model_metadata_describes_the_signature(server: TestServer) -> None:
    meta = await sync_call(server, lambda c: c.get_model_metadata(HALF_PLUS_TWO))
    assert meta == {
        "name": HALF_PLUS_TWO,
        "versions": ["1", "2"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        "properties": {
            "signature_name": "serving_default",
            "signatures": "classify_x_to_y,regress_x_to_y,regress_x_to_y2,serving_default",
        },
    }
    async with triton_aio.InferenceServerClient(host(server)) as client:
        multi = await client.get_model_metadata("multi_io")
    assert multi["inputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "b", "datatype": "INT64", "shape": [-1]},
        {"name": "s", "datatype": "BYTES", "shape": [-1]},
    ]
    assert [(o["name"], o["datatype"]) for o in multi["outputs"]] == [
        ("b_times_2", "INT64"),
        ("s_len", "INT32"),
        ("s_upper", "BYTES"),
        ("sum", "FP32"),
    ]


async def test_model_metadata_of_one_version_and_another_signature(server: TestServer) -> None:
    for meta in await both_clients(
        server,
        lambda c: c.get_model_metadata(HALF_PLUS_TWO, "1", query_params={"signature_name": "regress_x_to_y"}),
    ):
        assert meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "inputs", "datatype": "BYTES", "shape": [-1]}]
        assert meta["properties"]["signature_name"] == "regress_x_to_y"


# --------------------------------------------------------------------------- infer


@pytest.mark.parametrize("binary_in", MODES)
@pytest.mark.parametrize("binary_out", MODES)
async def test_sync_infer_half_plus_two_matches_tensorflow(
    server: TestServer, standin_models: Path, binary_in: bool, binary_out: bool
) -> None:
    outputs = [triton.InferRequestedOutput("y", binary_data=binary_out)]
    result = await sync_call(
        server, lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", X, binary_in)], outputs=outputs, request_id="42")
    )
    expected = tf_outputs(version_dir(standin_models, HALF_PLUS_TWO), {"x": X})
    assert_equal(result.as_numpy("y"), expected["y"], "y")
    response = result.get_response()
    assert response["id"] == "42" and response["model_name"] == HALF_PLUS_TWO
    assert response["model_version"] == str(LATEST[HALF_PLUS_TWO])
    assert ("parameters" in response["outputs"][0]) is binary_out


@pytest.mark.parametrize("binary_in", MODES)
@pytest.mark.parametrize("binary_out", MODES)
async def test_aio_infer_multi_io_every_dtype_matches_tensorflow(
    server: TestServer, standin_models: Path, binary_in: bool, binary_out: bool
) -> None:
    inputs = [infer_input(name, array, binary_in) for name, array in MULTI_IO.items()]
    names = ["sum", "b_times_2", "s_upper", "s_len"]
    outputs = [triton_aio.InferRequestedOutput(name, binary_data=binary_out) for name in names]
    async with triton_aio.InferenceServerClient(host(server)) as client:
        result = await client.infer("multi_io", inputs, outputs=outputs)
    expected = tf_outputs(version_dir(standin_models, "multi_io"), MULTI_IO)
    assert [o["name"] for o in result.get_response()["outputs"]] == names  # the requested order
    for name in names:
        assert_equal(result.as_numpy(name), expected[name], name)


async def test_unlisted_outputs_default_to_binary_and_all_signature_outputs(
    server: TestServer, standin_models: Path
) -> None:
    inputs = [infer_input(name, array, False) for name, array in MULTI_IO.items()]
    result = await sync_call(server, lambda c: c.infer("multi_io", inputs))
    expected = tf_outputs(version_dir(standin_models, "multi_io"), MULTI_IO)
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == sorted(expected)
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    for name, array in expected.items():
        assert_equal(result.as_numpy(name), array, name)


async def test_requested_outputs_reach_modelserver_as_the_output_filter(server: TestServer) -> None:
    inputs = [infer_input(name, array, True) for name, array in MULTI_IO.items()]
    outputs = [triton.InferRequestedOutput("s_len")]
    result = await sync_call(server, lambda c: c.infer("multi_io", inputs, outputs=outputs))
    assert [o["name"] for o in result.get_response()["outputs"]] == ["s_len"]
    lengths = np.array([len(v) for v in MULTI_IO["s"]], dtype=np.int32)
    np.testing.assert_array_equal(result.as_numpy("s_len"), lengths, strict=True)


async def test_mnist_images_in_binary(server: TestServer, standin_models: Path) -> None:
    images = np.random.default_rng(5).random((4, 784), dtype=np.float32)
    async with triton_aio.InferenceServerClient(host(server)) as client:
        result = await client.infer("mnist", [infer_input("images", images, True)])
    expected = tf_outputs(version_dir(standin_models, "mnist"), {"images": images})
    assert_equal(result.as_numpy("probabilities"), expected["probabilities"], "probabilities")
    assert_equal(result.as_numpy("classes"), expected["classes"], "classes")


@pytest.mark.parametrize(("version", "offset"), [("1", 2.0), ("2", 3.0), ("stable", 2.0), ("canary", 3.0)])
async def test_versions_and_labels(server: TestServer, version: str, offset: float) -> None:
    x = np.array([1.0, 4.0], dtype=np.float32)
    for result in await both_clients(
        server, lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", x, True)], model_version=version)
    ):
        np.testing.assert_array_equal(result.as_numpy("y"), x * np.float32(0.5) + np.float32(offset), strict=True)
        assert result.get_response()["model_version"] == ("1" if offset == 2.0 else "2")


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
async def test_compressed_requests_and_replies(server: TestServer, standin_models: Path, algorithm: str) -> None:
    images = np.random.default_rng(6).random((8, 784), dtype=np.float32)
    result = await sync_call(
        server,
        lambda c: c.infer(
            "mnist",
            [infer_input("images", images, True)],
            request_compression_algorithm=algorithm,
            response_compression_algorithm="gzip",
        ),
    )
    expected = tf_outputs(version_dir(standin_models, "mnist"), {"images": images})
    assert_equal(result.as_numpy("probabilities"), expected["probabilities"], "probabilities")
    async with triton_aio.InferenceServerClient(host(server)) as client:
        aio = await client.infer(
            "mnist",
            [infer_input("images", images, False)],
            request_compression_algorithm=algorithm,
            response_compression_algorithm="gzip",
        )
    assert_equal(aio.as_numpy("probabilities"), expected["probabilities"], "probabilities")


async def test_query_parameters_and_infer_parameters_are_ignored(server: TestServer) -> None:
    x = np.array([2.0], dtype=np.float32)
    for result in await both_clients(
        server,
        lambda c: c.infer(
            HALF_PLUS_TWO,
            [infer_input("x", x, True)],
            query_params={"test_1": 1, "test_2": "two"},
            priority=3,
            timeout=5_000_000,
            parameters={"custom": "value"},
        ),
    ):
        np.testing.assert_array_equal(result.as_numpy("y"), np.array([4.0], dtype=np.float32), strict=True)
    query = {"test_1": 1}
    for ready, meta in zip(
        await both_clients(server, lambda c: c.is_model_ready(HALF_PLUS_TWO, query_params=query)),
        await both_clients(server, lambda c: c.get_model_metadata(HALF_PLUS_TWO, query_params=query)),
        strict=True,
    ):
        assert ready is True and meta["name"] == HALF_PLUS_TWO


async def test_signature_chosen_with_parameters(server: TestServer, standin_models: Path) -> None:
    examples = serialized_examples([1.0, -2.5])
    result = await sync_call(
        server,
        lambda c: c.infer(
            HALF_PLUS_TWO,
            [infer_input("inputs", examples, True)],
            parameters={"signature_name": "regress_x_to_y"},
        ),
    )
    expected = tf_outputs(version_dir(standin_models, HALF_PLUS_TWO), {"inputs": examples}, "regress_x_to_y")
    assert_equal(result.as_numpy("outputs"), expected["outputs"], "outputs")


@pytest.mark.parametrize(
    ("base", "model", "offset"),
    [
        ("/model-serving/hp2", "hp2", 3.0),
        ("/model-serving/hp2", HALF_PLUS_TWO, 3.0),
        ("/model-serving/hp2-v1", "hp2-v1", 2.0),
    ],
)
async def test_deployment_base_path(server: TestServer, base: str, model: str, offset: float) -> None:
    x = np.array([1.0, 4.0], dtype=np.float32)

    def use(c: triton.InferenceServerClient) -> tuple[Any, ...]:
        return (
            c.is_server_live(),
            c.is_server_ready(),
            c.is_model_ready(model),
            c.get_model_metadata(model),
            c.infer(model, [infer_input("x", x, True)]),
        )

    live, ready, model_ready, meta, result = await sync_call(server, use, base)
    assert live and ready and model_ready
    assert meta["name"] == model
    assert result.get_response()["model_name"] == model
    np.testing.assert_array_equal(result.as_numpy("y"), x * np.float32(0.5) + np.float32(offset), strict=True)
    async with triton_aio.InferenceServerClient(host(server, base)) as client:
        assert await client.is_server_live() and await client.is_server_ready()
        assert await client.is_model_ready(model) is True
        assert (await client.get_server_metadata())["name"] == "tfserving-gateway"
        assert (await client.get_model_metadata(model))["name"] == model
        aio = await client.infer(model, [infer_input("x", x, False)])
    assert aio.get_response()["model_name"] == model
    np.testing.assert_array_equal(aio.as_numpy("y"), x * np.float32(0.5) + np.float32(offset), strict=True)


def dtype_inputs(binary: bool) -> list[triton.InferInput]:
    # tritonclient sends BF16 only as binary data, so the JSON case mixes it in as the one binary input.
    return [infer_input(name, array, binary or name == "bf16") for name, array in EVERY_DATATYPE.items()]


def assert_dtype_outputs(result: Any, standin_models: Path, binary_out: bool) -> None:
    expected = tf_outputs(version_dir(standin_models, "dtypes"), EVERY_DATATYPE)
    outputs = result.get_response()["outputs"]
    assert [o["name"] for o in outputs] == sorted(expected)
    assert {o["name"]: o["datatype"] for o in outputs} == {f"{n}_out": datatype(a) for n, a in EVERY_DATATYPE.items()}
    # BF16 is always binary: tritonclient could not read its non-finite values from JSON.
    assert all(("parameters" in o) is (binary_out or o["datatype"] == "BF16") for o in outputs), outputs
    for name, array in expected.items():
        assert_equal(result.as_numpy(name), array, name)
    np.testing.assert_array_equal(result.as_numpy("uint16_out"), np.array([1, 0], dtype=np.uint16), strict=True)


@pytest.mark.parametrize("binary_in", MODES)
@pytest.mark.parametrize("binary_out", MODES)
async def test_sync_infer_every_datatype_matches_tensorflow(
    server: TestServer, standin_models: Path, binary_in: bool, binary_out: bool
) -> None:
    # Binary out: no outputs listed, so tritonclient asks binary_data_output for all of them.
    outputs = (
        None
        if binary_out
        else [triton.InferRequestedOutput(f"{n}_out", binary_data=False) for n in sorted(EVERY_DATATYPE)]
    )
    result = await sync_call(server, lambda c: c.infer("dtypes", dtype_inputs(binary_in), outputs=outputs))
    assert_dtype_outputs(result, standin_models, binary_out)


@pytest.mark.parametrize("binary_in", MODES)
@pytest.mark.parametrize("binary_out", MODES)
async def test_aio_infer_every_datatype_matches_tensorflow(
    server: TestServer, standin_models: Path, binary_in: bool, binary_out: bool
) -> None:
    outputs = [triton_aio.InferRequestedOutput(f"{name}_out", binary_data=binary_out) for name in EVERY_DATATYPE]
    async with triton_aio.InferenceServerClient(host(server)) as client:
        result = await client.infer("dtypes", dtype_inputs(binary_in), outputs=sorted(outputs, key=lambda o: o.name()))
    assert_dtype_outputs(result, standin_models, binary_out)


def json_data(array: np.ndarray) -> list[Any]:
    """An array as V2 JSON ``data``: 16-bit floats as their float32 value, non-finite as strings."""
    if array.dtype == object:
        return [value.decode() for value in array]
    if array.dtype in (np.float16, ml_dtypes.bfloat16):
        array = array.astype(np.float32)
    return [_json_number(value) for value in array.tolist()]


def _json_number(value: Any) -> Any:
    if not isinstance(value, float) or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def json_outputs(headers: Any, text: str) -> dict[str, tuple[str, Any]]:
    """Each output's datatype and JSON data, or for a binary output its raw segment."""
    raw = text.encode("latin-1")
    length = int(headers.get("Inference-Header-Content-Length", len(raw)))
    got: dict[str, tuple[str, Any]] = {}
    offset = length
    for output in json.loads(raw[:length])["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        got[output["name"]] = (output["datatype"], output["data"] if size is None else raw[offset : offset + size])
        offset += size or 0
    assert offset == len(raw)
    return got


def assert_json_reply(got: dict[str, tuple[str, Any]], expected: dict[str, np.ndarray]) -> None:
    """A JSON-mode reply against the oracle: numbers read back in the dtype, BF16 always binary."""
    assert {name: datatype for name, (datatype, _) in got.items()} == {n: datatype(a) for n, a in expected.items()}
    for name, array in expected.items():
        data = got[name][1]
        if array.dtype == ml_dtypes.bfloat16:
            assert isinstance(data, bytes), name
            assert_equal(np.frombuffer(data, dtype=array.dtype), array, name)
        elif array.dtype == object:
            assert data == [value.decode() for value in array], name
        else:
            assert_equal(np.array(data, dtype=array.dtype), array, name)


async def test_every_datatype_as_raw_json_both_ways(server: TestServer, standin_models: Path) -> None:
    """What tritonclient cannot send (BF16 as JSON numbers), and what a JSON reply holds, element by element."""
    inputs = [
        {"name": name, "datatype": datatype(array), "shape": list(array.shape), "data": json_data(array)}
        for name, array in EVERY_DATATYPE.items()
    ]
    status, headers, text = await post(server, "/v2/models/dtypes/infer", json.dumps({"inputs": inputs}).encode(), {})
    assert status == 200, text
    expected = tf_outputs(version_dir(standin_models, "dtypes"), EVERY_DATATYPE)
    got = json_outputs(headers, text)
    assert list(got) == sorted(expected)
    assert_json_reply(got, expected)
    # FP16 0.1 + 1 is the half 1.099609375, written as the shortest float32 text that reads back to it.
    assert got["fp16_out"][1][0] == 1.0996094


async def test_narrow_outputs_in_json(server: TestServer, standin_models: Path) -> None:
    x = np.array([0.1, 2.5, 65504.0], dtype=np.float32)  # casts to uint16 stay in range: no C++ UB
    doc = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": x.tolist()}],
        "outputs": [{"name": name, "parameters": {"binary_data": False}} for name in ("fp16", "uint16", "bf16")],
    }
    doc["parameters"] = {"signature_name": "narrow"}
    status, headers, text = await post(server, "/v2/models/dtypes/infer", json.dumps(doc).encode(), {})
    assert status == 200, text
    expected = tf_outputs(version_dir(standin_models, "dtypes"), {"x": x}, "narrow")
    got = json_outputs(headers, text)
    assert list(got) == ["fp16", "uint16", "bf16"]  # the requested order
    assert_json_reply(got, expected)


# --------------------------------------------------------------------------- errors, as the clients show them


def _raises(use: Callable[[triton.InferenceServerClient], Any]) -> Callable[[triton.InferenceServerClient], str]:
    def run(client: triton.InferenceServerClient) -> str:
        with pytest.raises(InferenceServerException) as caught:
            use(client)
        return f"{caught.value.status()}|{caught.value.message()}"

    return run


F32 = np.array([1.0], dtype=np.float32)
ERRORS: list[tuple[str, Callable[[triton.InferenceServerClient], Any], str, str]] = [
    ("unknown-model", lambda c: c.infer("nope", [infer_input("x", F32, True)]), "404", "nope"),
    (
        "wrong-datatype",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32.astype(np.float64), True)]),
        "400",
        "input 'x': model expects FP32 (DT_FLOAT), request has FP64",
    ),
    (
        "wrong-rank",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32.reshape(1, 1), True)]),
        "400",
        "input 'x': model expects shape [-1], request has [1, 1]",
    ),
    ("unknown-input", lambda c: c.infer(HALF_PLUS_TWO, [infer_input("z", F32, True)]), "400", "unknown input 'z'"),
    (
        "unknown-output",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32, True)], outputs=[triton.InferRequestedOutput("w")]),
        "400",
        "unknown output 'w'",
    ),
    (
        "unknown-signature",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32, True)], parameters={"signature_name": "nope"}),
        "400",
        'Serving signature name: "nope" not found in signature def',
    ),
    (
        "non-utf8-json-output",
        lambda c: c.infer(
            "string_bytes",
            [infer_input("text", strings("a"), True)],
            outputs=[triton.InferRequestedOutput("raw_bytes", binary_data=False)],
        ),
        "400",
        "output 'raw_bytes' element 0 is not valid UTF-8; request binary_data",
    ),
    ("unknown-version", lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32, True)], model_version="9"), "404", ""),
    ("metadata-unknown-model", lambda c: c.get_model_metadata("nope"), "404", "nope"),
    (
        "metadata-unknown-signature",
        lambda c: c.get_model_metadata(HALF_PLUS_TWO, query_params={"signature_name": "nope"}),
        "400",
        '"nope" not found',
    ),
    ("deployment-other-model", lambda c: c.get_model_metadata("mnist"), "404", "not served by deployment"),
    (
        "classification-output",
        lambda c: c.infer(
            HALF_PLUS_TWO, [infer_input("x", F32, True)], outputs=[triton.InferRequestedOutput("y", class_count=2)]
        ),
        "501",
        "The classification output parameter is not supported",
    ),
    (
        "bytes-where-floats",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", strings("1.0"), False)]),
        "400",
        "input 'x': model expects FP32 (DT_FLOAT), request has BYTES",
    ),
    (
        "element-count",
        lambda c: c.infer(HALF_PLUS_TWO, [_lying_shape(F32, [3])]),
        "400",
        "input 'x': 1 elements in 'data', but shape [3] holds 3",
    ),
    (
        "missing-input",
        lambda c: c.infer("multi_io", [infer_input("a", MULTI_IO["a"], True)]),
        "400",
        "missing input 'b'",
    ),
    (
        "version-label-unknown",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", F32, True)], model_version="nope"),
        "400",  # ModelServer's INVALID_ARGUMENT, as on v1
        "Unrecognized servable version label: nope",
    ),
    ("metadata-unknown-version", lambda c: c.get_model_metadata(HALF_PLUS_TWO, "9"), "404", ""),
]


def _lying_shape(array: np.ndarray, shape: list[int]) -> triton.InferInput:
    """JSON data whose element count disagrees with the shape tritonclient declares (it checks binary itself)."""
    item = triton.InferInput("x", list(array.shape), datatype(array))
    item.set_data_from_numpy(array, binary_data=False)
    item.set_shape(shape)
    return item


@pytest.mark.parametrize(("case", "use", "status", "message"), [pytest.param(*e, id=e[0]) for e in ERRORS])
async def test_errors_reach_the_client(
    server: TestServer, case: str, use: Callable[[triton.InferenceServerClient], Any], status: str, message: str
) -> None:
    base = "/model-serving/hp2" if case.startswith("deployment-") else ""
    shown = await sync_call(server, _raises(use), base)
    got_status, got_message = shown.split("|", 1)
    assert got_status == status, shown
    assert message in got_message, shown


@pytest.mark.parametrize(("case", "use", "status", "message"), [pytest.param(*e, id=e[0]) for e in ERRORS])
async def test_errors_reach_the_aio_client(
    server: TestServer, case: str, use: Callable[[Any], Any], status: str, message: str
) -> None:
    """The same calls through tritonclient.http.aio (they return coroutines there): same status, same text."""
    base = "/model-serving/hp2" if case.startswith("deployment-") else ""
    async with triton_aio.InferenceServerClient(host(server, base)) as client:
        with pytest.raises(InferenceServerException) as caught:
            await use(client)
    assert caught.value.status() == status, caught.value
    assert message in caught.value.message(), caught.value


async def test_binary_bytes_output_carries_non_utf8(server: TestServer, standin_models: Path) -> None:
    text = strings("hello", "ünïcödé ✓", "")
    async with triton_aio.InferenceServerClient(host(server)) as client:
        result = await client.infer("string_bytes", [infer_input("text", text, True)])
    expected = tf_outputs(version_dir(standin_models, "string_bytes"), {"text": text})
    assert_equal(result.as_numpy("raw_bytes"), expected["raw_bytes"], "raw_bytes")
    assert_equal(result.as_numpy("echo"), expected["echo"], "echo")


async def test_aio_client_shows_the_error_text(server: TestServer) -> None:
    async with triton_aio.InferenceServerClient(host(server)) as client:
        with pytest.raises(InferenceServerException) as caught:
            await client.infer(HALF_PLUS_TWO, [infer_input("x", F32.astype(np.float64), False)])
    assert caught.value.status() == "400"
    assert caught.value.message() == "input 'x': model expects FP32 (DT_FLOAT), request has FP64"


# --------------------------------------------------------------------------- raw HTTP: framing and routes


def framed(header: dict[str, Any], *segments: bytes) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(header).encode()
    return text + b"".join(segments), {"Inference-Header-Content-Length": str(len(text))}


ONE_X = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]}
TWO_FLOATS = struct.pack("<2f", 1.0, 2.0)


async def post(server: TestServer, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, str]:
    async with ClientSession() as session, session.post(server.make_url(path), data=body, headers=headers) as reply:
        raw = await reply.read()
        return reply.status, reply.headers, raw.decode("latin-1")


FRAMING = [
    ("header-past-body", b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}),
    ("header-zero", b'{"inputs": []}', {"Inference-Header-Content-Length": "0"}),
    ("header-not-digits", b'{"inputs": []}', {"Inference-Header-Content-Length": "1e3"}),
    ("size-without-header", json.dumps(ONE_X).encode() + TWO_FLOATS, {}),
    ("sizes-short", *framed(ONE_X, TWO_FLOATS + b"\0")),
    ("sizes-long", *framed(ONE_X, TWO_FLOATS[:7])),
    (
        "segment-not-shape",
        *framed({"inputs": [{**ONE_X["inputs"][0], "parameters": {"binary_data_size": 4}}]}, TWO_FLOATS[:4]),
    ),
    (
        "size-negative",
        *framed({"inputs": [{**ONE_X["inputs"][0], "parameters": {"binary_data_size": -8}}]}, TWO_FLOATS),
    ),
    ("data-and-size", *framed({"inputs": [{**ONE_X["inputs"][0], "data": [1, 2]}]}, TWO_FLOATS)),
]


@pytest.mark.parametrize(("body", "headers"), [pytest.param(*f[1:], id=f[0]) for f in FRAMING])
async def test_bad_framing_is_a_400_with_the_v2_envelope(
    server: TestServer, body: bytes, headers: dict[str, str]
) -> None:
    status, reply_headers, text = await post(server, f"/v2/models/{HALF_PLUS_TWO}/infer", body, headers)
    assert status == 400, text
    assert reply_headers["Content-Type"] == "application/json"
    doc = json.loads(text)
    assert next(iter(doc)) == "error" and doc["code"] == 400, doc


async def test_raw_binary_request_and_reply_as_the_spec_shows(server: TestServer) -> None:
    header = {
        "id": "42",
        "inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
    }
    body, headers = framed(header, TWO_FLOATS)
    async with ClientSession() as session:
        url = server.make_url(f"/v2/models/{HALF_PLUS_TWO}/versions/1/infer")
        async with session.post(url, data=body, headers=headers) as reply:
            raw = await reply.read()
            assert reply.status == 200, raw
            assert reply.headers["Content-Type"] == "application/octet-stream"
            length = int(reply.headers["Inference-Header-Content-Length"])
    assert json.loads(raw[:length]) == {
        "id": "42",
        "model_name": HALF_PLUS_TWO,
        "model_version": "1",
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}],
    }
    assert raw[length:] == struct.pack("<2f", 2.5, 3.0)


async def test_json_reply_writes_non_finite_floats_as_strings(server: TestServer) -> None:
    doc = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": ["NaN", "Infinity", 1.0]}]}
    status, headers, text = await post(server, f"/v2/models/{HALF_PLUS_TWO}/infer", json.dumps(doc).encode(), {})
    assert status == 200, text
    assert headers["Content-Type"] == "application/json" and "Inference-Header-Content-Length" not in headers
    assert json.loads(text)["outputs"][0]["data"] == ["NaN", "Infinity", 3.5]


async def test_gzipped_request_body_without_a_client(server: TestServer) -> None:
    body, headers = framed(ONE_X, TWO_FLOATS)
    status, _, text = await post(
        server, f"/v2/models/{HALF_PLUS_TWO}/infer", gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
    )
    assert status == 200, text
    status, _, text = await post(
        server, f"/v2/models/{HALF_PLUS_TWO}/infer", b"not gzip", {**headers, "Content-Encoding": "gzip"}
    )
    assert status == 400, text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/models/half_plus_two/infer", 405),
        ("POST", "/v2/health/live", 405),
        ("GET", "/v2/repository/index", 501),
        ("POST", "/v2/repository/models/half_plus_two/load", 501),
        ("GET", "/v2/models/half_plus_two/stats", 501),
        ("GET", "/v2/models/half_plus_two/versions/1/config", 501),
        ("POST", "/v2/systemsharedmemory/status", 501),
        ("POST", "/v2/models/half_plus_two/generate", 501),
        ("GET", "/v2/models/stats", 404),  # metadata of a model named "stats": core routes win
        ("GET", "/v2/nothing", 404),
        ("GET", "/v2/models/half_plus_two/versions/99999999999999999999", 400),
        ("GET", "/model-serving/nope/v2/health/live", 404),
        ("GET", "/model-serving/hp2/v2/models/mnist", 404),
    ],
)
async def test_route_errors(server: TestServer, method: str, path: str, status: int) -> None:
    async with ClientSession() as session, session.request(method, server.make_url(path)) as reply:
        text = await reply.text()
        assert reply.status == status, text
        assert reply.headers["Content-Type"] == "application/json"
        assert next(iter(json.loads(text))) == "error"


async def test_health_bodies_and_v2_metrics_routes(server: TestServer) -> None:
    async with ClientSession() as session:
        for path, body in [("/v2/health/live", {"live": True}), ("/v2/health/ready", {"ready": True})]:
            async with session.get(server.make_url(path)) as reply:
                assert reply.status == 200 and await reply.json() == body
        async with session.get(server.make_url(f"/v2/models/{HALF_PLUS_TWO}/ready")) as reply:
            assert await reply.json() == {"name": HALF_PLUS_TWO, "ready": True}
        async with session.get(server.make_url("/metrics")) as reply:
            page = await reply.text()
    assert 'route="v2_live"' in page and 'route="v2_model_ready"' in page


async def test_metadata_is_never_gzipped_infer_is(server: TestServer) -> None:
    async with ClientSession(auto_decompress=False) as session:
        headers = {"Accept-Encoding": "gzip, deflate"}
        async with session.get(server.make_url("/v2/models/multi_io"), headers=headers) as reply:
            assert "Content-Encoding" not in reply.headers
            json.loads(await reply.read())
        images = np.zeros((64, 784), dtype=np.float32).tolist()  # 640 probabilities: over gzip's 1 KiB floor
        doc = {"inputs": [{"name": "images", "shape": [64, 784], "datatype": "FP32", "data": images}]}
        async with session.post(server.make_url("/v2/models/mnist/infer"), json=doc, headers=headers) as reply:
            assert reply.status == 200
            assert reply.headers["Content-Encoding"] == "gzip"
            assert json.loads(gzip.decompress(await reply.read()))["model_name"] == "mnist"


# --------------------------------------------------------------------------- the README's example

README = Path(__file__).resolve().parents[2] / "README.md"
_README_BLOCKS = re.compile(
    r"## Open Inference Protocol \(V2\)\n.*?```python\n(?P<code>.*?)```\n\nprints\n\n```text\n(?P<out>.*?)```",
    re.DOTALL,
)


async def test_readme_tritonclient_example_prints_what_the_readme_shows(
    standin: DevServer, aiohttp_server: Callable[..., Any]
) -> None:
    match = _README_BLOCKS.search(README.read_text(encoding="utf-8"))
    assert match is not None, "README lost its Open Inference Protocol example"
    config = Settings.from_mapping(
        {"backends": {"default": {"targets": [standin.address]}}, "deployments": {"demo": {"model": HALF_PLUS_TWO}}}
    )
    gateway: TestServer = await aiohttp_server(create_app(config, registry=CollectorRegistry(), probes=True))
    await wait_ready(gateway)
    code = match.group("code").replace("localhost:8501", f"127.0.0.1:{gateway.port}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode() == match.group("out")


# --------------------------------------------------------------------------- framing fuzz through the socket


HEADER_TEXT = "0123456789 +-.xe"  # what a header value may carry (aiohttp itself refuses control bytes)


@st.composite
def hostile_infer(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A half_plus_two infer body with hostile binary framing, and its headers."""
    count = draw(st.integers(0, 4))
    entry: dict[str, Any] = {"name": draw(st.sampled_from(["x", "x", "y"])), "datatype": "FP32", "shape": [count]}
    size = draw(st.one_of(st.just(4 * count), st.integers(-2, 24), st.sampled_from([2**40, 1.0, "4"])))
    entry["parameters"] = {"binary_data_size": size}
    header = json.dumps({"inputs": [entry]}).encode()
    tail = draw(st.binary(max_size=24))
    length = draw(
        st.one_of(
            st.just(str(len(header))), st.integers(-1, len(header) + 30).map(str), st.text(HEADER_TEXT, max_size=4)
        )
    )
    headers = {} if draw(st.booleans()) and length == str(len(header)) else {"Inference-Header-Content-Length": length}
    return header + tail, headers


async def test_hostile_binary_framing_gets_a_4xx_or_an_answer_never_a_5xx(server: TestServer) -> None:
    url = str(server.make_url(f"/v2/models/{HALF_PLUS_TWO}/infer"))

    @settings(max_examples=80, deadline=None, derandomize=True, database=None)
    @given(case=hostile_infer())
    def check(case: tuple[bytes, dict[str, str]]) -> None:
        body, headers = case
        reply = requests.post(url, data=body, headers=headers, timeout=30)
        assert reply.status_code < 500, reply.text
        if reply.status_code >= 300:
            assert reply.status_code >= 400 and next(iter(reply.json())) == "error", reply.text

    await asyncio.to_thread(check)


# --------------------------------------------------------------------------- the gateway's own refusals

API_KEY = "oip-secret"


@pytest.fixture
async def guarded(standin: DevServer, aiohttp_server: Callable[..., Any]) -> AsyncIterator[TestServer]:
    """A gateway whose mnist needs an API key, whose bodies stop at 64 KiB, and whose deployment
    ``down`` sits on a backend nothing listens on."""
    config = Settings.from_mapping(
        {
            "server": {"max_request_bytes": 65536},
            "backends": {"default": {"targets": [standin.address]}, "dead": {"targets": ["127.0.0.1:1"]}},
            "models": {"overrides": {"mnist": {"auth": {"type": "api_key", "api_keys": [{"env": "OIP_KEY"}]}}}},
            "deployments": {"down": {"model": HALF_PLUS_TWO, "backend": "dead"}},
        },
        env={"OIP_KEY": API_KEY},
    )
    yield await aiohttp_server(create_app(config, registry=CollectorRegistry()))


IMAGE = np.zeros((1, 784), dtype=np.float32)
REFUSALS: list[tuple[str, str, Callable[[Any], Any], str, str]] = [
    ("no-key", "", lambda c: c.infer("mnist", [infer_input("images", IMAGE, True)]), "401", "Authentication required"),
    (
        "wrong-key",
        "",
        lambda c: c.get_model_metadata("mnist", headers={"x-api-key": "nope"}),
        "401",
        "Invalid credentials",
    ),
    (
        "too-large",
        "",
        lambda c: c.infer(HALF_PLUS_TWO, [infer_input("x", np.zeros(20_000, dtype=np.float32), True)]),
        "413",
        "Request body is larger than the limit of 65536 bytes",
    ),
    (
        "backend-down",
        "/model-serving/down",
        lambda c: c.infer("down", [infer_input("x", F32, True)]),
        "503",
        "Backend dead is unavailable",
    ),
]


@pytest.mark.parametrize(("case", "base", "use", "status", "message"), [pytest.param(*r, id=r[0]) for r in REFUSALS])
async def test_gateway_refusals_reach_both_clients(
    guarded: TestServer, case: str, base: str, use: Callable[[Any], Any], status: str, message: str
) -> None:
    shown = await sync_call(guarded, _raises(use), base)
    assert shown.split("|", 1)[0] == status and message in shown, shown
    async with triton_aio.InferenceServerClient(host(guarded, base)) as client:
        with pytest.raises(InferenceServerException) as caught:
            await use(client)
    assert caught.value.status() == status and message in (caught.value.message() or ""), caught.value


async def test_the_right_key_passes_and_an_unreachable_model_is_not_ready(guarded: TestServer) -> None:
    headers = {"x-api-key": API_KEY}
    for result in await both_clients(
        guarded, lambda c: c.infer("mnist", [infer_input("images", IMAGE, True)], headers=headers)
    ):
        assert result.as_numpy("classes").shape == (1,)
    assert await both_clients(guarded, lambda c: c.is_model_ready("down"), "/model-serving/down") == [False, False]
    assert await both_clients(guarded, lambda c: c.is_server_ready(), "/model-serving/down") == [False, False]
