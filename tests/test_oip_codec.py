"""codec/oip.py without sockets: the spec's worked example, round trips per datatype, and framing fuzz.

TensorFlow is the oracle for what the tensors mean: each decoded input must equal what
``tf.make_ndarray`` reads back from the TensorProto the gateway would send.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway._pb.tensorflow.core.framework import types_pb2
from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway.codec import oip
from gateway.errors import BinaryFraming, GatewayError, InvalidArgument
from gateway.web import body as request_body

NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def signature(inputs: dict[str, tuple[int, list[int] | None]], outputs: dict[str, int] | None = None) -> Any:
    """A SignatureDef with these (dtype, dims or None for unknown rank) inputs."""
    sig = meta_graph_pb2.SignatureDef()
    for name, (dtype, dims) in inputs.items():
        info = sig.inputs[name]
        info.dtype = dtype
        if dims is None:
            info.tensor_shape.unknown_rank = True
        for size in dims or ():
            info.tensor_shape.dim.add(size=size)
    for name, dtype in (outputs or {}).items():
        sig.outputs[name].dtype = dtype
    return sig


def decode(body: bytes, header: int | None, sig: Any) -> dict[str, Any]:
    """What the front does with a body, inside the same decoding boundary."""
    with request_body.decoding():
        request = oip.parse_infer(body, header, max_depth=64)
        return oip.decode_inputs(request, sig)


def frame(doc: dict[str, Any], *segments: bytes) -> tuple[bytes, int]:
    header = json.dumps(doc).encode()
    return header + b"".join(segments), len(header)


# --------------------------------------------------------------------------- the spec's worked example (§11)

EXAMPLE_HEADER = (
    b'{"id":"42","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","parameters":{"binary_data_size":24}}],'
    b'"outputs":[{"name":"y","parameters":{"binary_data":true}}]}'
)
EXAMPLE_SIG = signature({"x": (types_pb2.DT_FLOAT, [-1, 3])}, {"y": types_pb2.DT_FLOAT})


def test_worked_example_binary_request_and_reply() -> None:
    raw = bytes.fromhex("0000803f 00000040 00004040 00008040 0000a040 0000c040".replace(" ", ""))
    assert len(EXAMPLE_HEADER) == 163
    body = EXAMPLE_HEADER + raw
    request = oip.parse_infer(body, 163, max_depth=64)
    tensors = oip.decode_inputs(request, EXAMPLE_SIG)
    np.testing.assert_array_equal(tensors["x"].values, np.arange(1, 7, dtype=np.float32).reshape(2, 3), strict=True)
    assert oip.select_outputs(request, EXAMPLE_SIG) == ("y",)
    reply = oip.encode_infer(request, "linear", 2, {"y": np.array([[3.0], [7.5]], dtype=np.float32)})
    assert reply.header_length == 146
    assert reply.body[:146] == (
        b'{"id":"42","model_name":"linear","model_version":"2","outputs":[{"name":"y","datatype":"FP32",'
        b'"shape":[2,1],"parameters":{"binary_data_size":8}}]}'
    )
    assert reply.body[146:] == bytes.fromhex("00004040 0000f040".replace(" ", ""))


def test_worked_example_json() -> None:
    doc = {"id": "42", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6]]}]}
    request = oip.parse_infer(json.dumps(doc).encode(), None, max_depth=64)
    oip.decode_inputs(request, EXAMPLE_SIG)
    oip.select_outputs(request, EXAMPLE_SIG)
    reply = oip.encode_infer(request, "linear", 2, {"y": np.array([[3.0], [7.5]], dtype=np.float32)})
    assert reply.header_length is None
    assert reply.body == (
        b'{"id":"42","model_name":"linear","model_version":"2","outputs":[{"name":"y","datatype":"FP32",'
        b'"shape":[2,1],"data":[3.0,7.5]}]}'
    )


def test_bytes_framing_as_the_spec_shows() -> None:
    sig = signature({"s": (types_pb2.DT_STRING, [-1])})
    body, header = frame(
        {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 10}}]},
        bytes.fromhex("02000000 6869 00000000".replace(" ", "")),
    )
    assert decode(body, header, sig)["s"].values == [b"hi", b""]


# --------------------------------------------------------------------------- round trips, TensorFlow as the oracle


@pytest.mark.parametrize("datatype", sorted(NUMPY))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_fixed_size_datatype_round_trips_in_binary_and_json(datatype: str, data: st.DataObject) -> None:
    np_type = np.dtype(NUMPY[datatype])
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
    elements = hnp.from_dtype(np_type, allow_nan=False, allow_infinity=False) if np_type.kind == "f" else None
    array = data.draw(hnp.arrays(np_type, shape, elements=elements))
    dtype = oip.DATATYPES[datatype]
    sig = signature({"t": (dtype.enum, [-1] * len(shape))})
    entry = {"name": "t", "datatype": datatype, "shape": list(shape)}
    body, header = frame({"inputs": [{**entry, "parameters": {"binary_data_size": array.nbytes}}]}, array.tobytes())
    binary = decode(body, header, sig)["t"]
    json_body = json.dumps({"inputs": [{**entry, "data": array.tolist()}]}).encode()
    from_json = decode(json_body, None, sig)["t"]
    for tensor in (binary, from_json):
        proto = tensor.to_proto()
        oracle = tf.make_ndarray(tf.make_tensor_proto(tf.constant(array)))
        np.testing.assert_array_equal(tf.make_ndarray(proto), oracle, strict=True)
    # and back out: raw bytes and flat JSON
    request = oip.parse_infer(json_body, None, max_depth=64)
    request.output_filter = ("t",)
    request.binary_output = True
    reply = oip.encode_infer(request, "m", None, {"t": array})
    assert reply.header_length is not None
    assert reply.body[reply.header_length :] == array.tobytes()
    request.binary_output = False
    out = json.loads(oip.encode_infer(request, "m", None, {"t": array}).body)["outputs"][0]
    np.testing.assert_array_equal(np.array(out["data"], dtype=np_type), array.ravel(), strict=True)


# --------------------------------------------------------------------------- datatype and value errors

F32 = signature({"x": (types_pb2.DT_FLOAT, [-1])})
I8 = signature({"x": (types_pb2.DT_INT8, [-1])})
B = signature({"x": (types_pb2.DT_BOOL, [-1])})


def json_error(sig: Any, datatype: str, values: list[Any]) -> str:
    body = json.dumps({"inputs": [{"name": "x", "datatype": datatype, "shape": [len(values)], "data": values}]})
    with pytest.raises(InvalidArgument) as caught:
        decode(body.encode(), None, sig)
    return caught.value.message


@pytest.mark.parametrize(
    ("sig", "datatype", "values", "message"),
    [
        (F32, "FP64", [1.0], "input 'x': model expects FP32 (DT_FLOAT), request has FP64"),
        (F32, "FLOAT", [1.0], "input 'x': unknown datatype 'FLOAT'"),
        (I8, "INT8", [1, 128], "input 'x' element 1: 128 is not a valid INT8 value"),
        (I8, "INT8", [1, 2.5], "input 'x' element 1: 2.5 is not a valid INT8 value"),
        (I8, "INT8", [1, True], "input 'x' element 1: true is not a valid INT8 value"),
        (F32, "FP32", [1.0, False], "input 'x' element 1: false is not a valid FP32 value"),
        (F32, "FP32", [1.0, 1e39], "input 'x' element 1: 1e+39 overflows FP32"),
        (F32, "FP32", ["nan"], "input 'x' element 0: \"nan\" is not a valid FP32 value"),
        (B, "BOOL", [True, 1], "input 'x' element 1: 1 is not a valid BOOL value"),
    ],
)
def test_json_value_errors_name_input_and_element(sig: Any, datatype: str, values: list[Any], message: str) -> None:
    assert json_error(sig, datatype, values) == message


def test_non_finite_strings_and_bare_tokens_are_accepted() -> None:
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[4],"data":["NaN","-Infinity",NaN,2]}]}'
    values = decode(body, None, F32)["x"].values
    assert np.isnan(values[0]) and values[1] == -np.inf and np.isnan(values[2]) and values[3] == 2.0


def test_element_count_and_shape_must_agree() -> None:
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[3],"data":[[1,2]]}]}'
    with pytest.raises(InvalidArgument, match="2 elements in 'data', but shape \\[3\\] holds 3"):
        decode(body, None, F32)


def test_bool_bytes_must_be_zero_or_one() -> None:
    body, header = frame(
        {"inputs": [{"name": "x", "datatype": "BOOL", "shape": [2], "parameters": {"binary_data_size": 2}}]},
        b"\x01\x02",
    )
    with pytest.raises(BinaryFraming, match="0 or 1"):
        decode(body, header, B)


def test_non_utf8_bytes_output_in_json_is_a_400_naming_the_element() -> None:
    request = oip.parse_infer(b'{"inputs":[{"name":"x","datatype":"FP32","shape":[0],"data":[]}]}', None, max_depth=8)
    request.output_filter = ("y",)
    with pytest.raises(InvalidArgument, match="output 'y' element 1 is not valid UTF-8; request binary_data"):
        oip.encode_infer(request, "m", None, {"y": np.array([b"ok", b"\xff"], dtype=object)})


def test_metadata_uses_enum_names_for_dtypes_without_an_oip_name() -> None:
    assert oip.datatype_of(types_pb2.DT_COMPLEX64) == "DT_COMPLEX64"
    assert oip.datatype_of(types_pb2.DT_BFLOAT16) == "BF16"
    assert oip.datatype_of(types_pb2.DT_HALF) == "FP16"


# --------------------------------------------------------------------------- framing fuzz: 400, never anything else

SEGMENT_SIG = signature(
    {"x": (types_pb2.DT_FLOAT, [-1]), "s": (types_pb2.DT_STRING, None), "b": (types_pb2.DT_BOOL, [-1])}
)
SIZES = st.one_of(st.integers(-3, 40), st.sampled_from([2**31, 2**63, 1.5, "8", None, True]))


@st.composite
def framed_bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """Plausible V2 binary bodies with hostile sizes, shapes, segments and header lengths."""
    entries = []
    for name, datatype in draw(st.lists(st.sampled_from([("x", "FP32"), ("s", "BYTES"), ("b", "BOOL")]), max_size=4)):
        entry: dict[str, Any] = {"name": name, "datatype": datatype}
        entry["shape"] = draw(st.lists(st.integers(0, 5), max_size=2))
        if draw(st.booleans()):
            entry["parameters"] = {"binary_data_size": draw(SIZES)}
        if draw(st.booleans()):
            entry["data"] = draw(
                st.lists(st.one_of(st.integers(-2, 2), st.floats(), st.booleans(), st.text(max_size=3)))
            )
        entries.append(entry)
    header = json.dumps({"inputs": entries}).encode()
    tail = draw(st.binary(max_size=48))
    if draw(st.booleans()):  # length-prefixed elements, some with lengths past the end
        lengths = draw(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 6), max_size=3))
        tail += b"".join(struct.pack("<I", n) + b"ab" for n in lengths)
    length = draw(st.one_of(st.just(len(header)), st.none(), st.integers(-1, len(header) + len(tail) + 2)))
    return header + tail, length


@settings(max_examples=400, deadline=None)
@given(case=framed_bodies())
def test_framing_fuzz_only_ever_refuses_with_a_4xx(case: tuple[bytes, int | None]) -> None:
    body, length = case
    try:
        header = None if length is None else oip.header_length(str(length))
        tensors = decode(body, header, SEGMENT_SIG)
    except GatewayError as exc:
        assert 400 <= exc.http_status < 500, exc
        return
    for tensor in tensors.values():  # accepted: every tensor is exactly its shape
        assert tensor.size == (len(tensor.values) if isinstance(tensor.values, list) else tensor.values.size)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=96), length=st.text(max_size=6) | st.none())
def test_arbitrary_bytes_and_header_values_only_ever_refuse_with_a_4xx(body: bytes, length: str | None) -> None:
    with pytest.raises(GatewayError) as caught:
        decode(body, oip.header_length(length), SEGMENT_SIG)
    assert 400 <= caught.value.http_status < 500


# --------------------------------------------------------------------------- 16-bit outputs, shapes past numpy


def _from_tf(array: np.ndarray, typed_fields: bool) -> Any:
    """TensorFlow's own TensorProto for ``array`` (typed half_val / int_val, or tensor_content), as ours."""
    from gateway._pb.tensorflow.core.framework import tensor_pb2

    proto = tf.make_tensor_proto(array)
    if not typed_fields and not proto.tensor_content:  # TF writes uint16 as int_val whatever its size
        proto.ClearField("int_val")
        proto.tensor_content = array.tobytes()
    if typed_fields and proto.tensor_content:
        flat = array.reshape(-1)
        proto.ClearField("tensor_content")
        if array.dtype == np.uint16:
            proto.int_val.extend(int(v) for v in flat)
        else:  # half and bfloat16: the 16-bit patterns, one per int32, as ModelServer writes them
            proto.half_val.extend(int(v) for v in flat.view(np.uint16))
    return tensor_pb2.TensorProto.FromString(proto.SerializeToString())


