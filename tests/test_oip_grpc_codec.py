"""``codec/oip_grpc.py`` without sockets: typed and raw contents reach one decoder alike, every
malformed message is an ``InvalidArgument`` naming the input, and replies read back in tritonclient.

Messages are built with tritonclient's own generated classes and crossed to ours as bytes, so the
wire format is the clients' (as a socket would carry it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fake_backend import signature
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tritonclient.grpc import InferResult, service_pb2

from gateway.codec import oip, oip_grpc
from gateway.errors import InvalidArgument, MalformedRequest, Unimplemented

# datatype -> (numpy dtype, TF dtype name, typed contents field)
TYPES: dict[str, tuple[Any, str, str]] = {
    "BOOL": (np.bool_, "DT_BOOL", "bool_contents"),
    "INT8": (np.int8, "DT_INT8", "int_contents"),
    "INT16": (np.int16, "DT_INT16", "int_contents"),
    "INT32": (np.int32, "DT_INT32", "int_contents"),
    "INT64": (np.int64, "DT_INT64", "int64_contents"),
    "UINT8": (np.uint8, "DT_UINT8", "uint_contents"),
    "UINT16": (np.uint16, "DT_UINT16", "uint_contents"),
    "UINT32": (np.uint32, "DT_UINT32", "uint_contents"),
    "UINT64": (np.uint64, "DT_UINT64", "uint64_contents"),
    "FP32": (np.float32, "DT_FLOAT", "fp32_contents"),
    "FP64": (np.float64, "DT_DOUBLE", "fp64_contents"),
}


def ours(theirs: service_pb2.ModelInferRequest) -> oip.InferRequest:
    return oip_grpc.infer_request(oip_grpc.parse(oip_grpc.ModelInferRequest, theirs.SerializeToString()))


def decoded(request: oip.InferRequest, datatype: str) -> Any:
    sig = signature(inputs={"x": (TYPES[datatype][1], [-1])}, outputs={"y": (TYPES[datatype][1], [-1])})
    return oip.decode_inputs(request, sig)["x"]


@settings(max_examples=40, deadline=None)
@given(data=st.data(), datatype=st.sampled_from(sorted(TYPES)))
def test_typed_and_raw_contents_decode_to_the_same_tensor(data: st.DataObject, datatype: str) -> None:
    dtype, _, field = TYPES[datatype]
    array = data.draw(
        hnp.arrays(
            dtype, st.integers(0, 6), elements={"allow_nan": False} if dtype in (np.float32, np.float64) else None
        )
    )
    typed = service_pb2.ModelInferRequest(model_name="m")
    getattr(typed.inputs.add(name="x", datatype=datatype, shape=[array.size]).contents, field).extend(array.tolist())
    raw = service_pb2.ModelInferRequest(
        model_name="m", raw_input_contents=[array.astype(np.dtype(dtype).newbyteorder("<")).tobytes()]
    )
    raw.inputs.add(name="x", datatype=datatype, shape=[array.size])
    from_typed, from_raw = decoded(ours(typed), datatype), decoded(ours(raw), datatype)
    np.testing.assert_array_equal(np.asarray(from_typed.values), array, strict=True)
    np.testing.assert_array_equal(np.asarray(from_raw.values), array, strict=True)


def test_typed_bytes_are_length_prefixed_like_raw_ones() -> None:
    typed = service_pb2.ModelInferRequest(model_name="m")
    typed.inputs.add(name="x", datatype="BYTES", shape=[3]).contents.bytes_contents.extend([b"a", b"", b"\xff\x00"])
    (item,) = ours(typed).inputs
    assert item.raw is not None and bytes(item.raw) == b"\x01\0\0\0a\0\0\0\0\x02\0\0\0\xff\x00"


@pytest.mark.parametrize(
    ("datatype", "field", "values", "message"),
    [
        ("INT8", "int_contents", [1, 300], "input 'x' element 1: 300 is not a valid INT8 value"),
        ("UINT8", "uint_contents", [256], "input 'x' element 0: 256 is not a valid UINT8 value"),
        ("INT16", "int_contents", [-32769], "element 0: -32769 is not a valid INT16 value"),
        ("FP32", "fp64_contents", [1.0], "FP32 data goes in contents.fp32_contents, the request uses fp64_contents"),
        ("BF16", "fp32_contents", [1.0], "BF16 data travels only in raw_input_contents"),
    ],
)
def test_typed_values_outside_the_datatype_are_refused(
    datatype: str, field: str, values: list[Any], message: str
) -> None:
    request = service_pb2.ModelInferRequest(model_name="m")
    getattr(request.inputs.add(name="x", datatype=datatype, shape=[len(values)]).contents, field).extend(values)
    with pytest.raises(InvalidArgument) as caught:
        ours(request)
    assert message in caught.value.message


def test_two_contents_fields_are_refused() -> None:
    request = service_pb2.ModelInferRequest(model_name="m")
    contents = request.inputs.add(name="x", datatype="FP32", shape=[1]).contents
    contents.fp32_contents.append(1.0)
    contents.int_contents.append(1)
    with pytest.raises(InvalidArgument, match=r"goes in contents\.fp32_contents"):
        ours(request)


def test_a_shape_numpy_cannot_lay_out_is_refused_even_when_empty() -> None:
    """REST's 400 for the same header (OIP §12): a zero dim leaves no elements, but the others span past 2**60."""
    request = service_pb2.ModelInferRequest(model_name="m", raw_input_contents=[b""])
    request.inputs.add(name="x", datatype="FP32", shape=[0, 2**62, 2**62])
    with pytest.raises(InvalidArgument, match=r"input 'x': shape .* spans more than 2\*\*60 elements"):
        oip_grpc.infer_request(request)


