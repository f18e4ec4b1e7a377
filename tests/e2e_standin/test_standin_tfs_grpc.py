"""TF Serving's own gRPC API through the gateway's gRPC port, against the stand-in.

The gateway runs as ``python -m gateway`` with ``server.grpc_port`` set; the clients are
tensorflow-serving-api's ``PredictionServiceStub`` and ``ModelServiceStub``. Where the gateway
passes bytes through, its replies must equal a direct call to the stand-in byte for byte.
"""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
import tensorflow as tf
from gateway_process import DEADLINE_SECONDS, GrpcGateway
from google.protobuf.message import Message
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)
from tensorflow_serving.apis.model_service_pb2_grpc import ModelServiceStub
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub

from devserver.testing import DevServer

from .conftest import CLASSIFY, DEPLOYMENTS, HALF_PLUS_TWO, REGRESS, serialized_examples

API_KEY = "grpc-test-key"
Stubs = tuple[PredictionServiceStub, ModelServiceStub]


def _config(standin: DevServer, **sections: Any) -> dict[str, Any]:
    return {
        "server": {"grpc_port": 0},
        "backends": {"default": {"targets": [standin.address]}},
        "deployments": {name: dict(spec) for name, spec in DEPLOYMENTS.items()},
        **sections,
    }


def _stubs(channel: grpc.aio.Channel) -> Stubs:
    return PredictionServiceStub(channel), ModelServiceStub(channel)


@pytest.fixture
async def through(standin: DevServer) -> AsyncIterator[tuple[GrpcGateway, Stubs]]:
    async with GrpcGateway(_config(standin)) as gw, grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
        yield gw, _stubs(ch)


@pytest.fixture
async def direct(standin: DevServer) -> AsyncIterator[Stubs]:
    async with grpc.aio.insecure_channel(standin.address) as channel:
        yield _stubs(channel)


def _spec(name: str = HALF_PLUS_TWO, signature: str = "", version: int | None = None) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        spec.version.value = version
    return spec


def _examples() -> input_pb2.Input:
    listed = input_pb2.ExampleList()
    for serialized in serialized_examples([1.0, 2.5, -4.0]):
        listed.examples.add().ParseFromString(serialized)
    return input_pb2.Input(example_list=listed)


def _predict(spec: model_pb2.ModelSpec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=spec)
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0, 5.5], dtype=np.float32)))
    return request


# (stub method name, which stub, request) for each of the five calls
CALLS: dict[str, tuple[int, Message]] = {
    "Predict": (0, _predict(_spec())),
    "Classify": (0, classification_pb2.ClassificationRequest(model_spec=_spec(signature=CLASSIFY), input=_examples())),
    "Regress": (0, regression_pb2.RegressionRequest(model_spec=_spec(signature=REGRESS), input=_examples())),
    "GetModelMetadata": (
        0,
        get_model_metadata_pb2.GetModelMetadataRequest(model_spec=_spec(), metadata_field=["signature_def"]),
    ),
    "GetModelStatus": (1, get_model_status_pb2.GetModelStatusRequest(model_spec=_spec())),
}


async def _call(stubs: Stubs, name: str, request: Message, **kwargs: Any) -> Message:
    reply: Message = await getattr(stubs[CALLS[name][0]], name)(request, timeout=DEADLINE_SECONDS, **kwargs)
    return reply


@pytest.mark.parametrize("name", CALLS)
async def test_replies_equal_the_standins_byte_for_byte(
    through: tuple[GrpcGateway, Stubs], direct: Stubs, name: str
) -> None:
    gw, stubs = through
    request = CALLS[name][1]
    expected = (await _call(direct, name, request)).SerializeToString()
    assert expected  # a reply with content, so equality says something
    assert (await _call(stubs, name, request)).SerializeToString() == expected
    async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/metrics") as response:
        scraped = await response.text()
    route = {"GetModelMetadata": "metadata", "GetModelStatus": "status"}.get(name, name.lower())
    assert re.search(rf'tfs_gateway_http_requests_total{{[^}}]*route="grpc_tfs_{route}"[^}}]*}} 1\.0', scraped)


async def test_unknown_model_is_modelservers_not_found(through: tuple[GrpcGateway, Stubs], direct: Stubs) -> None:
    request = predict_pb2.PredictRequest(model_spec=_spec("no_such_model"))
    with pytest.raises(grpc.aio.AioRpcError) as expected:
        await _call(direct, "Predict", request)
    with pytest.raises(grpc.aio.AioRpcError) as answered:
        await _call(through[1], "Predict", request)
    assert answered.value.code() == expected.value.code() == grpc.StatusCode.NOT_FOUND
    assert answered.value.details() == expected.value.details()
    assert "no_such_model" in (answered.value.details() or "")


async def test_the_request_id_comes_back_in_the_trailer(through: tuple[GrpcGateway, Stubs]) -> None:
    call = through[1][1].GetModelStatus(CALLS["GetModelStatus"][1], metadata=(("x-request-id", "grpc-req-7"),))
    await call
    assert ("x-request-id", "grpc-req-7") in tuple(await call.trailing_metadata() or ())


@pytest.mark.parametrize(("deployment", "version"), [("hp2", 2), ("hp2-v1", 1)])
async def test_a_deployment_chosen_by_metadata(
    through: tuple[GrpcGateway, Stubs], direct: Stubs, deployment: str, version: int
) -> None:
    # The request names no model: the deployment maps to half_plus_two and its pin.
    asked = _predict(_spec(""))
    meant = _predict(_spec(version=version))
    expected = await _call(direct, "Predict", meant)
    answered = await _call(through[1], "Predict", asked, metadata=(("x-deployment-id", deployment),))
    assert answered.SerializeToString() == expected.SerializeToString()
    assert answered.model_spec.version.value == version  # type: ignore[attr-defined]


async def test_an_unknown_deployment_is_not_found(through: tuple[GrpcGateway, Stubs]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _call(through[1], "Predict", _predict(_spec("")), metadata=(("x-deployment-id", "nope"),))
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "Deployment not found: nope"


async def test_auth_from_metadata(standin: DevServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY)
    config = _config(standin, auth={"type": "api_key", "api_keys": [{"file": str(key_file)}]})
    request = CALLS["GetModelStatus"][1]
    async with GrpcGateway(config) as gw, grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        stubs = _stubs(channel)
        for metadata in [(), (("x-api-key", "wrong"),)]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _call(stubs, "GetModelStatus", request, metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await _call(stubs, "GetModelStatus", request, metadata=(("x-api-key", API_KEY),))).model_version_status  # type: ignore[attr-defined]
        bearer = (("authorization", f"Bearer {API_KEY}"),)
        assert (await _call(stubs, "GetModelStatus", request, metadata=bearer)).model_version_status  # type: ignore[attr-defined]


async def test_sigterm_drains_the_grpc_port_and_exits_zero(standin: DevServer) -> None:
    async with GrpcGateway(_config(standin)) as gw, grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        stubs = _stubs(channel)
        assert (await _call(stubs, "GetModelStatus", CALLS["GetModelStatus"][1])).model_version_status  # type: ignore[attr-defined]
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _call(stubs, "GetModelStatus", CALLS["GetModelStatus"][1])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