SIXTEEN_BIT = {
    "FP16": np.array([[1.5, -np.inf], [np.nan, 65504]], dtype=np.float16),
    "BF16": np.array([[1.5, -np.inf], [np.nan, 3e38]], dtype=tf.bfloat16.as_numpy_dtype),
    "UINT16": np.array([[0, 1], [2, 65535]], dtype=np.uint16),
}


@pytest.mark.parametrize("typed_fields", [True, False], ids=["typed", "tensor_content"])
@pytest.mark.parametrize("datatype", sorted(SIXTEEN_BIT))
def test_16_bit_outputs_decode_as_tensorflow_reads_them(datatype: str, typed_fields: bool) -> None:
    from gateway.codec import tensors

    array = SIXTEEN_BIT[datatype]
    proto = _from_tf(array, typed_fields)
    assert bool(proto.tensor_content) is not typed_fields
    got = tensors.from_proto(proto)
    assert got.dtype == array.dtype and got.shape == array.shape
    assert got.tobytes() == array.tobytes()  # bit for bit, NaN included
    reply = oip.encode_infer(oip.InferRequest(None, "", True, [], None), "m", None, {"y": got})
    header = json.loads(reply.body[: reply.header_length])
    assert header["outputs"] == [
        {"name": "y", "datatype": datatype, "shape": [2, 2], "parameters": {"binary_data_size": 8}}
    ]
    assert reply.body[reply.header_length :] == array.tobytes()  # little-endian, straight through