def test_parameters() -> None:
    request = service_pb2.ModelInferRequest(model_name="m", id="7")
    request.inputs.add(name="x", datatype="FP32", shape=[0])
    request.parameters["signature_name"].string_param = "other"
    request.parameters["priority"].uint64_param = 3
    parsed = ours(request)
    assert (parsed.id, parsed.signature_name, parsed.outputs) == ("7", "other", None)
    request.parameters["signature_name"].int64_param = 1
    with pytest.raises(InvalidArgument, match="signature_name must be a string_param"):
        ours(request)
    request.parameters["signature_name"].string_param = ""
    request.outputs.add(name="y").parameters["classification"].int64_param = 2
    with pytest.raises(Unimplemented):
        ours(request)


def test_not_a_message_and_no_inputs() -> None:
    with pytest.raises(InvalidArgument, match=r"not a valid inference\.ModelInferRequest"):
        oip_grpc.parse(oip_grpc.ModelInferRequest, b"\xff\xff\xff")
    with pytest.raises(InvalidArgument, match="at least one input"):
        ours(service_pb2.ModelInferRequest(model_name="m"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", (None, None)), ("3", (3, None)), ("stable", (None, "stable")), ("٣", (None, "٣")), ("-1", (None, "-1"))],
)
def test_versions(text: str, expected: tuple[int | None, str | None]) -> None:
    assert oip_grpc.version_of(text) == expected


def test_a_version_past_int64_is_refused() -> None:
    with pytest.raises(MalformedRequest, match="Failed to convert version"):
        oip_grpc.version_of(str(2**63))


def test_the_reply_reads_back_in_tritonclient() -> None:
    request = service_pb2.ModelInferRequest(model_name="m", id="9")
    request.inputs.add(name="x", datatype="FP32", shape=[0])
    request.outputs.add(name="s")
    request.outputs.add(name="y")
    parsed = ours(request)
    parsed.output_filter = ("s", "y")
    arrays = {"y": np.arange(6, dtype=np.int64).reshape(2, 3), "s": np.array([b"ab", b"\xff"], dtype=object)}
    reply = service_pb2.ModelInferResponse.FromString(oip_grpc.infer_response(parsed, "m", 4, arrays))
    assert (reply.model_name, reply.model_version, reply.id) == ("m", "4", "9")
    assert [(o.name, o.datatype, list(o.shape)) for o in reply.outputs] == [("s", "BYTES", [2]), ("y", "INT64", [2, 3])]
    result = InferResult(reply)
    np.testing.assert_array_equal(result.as_numpy("y"), arrays["y"], strict=True)
    assert list(result.as_numpy("s")) == [b"ab", b"\xff"]
