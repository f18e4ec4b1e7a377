"""``messages.request_model_spec`` and ``with_model_spec``: the only parsing the gRPC pass-through does."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    input_pb2,
    predict_pb2,
)
from gateway.codec import messages
from gateway.errors import MalformedRequest


def _predict(spec: messages.ModelSpec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=spec, output_filter=["y"])
    request.inputs["x"].dtype = 1
    request.inputs["x"].tensor_content = bytes(range(256)) * 8
    request.inputs["z"].string_val.append(b"\x0a\x03abc")  # bytes that look like a model_spec field
    return request


def test_the_spec_is_read_from_every_request_type() -> None:
    spec = messages.model_spec("m", 3, signature_name="sig")
    for request in (
        _predict(spec),
        classification_pb2.ClassificationRequest(model_spec=spec, input=input_pb2.Input()),
        get_model_status_pb2.GetModelStatusRequest(model_spec=spec),
    ):
        assert messages.request_model_spec(request.SerializeToString()) == spec


def test_no_spec_reads_as_an_empty_one() -> None:
    assert messages.request_model_spec(b"") == messages.ModelSpec()


@pytest.mark.parametrize("where", ["first", "last", "twice"])
def test_rewriting_replaces_the_spec_and_keeps_the_rest(where: str) -> None:
    old, new = messages.model_spec("old", 1), messages.model_spec("new", label="canary", signature_name="s")
    body = _predict(messages.ModelSpec()).SerializeToString()
    record = predict_pb2.PredictRequest(model_spec=old).SerializeToString()
    payload = {"first": record + body, "last": body + record, "twice": record + body + record}[where]
    rewritten = predict_pb2.PredictRequest.FromString(messages.with_model_spec(payload, new))
    expected = _predict(new)
    assert rewritten == expected


@given(st.binary(max_size=64))
@settings(derandomize=True, max_examples=500)  # deterministic in CI; tag edge cases are pinned below
def test_garbage_is_malformed_or_the_spec_protobuf_reads(payload: bytes) -> None:
    try:
        spec = messages.request_model_spec(payload)
    except MalformedRequest:
        return  # the only error it may raise; protobuf may still accept what we refuse (groups)
    assert spec == get_model_status_pb2.GetModelStatusRequest.FromString(payload).model_spec


@pytest.mark.parametrize("cut", [1, 2, 100])  # inside the last field (a 3-byte output_filter), in the tensor
def test_a_truncated_request_is_malformed(cut: int) -> None:
    payload = _predict(messages.model_spec("m")).SerializeToString()
    with pytest.raises(MalformedRequest):
        messages.request_model_spec(payload[:-cut])


@pytest.mark.parametrize(
    "payload",
    [
        bytes(10),  # field number 0
        bytes.fromhex("d58080808000" + "00000000"),  # a 6-byte tag: longer than any uint32 varint
    ],
    ids=["field-0", "six-byte-tag"],
)
def test_tags_protobuf_refuses_are_refused(payload: bytes) -> None:
    """Found by the property above: what protobuf refuses as a tag is no field to read."""
    with pytest.raises(DecodeError):
        get_model_status_pb2.GetModelStatusRequest.FromString(payload)
    with pytest.raises(MalformedRequest):
        messages.request_model_spec(payload)
