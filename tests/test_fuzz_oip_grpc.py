"""Structurally broken ``ModelInferRequest``s through the gRPC port: INVALID_ARGUMENT, never INTERNAL,
UNKNOWN or a hang.

Hypothesis draws one breakage per request (raw sizes that do not fit the shape, typed and raw
inputs mixed, raw entry counts that do not match the inputs, typed counts that do not match the
shape, huge shapes, negative dimensions, BYTES length prefixes past the end, datatypes the
model does not take) and sends it with tritonclient's own generated stub over a real socket to
the gateway, in front of the fake ModelServer.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Callable
from typing import Any

import grpc
from fake_backend import FakeModelServer
from harness import MODEL, base_settings, merge
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from tritonclient.grpc import service_pb2, service_pb2_grpc

from gateway.config import Settings
from gateway.grpcfront.server import GrpcServer
from gateway.web.app import create_app
from gateway.web.keys import HEALTH, SERVICES

SECONDS = 30.0  # a bound on a hang, not a timing assertion
Request = service_pb2.ModelInferRequest


def _request(model: str, signature: str = "") -> Request:
    request = Request(model_name=model)
    if signature:
        request.parameters["signature_name"].string_param = signature
    return request


@st.composite
def wrong_raw_size(draw: st.DrawFn) -> Request:
    count = draw(st.integers(0, 6))
    size = draw(st.integers(0, 40).filter(lambda n: n != 4 * count))
    request = _request(MODEL)
    request.inputs.add(name="x", datatype="FP32", shape=[count])
    request.raw_input_contents.append(draw(st.binary(min_size=size, max_size=size)))
    return request


@st.composite
def mixed(draw: st.DrawFn) -> Request:
    request = _request("multi")
    raw_first = draw(st.booleans())
    alpha = request.inputs.add(name="alpha", datatype="FP32", shape=[1])
    beta = request.inputs.add(name="beta", datatype="FP32", shape=[1, 1])
    (beta if raw_first else alpha).contents.fp32_contents.append(draw(st.floats(width=32)))
    request.raw_input_contents.extend([b"\0" * 4] * draw(st.integers(1, 2)))
    return request


@st.composite
def wrong_raw_count(draw: st.DrawFn) -> Request:
    request = _request("multi")
    request.inputs.add(name="alpha", datatype="FP32", shape=[1])
    request.inputs.add(name="beta", datatype="FP32", shape=[1, 1])
    request.raw_input_contents.extend([b"\0" * 4] * draw(st.sampled_from([1, 3, 4])))
    return request


@st.composite
def wrong_typed_count(draw: st.DrawFn) -> Request:
    count = draw(st.integers(0, 5))
    request = _request(MODEL)
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[count])
    given_count = draw(st.integers(1, 8).filter(lambda n: n != count))
    tensor.contents.fp32_contents.extend([1.0] * given_count)
    return request


@st.composite
def huge_shape(draw: st.DrawFn) -> Request:
    dims = draw(st.lists(st.integers(2**20, 2**62), min_size=1, max_size=3))
    request = _request("types", "float")
    request.inputs.add(name="x", datatype="FP32", shape=dims)
    request.raw_input_contents.append(draw(st.binary(max_size=16)))
    return request


@st.composite
def negative_dim(draw: st.DrawFn) -> Request:
    dims = draw(st.lists(st.integers(-(2**62), 4), min_size=1, max_size=3).filter(lambda d: min(d) < 0))
    request = _request("types", "float")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=dims)
    if draw(st.booleans()):
        request.raw_input_contents.append(b"\0" * 4 * max(0, math.prod(abs(d) for d in dims) % 8))
    else:
        tensor.contents.fp32_contents.append(1.0)
    return request


@st.composite
def bytes_past_the_end(draw: st.DrawFn) -> Request:
    count = draw(st.integers(1, 3))
    parts = [
        struct.pack("<I", len(v)) + v for v in draw(st.lists(st.binary(max_size=6), min_size=0, max_size=count - 1))
    ]
    claimed = draw(st.integers(1, 2**32 - 1))
    tail = draw(st.binary(max_size=8).filter(lambda b: len(b) < claimed))
    request = _request("types", "string")
    request.inputs.add(name="x", datatype="BYTES", shape=[count])
    request.raw_input_contents.append(b"".join(parts) + struct.pack("<I", claimed) + tail)
    return request


@st.composite
def wrong_datatype(draw: st.DrawFn) -> Request:
    datatype = draw(st.sampled_from(["FP64", "INT32", "BYTES", "BOOL", "FP16", "FP8", "", "fp32"]))
    request = _request(MODEL)
    request.inputs.add(name="x", datatype=datatype, shape=[1])
    request.raw_input_contents.append(b"\0" * 4)
    return request


REASONS = (
    "bytes of binary data",  # wrong raw size
    "typed contents, but the request also has raw_input_contents",  # mixed
    "entries for 2 inputs",  # wrong raw count
    "elements in contents.fp32_contents",  # wrong typed count
    "tensor elements, more than the limit",  # huge shape
    "needs a shape of integers >= 0",  # negative dimension
    "length-prefixed elements",  # BYTES past the end
    "model expects FP32",  # a datatype the model does not take
    "unknown datatype",
)
BROKEN = st.one_of(
    wrong_raw_size(),
    mixed(),
    wrong_raw_count(),
    wrong_typed_count(),
    huge_shape(),
    negative_dim(),
    bytes_past_the_end(),
    wrong_datatype(),
)


async def test_broken_infer_requests_are_invalid_argument(
    fake_backend: FakeModelServer, aiohttp_server: Callable[..., Any]
) -> None:
    config = Settings.from_mapping(merge(base_settings(fake_backend), {"server": {"host": "127.0.0.1"}}))
    app = create_app(config, registry=CollectorRegistry())
    await aiohttp_server(app)
    server = await GrpcServer.start(app[SERVICES], app[HEALTH], config.server, 0)
    seen: set[str] = set()

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(request=BROKEN)
    def check(request: Request) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            try:
                stub.ModelInfer(request, timeout=SECONDS)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details(), request)
                seen.add(str(error.details()))
                return
        raise AssertionError(f"a broken request was answered: {request}")

    try:
        await asyncio.to_thread(check)
    finally:
        await server.close()
    # Every kind of breakage was drawn and refused for its own reason, not by one early check.
    for reason in REASONS:
        assert any(reason in details for details in seen), reason
