"""``deployments.<id>.signature_name``: the signature a deployment's requests use when they name none.

Deployment ``json-dtypes`` serves the dtypes model with ``tf_serving_json`` as its default: nine
inputs, where ``serving_default`` takes twelve (three of which TF Serving's JSON cannot carry). So
a v1 predict naming no signature succeeds only if the deployment's default was used; a request's
own ``signature_name`` still wins. Real HTTP into the gateway, real gRPC to the stand-in,
TensorFlow as the oracle.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from devserver.testing import DevServer
from gateway.config import Settings
from gateway.web.app import create_app

from .conftest import PredictCase, assert_predict_matches, strings, tf_outputs, version_dir
from .test_standin_oip_grpc import Gateway, gateway_settings, infer_input, start_gateway, sync_call
from .test_standin_oip_rest import wait_ready

DEPLOYMENT = "/model-serving/json-dtypes"
INPUTS = {
    "bool": np.array([True]),
    "int8": np.array([127], dtype=np.int8),
    "uint8": np.array([255], dtype=np.uint8),
    "int16": np.array([-(2**15)], dtype=np.int16),
    "int32": np.array([7], dtype=np.int32),
    "int64": np.array([2**53 + 1], dtype=np.int64),
    "fp32": np.array([0.5], dtype=np.float32),
    "fp64": np.array([0.1], dtype=np.float64),
    "bytes": strings("x"),
}
V2_TYPES = {np.bool_: "BOOL", np.int8: "INT8", np.uint8: "UINT8", np.int16: "INT16", np.int32: "INT32"}
V2_TYPES |= {np.int64: "INT64", np.float32: "FP32", np.float64: "FP64", np.object_: "BYTES"}


@pytest.fixture
async def server(standin: DevServer, aiohttp_server: Callable[..., Any]) -> AsyncIterator[TestServer]:
    config = Settings.from_mapping(
        {
            "backends": {"default": {"targets": [standin.address]}},
            "deployments": {
                "json-dtypes": {"model": "dtypes", "signature_name": "tf_serving_json"},
                "plain-dtypes": {"model": "dtypes"},
            },
        }
    )
    gateway: TestServer = await aiohttp_server(create_app(config, registry=CollectorRegistry(), probes=True))
    await wait_ready(gateway)
    yield gateway


async def call(server: TestServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with ClientSession() as session, session.request(method, server.make_url(path), json=body) as reply:
        return reply.status, json.loads(await reply.read())


def v2_inputs() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "datatype": V2_TYPES[array.dtype.type],
            "shape": list(array.shape),
            "data": [v.decode() for v in array] if array.dtype == object else array.tolist(),
        }
        for name, array in INPUTS.items()
    ]


async def test_v1_predict_uses_the_deployments_signature(server: TestServer, standin_models: Path) -> None:
    body = PredictCase("dtypes", "dtypes", INPUTS).body("columnar")
    assert "signature_name" not in body

    status, answer = await call(server, "POST", f"{DEPLOYMENT}:predict", body)

    assert status == 200, answer
    assert_predict_matches(
        answer, "columnar", tf_outputs(version_dir(standin_models, "dtypes"), INPUTS, "tf_serving_json")
    )
    # The same body on a deployment without a default reaches serving_default, which needs fp16 too.
    status, answer = await call(server, "POST", "/model-serving/plain-dtypes:predict", body)
    assert (status, answer["error"]) == (400, "Missing named input: bf16 in 'inputs' object."), answer


async def test_v1_requests_own_signature_wins(server: TestServer) -> None:
    status, answer = await call(server, "POST", f"{DEPLOYMENT}:predict", {"signature_name": "fp16", "inputs": [1.5]})
    assert status == 501 and answer["error"].endswith("to type: half"), answer


async def test_v2_infer_and_metadata_use_the_deployments_signature(server: TestServer, standin_models: Path) -> None:
    status, answer = await call(server, "POST", f"{DEPLOYMENT}/v2/models/json-dtypes/infer", {"inputs": v2_inputs()})

    assert status == 200, answer
    expected = tf_outputs(version_dir(standin_models, "dtypes"), INPUTS, "tf_serving_json")
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert sorted(outputs) == sorted(expected)
    for name, array in expected.items():
        got = outputs[name]["data"]
        if array.dtype == object:
            assert got == [v.decode() for v in array], name
        else:
            np.testing.assert_array_equal(np.array(got, dtype=array.dtype), array, err_msg=name, strict=True)

    status, meta = await call(server, "GET", f"{DEPLOYMENT}/v2/models/json-dtypes")
    assert status == 200, meta
    assert meta["properties"]["signature_name"] == "tf_serving_json"
    assert [i["name"] for i in meta["inputs"]] == sorted(INPUTS)
    status, meta = await call(server, "GET", "/model-serving/plain-dtypes/v2/models/dtypes")
    assert meta["properties"]["signature_name"] == "serving_default" and len(meta["inputs"]) == 12, meta


async def test_v2_requests_own_signature_wins(server: TestServer, standin_models: Path) -> None:
    x = np.array([2.5], dtype=np.float32)
    doc = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": x.tolist()}],
        "parameters": {"signature_name": "narrow"},
        "outputs": [{"name": "uint16"}],
    }
    status, answer = await call(server, "POST", f"{DEPLOYMENT}/v2/models/dtypes/infer", doc)
    assert status == 200, answer
    expected = tf_outputs(version_dir(standin_models, "dtypes"), {"x": x}, "narrow")["uint16"]
    assert answer["outputs"] == [{"name": "uint16", "datatype": "UINT16", "shape": [1], "data": expected.tolist()}]
    status, meta = await call(server, "GET", f"{DEPLOYMENT}/v2/models/dtypes?signature_name=narrow")
    assert meta["properties"]["signature_name"] == "narrow" and [i["name"] for i in meta["inputs"]] == ["x"], meta


async def test_grpc_model_metadata_and_infer_use_the_deployments_signature(
    standin: DevServer, standin_models: Path, aiohttp_server: Callable[..., Any]
) -> None:
    """OIP gRPC's ModelMetadata names no signature, so under ``x-deployment-id`` it is the deployment's."""
    settings = gateway_settings(
        standin.address,
        deployments={
            "json-dtypes": {"model": "dtypes", "signature_name": "tf_serving_json"},
            "plain-dtypes": {"model": "dtypes"},
        },
    )
    rest, grpc_server = await start_gateway(settings, aiohttp_server)
    gw = Gateway(rest, grpc_server.port)

    def use(client: triton.InferenceServerClient) -> tuple[Any, ...]:
        scoped, plain = {"x-deployment-id": "json-dtypes"}, {"x-deployment-id": "plain-dtypes"}
        inputs = [infer_input(name, array) for name, array in INPUTS.items()]
        return (
            client.get_model_metadata("dtypes", headers=scoped),
            client.get_model_metadata("dtypes", headers=plain),
            client.infer("dtypes", inputs, headers=scoped),
        )

    try:
        scoped_meta, plain_meta, result = await sync_call(gw, use)
    finally:
        await grpc_server.close()
    assert [i.name for i in scoped_meta.inputs] == sorted(INPUTS)
    assert len(plain_meta.inputs) == 12
    expected = tf_outputs(version_dir(standin_models, "dtypes"), INPUTS, "tf_serving_json")
    for name, array in expected.items():
        got = result.as_numpy(name)
        assert got is not None, name
        if array.dtype == object:
            assert list(got) == list(array), name
        else:
            np.testing.assert_array_equal(got, array, err_msg=name, strict=True)