def test_bf16_outputs_are_binary_even_when_json_is_asked_for() -> None:
    array = SIXTEEN_BIT["BF16"]
    request = oip.InferRequest(None, "", False, [], [oip.Output("y", False), oip.Output("z", False)])
    request.output_filter = ("y", "z")
    reply = oip.encode_infer(request, "m", None, {"y": array, "z": SIXTEEN_BIT["FP16"]})
    assert reply.header_length is not None
    outputs = json.loads(reply.body[: reply.header_length])["outputs"]
    assert outputs[0]["parameters"] == {"binary_data_size": 8}
    assert outputs[1]["data"] == [1.5, "-Infinity", "NaN", 65504.0]


def test_v1_refuses_16_bit_outputs_as_tf_serving_does_unless_empty() -> None:
    from gateway.codec import predict as codec

    for array, name in (
        (SIXTEEN_BIT["FP16"], "half"),
        (SIXTEEN_BIT["BF16"], "bfloat16"),
        (SIXTEEN_BIT["UINT16"], "uint16"),
    ):
        with pytest.raises(InvalidArgument, match=f"^Failed to write JSON value for tensor type: {name}$"):
            codec.encode_outputs({"y": array}, "columnar")
        assert codec.encode_outputs({"y": array[:0]}, "columnar") == b'{"outputs":[]}'


@pytest.mark.parametrize("shape", [[0, 2**62, 4], [2**40, 2**40, 0], [0, 2**63 - 1], [2**61]])
@pytest.mark.parametrize("binary", [True, False])
def test_shapes_past_numpys_range_are_a_400_even_when_empty(shape: list[int], binary: bool) -> None:
    entry: dict[str, Any] = {"name": "x", "datatype": "FP32", "shape": shape}
    entry.update({"parameters": {"binary_data_size": 0}} if binary else {"data": []})
    body = json.dumps({"inputs": [entry]}).encode()
    with pytest.raises(InvalidArgument, match="spans more than 2"):
        decode(body, len(body) if binary else None, signature({"x": (types_pb2.DT_FLOAT, None)}))
