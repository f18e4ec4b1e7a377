"""The fake ModelServer, exercised with a plain grpc.aio client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest
from fake_backend import (
    HANG,
    MALFORMED,
    Abort,
    Delay,
    FakeModelServer,
    example,
    make_tensor,
    signature,
    tensor_shape,
    to_ndarray,
)
from google.protobuf.message import Message

from gateway._pb.tensorflow.core.example import feature_pb2
from gateway._pb.tensorflow.core.framework import types_pb2
from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

HALF = signature(inputs={"x": ("DT_FLOAT", [-1])}, outputs={"y": ("DT_FLOAT", [-1])})


@pytest.fixture
async def fake() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as server:
        server.add_model(
            "hpt", versions={1: {"serving_default": HALF}, 2: {"serving_default": HALF}}, labels={"stable": 1}
        )
        yield server


@pytest.fixture
async def channel(fake: FakeModelServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(fake.target) as chan:
        yield chan


def prediction_stub(channel: grpc.aio.Channel) -> Any:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)  # type: ignore[no-untyped-call]


def model_stub(channel: grpc.aio.Channel) -> Any:
    return model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]


def spec(name: str = "hpt", version: int | None = None, label: str | None = None) -> model_pb2.ModelSpec:
    model_spec = model_pb2.ModelSpec(name=name)
    if version is not None:
        model_spec.version.value = version
    if label is not None:
        model_spec.version_label = label
    return model_spec


def predict_request(values: list[float], **spec_args: object) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=spec(**spec_args))  # type: ignore[arg-type]
    request.inputs["x"].CopyFrom(make_tensor(values, "DT_FLOAT"))
    return request


async def predict(channel: grpc.aio.Channel, request: Message, timeout: float | None = None) -> Message:
    stub = prediction_stub(channel)
    return await stub.Predict(request, timeout=timeout, metadata=(("x-request-id", "rid-1"),))  # type: ignore[no-any-return]


async def rpc_error(call: asyncio.Future[Message] | object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


async def test_predict_echoes_half_plus_two_and_records(fake: FakeModelServer, channel: grpc.aio.Channel) -> None:
    reply = await predict(channel, predict_request([1.0, 2.0, 5.0]))
    assert to_ndarray(reply.outputs["y"]).tolist() == [2.5, 3.0, 4.5]  # type: ignore[attr-defined]
    assert reply.model_spec.version.value == 2  # type: ignore[attr-defined]
    seen = fake.last("Predict")
    assert seen.request.model_spec.name == "hpt"  # type: ignore[attr-defined]
    assert seen.metadata["x-request-id"] == "rid-1"
    assert fake.methods() == ["Predict"]


async def test_scripted_queue_then_default(fake: FakeModelServer, channel: grpc.aio.Channel) -> None:
    scripted = predict_pb2.PredictResponse()
    scripted.outputs["z"].CopyFrom(make_tensor([7], "DT_INT64"))
    fake.enqueue("Predict", scripted)
    fake.set_reply("Predict", lambda request, context: Abort(grpc.StatusCode.INTERNAL, "from callable"))
    assert await predict(channel, predict_request([1.0])) == scripted
    error = await rpc_error(predict(channel, predict_request([1.0])))
    assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, "from callable")


async def test_scripted_error(fake: FakeModelServer, channel: grpc.aio.Channel) -> None:
    fake.enqueue("Predict", Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too much"))
    error = await rpc_error(predict(channel, predict_request([1.0])))
    assert (error.code(), error.details()) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "too much")


async def test_async_callable_reply(fake: FakeModelServer, channel: grpc.aio.Channel) -> None:
    async def reply(request: Message, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await asyncio.sleep(0)

    fake.enqueue("Predict", reply)
    result = await predict(channel, predict_request([0.0]))
    assert to_ndarray(result.outputs["y"]).tolist() == [2.0]  # type: ignore[attr-defined]


async def test_delay_is_cancelled_by_deadline(fake: FakeModelServer, channel: grpc.aio.Channel) -> None:
    fake.enqueue("Predict", Delay(5.0))
    error = await rpc_error(predict(channel, predict_request([1.0]), timeout=0.2))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _eventually(lambda: fake.cancelled == ["Predict"])


async def test_hang_until_cancelled(fake: FakeModelServer, channel: grpc.aio.Channel) -> None:
    fake.set_reply("Predict", HANG)
    error = await rpc_error(predict(channel, predict_request([1.0]), timeout=0.2))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _eventually(lambda: fake.cancelled == ["Predict"])


async def test_delay_then_answers(fake: FakeModelServer, channel: grpc.aio.Channel) -> None:
    fake.enqueue("Predict", Delay(0.05))
    result = await predict(channel, predict_request([2.0]), timeout=5)
    assert to_ndarray(result.outputs["y"]).tolist() == [3.0]  # type: ignore[attr-defined]


async def test_malformed_bytes_fail_deserialization(fake: FakeModelServer, channel: grpc.aio.Channel) -> None:
    # grpc.aio logs the DecodeError and hands the caller None instead of raising:
    # a gateway must treat a None reply as a broken backend answer.
    fake.enqueue("Predict", MALFORMED)
    assert await predict(channel, predict_request([1.0])) is None


@pytest.mark.parametrize(
    ("model_spec", "code", "details"),
    [
        (spec("nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (spec(version=7), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(hpt, 7)"),
        (spec(label="nope"), grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: nope"),
    ],
)
async def test_servable_errors(
    channel: grpc.aio.Channel, model_spec: model_pb2.ModelSpec, code: grpc.StatusCode, details: str
) -> None:
    stub = prediction_stub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=model_spec, metadata_field=["signature_def"])
    error = await rpc_error(stub.GetModelMetadata(request))
    assert (error.code(), error.details()) == (code, details)


async def test_unknown_signature_is_failed_precondition(channel: grpc.aio.Channel) -> None:
    request = predict_request([1.0])
    request.model_spec.signature_name = "other"
    error = await rpc_error(predict(channel, request))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "other" not found.',
    )


async def test_metadata_resolves_label(channel: grpc.aio.Channel) -> None:
    stub = prediction_stub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=spec(label="stable"), metadata_field=["signature_def"]
    )
    reply = await stub.GetModelMetadata(request)
    assert reply.model_spec.version.value == 1
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert reply.metadata["signature_def"].Unpack(sig_map)
    assert sig_map.signature_def["serving_default"] == HALF


async def test_status_lists_versions_newest_first(channel: grpc.aio.Channel) -> None:
    stub = model_stub(channel)
    reply = await stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=spec()))
    assert [s.version for s in reply.model_version_status] == [2, 1]
    assert {s.state for s in reply.model_version_status} == {get_model_status_pb2.ModelVersionStatus.AVAILABLE}


@pytest.mark.parametrize(
    ("model_spec", "details"),
    [
        (spec("nope"), "Could not find any versions of model nope"),
        (spec(version=9), "Could not find version 9 of model hpt"),
    ],
)
async def test_status_errors(channel: grpc.aio.Channel, model_spec: model_pb2.ModelSpec, details: str) -> None:
    stub = model_stub(channel)
    error = await rpc_error(stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=model_spec)))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, details)


async def test_classify_and_regress_defaults(channel: grpc.aio.Channel) -> None:
    stub = prediction_stub(channel)
    examples = [example({"a": ("float", [1.0, 3.0])}), example({"b": ("int64", [4])})]
    classify = classification_pb2.ClassificationRequest(model_spec=spec())
    classify.input.example_list.examples.extend(examples)
    regress = regression_pb2.RegressionRequest(model_spec=spec())
    regress.input.example_list_with_context.examples.extend(examples)
    classified = await stub.Classify(classify)
    regressed = await stub.Regress(regress)
    assert [[c.label for c in r.classes] for r in classified.result.classifications] == [["neg", "pos"]] * 2
    assert [r.value for r in regressed.result.regressions] == [4.0, 4.0]


async def test_dead_backend_and_restart_on_same_port(fake: FakeModelServer, channel: grpc.aio.Channel) -> None:
    port = fake.port
    await fake.stop(0)
    error = await rpc_error(predict(channel, predict_request([1.0]), timeout=2))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    await fake.restart()
    assert fake.port == port
    async with grpc.aio.insecure_channel(fake.target) as fresh:
        # Channels share subchannels, so wait out the reconnect backoff of the refused attempt.
        await asyncio.wait_for(fresh.channel_ready(), 10)
        result = await predict(fresh, predict_request([1.0]), timeout=5)
    assert to_ndarray(result.outputs["y"]).tolist() == [2.5]  # type: ignore[attr-defined]


async def test_large_messages_pass(fake: FakeModelServer) -> None:
    values = np.arange(3_000_000, dtype=np.float32)
    request = predict_pb2.PredictRequest(model_spec=spec())
    request.inputs["x"].CopyFrom(make_tensor(values, "DT_FLOAT", content=True))
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(fake.target, options=options) as big:
        reply = await prediction_stub(big).Predict(request, timeout=30)
    np.testing.assert_array_equal(to_ndarray(reply.outputs["y"]), values * np.float32(0.5) + np.float32(2))


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([[1.5, -2.0]], "DT_FLOAT"),
        ([1, 2**62], "DT_INT64"),
        ([2**64 - 1], "DT_UINT64"),
        ([True, False], "DT_BOOL"),
        ([b"a", b"\xff"], "DT_STRING"),
        ([1.0, -0.5], "DT_HALF"),
        (7, "DT_INT8"),
    ],
)
@pytest.mark.parametrize("content", [False, True])
def test_tensor_round_trip(values: object, dtype: str, content: bool) -> None:
    proto = make_tensor(values, dtype, content=content)
    assert proto.dtype == types_pb2.DataType.Value(dtype)
    decoded = to_ndarray(proto)
    assert tensor_shape(proto) == np.asarray(values).shape
    assert decoded.tolist() == np.asarray(values, dtype=decoded.dtype).tolist()


def test_example_helper() -> None:
    ex = example({"f": ("float", [1.5]), "s": ("bytes", [b"x"]), "e": None})
    assert ex.features.feature["f"].float_list.value == [1.5]
    assert ex.features.feature["s"].bytes_list.value == [b"x"]
    assert ex.features.feature["e"] == feature_pb2.Feature()
    assert "e" in ex.features.feature


async def _eventually(check: object, seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never became true")
