"""The codec against TensorFlow's own conversions, as properties over dtypes and shapes."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import orjson
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.core.framework import tensor_pb2 as tf_tensor_pb2

from gateway._pb.tensorflow.core.framework import tensor_pb2
from gateway.codec import predict as codec
from gateway.codec import tensors

NUMERIC = {
    "float": np.float32,
    "double": np.float64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "int64": np.int64,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
}
ENUM = {d.name: d.enum for d in tensors.SUPPORTED.values()}
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def numeric_arrays(finite: bool) -> st.SearchStrategy[tuple[str, np.ndarray[Any, Any]]]:
    return st.sampled_from(sorted(NUMERIC)).flatmap(
        lambda name: hnp.arrays(
            NUMERIC[name],
            SHAPES,
            elements={"allow_nan": not finite, "allow_infinity": not finite}
            if NUMERIC[name] in (np.float32, np.float64)
            else None,
        ).map(lambda a: (name, a))
    )


def string_arrays() -> st.SearchStrategy[np.ndarray[Any, Any]]:
    return hnp.arrays(object, SHAPES, elements=st.binary(max_size=12))


def _upstream(proto: tensor_pb2.TensorProto) -> np.ndarray[Any, Any]:
    return tf.make_ndarray(tf_tensor_pb2.TensorProto.FromString(proto.SerializeToString()))


def _same(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


@PROFILE
@given(numeric_arrays(finite=False))
def test_request_tensor_equals_tensorflows(case: tuple[str, np.ndarray[Any, Any]]) -> None:
    name, array = case
    # JSON cannot tell shape (0, 3) from (0,): the tensor has the shape its nesting implies.
    as_json = np.asarray(array.tolist(), dtype=array.dtype)
    tensor = codec.convert(array.tolist(), ENUM[name], "x")
    decoded = _upstream(tensor.to_proto())
    assert _same(decoded, as_json)
    assert _same(decoded, tf.make_ndarray(tf.make_tensor_proto(as_json)))


def _map_nested(value: Any, fn: Any) -> Any:
    return [_map_nested(v, fn) for v in value] if isinstance(value, list) else fn(value)


@PROFILE
@given(string_arrays(), st.booleans())
def test_string_request_tensor_equals_tensorflows(array: np.ndarray[Any, Any], as_b64: bool) -> None:
    if as_b64:
        to_json, expected_bytes = (lambda v: {"b64": base64.b64encode(v).decode()}), (lambda v: v)
    else:
        to_json, expected_bytes = (lambda v: v.decode("latin-1")), (lambda v: v.decode("latin-1").encode())
    tensor = codec.convert(_map_nested(array.tolist(), to_json), 7, "s")
    expected = np.asarray(_map_nested(array.tolist(), expected_bytes), dtype=object)
    decoded = _upstream(tensor.to_proto())
    assert decoded.shape == expected.shape
    assert decoded.ravel().tolist() == expected.ravel().tolist()


def _typed(array: np.ndarray[Any, Any], name: str) -> tensor_pb2.TensorProto:
    dtype = tensors.SUPPORTED[ENUM[name]]
    proto = tensor_pb2.TensorProto(dtype=dtype.enum)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    getattr(proto, dtype.field).extend(array.ravel().tolist())
    return proto


@PROFILE
@given(numeric_arrays(finite=False), st.booleans())
def test_response_decoding_equals_tensorflows(case: tuple[str, np.ndarray[Any, Any]], typed: bool) -> None:
    name, array = case
    if typed:
        proto = _typed(array, name)
    else:
        proto = tensor_pb2.TensorProto.FromString(tf.make_tensor_proto(array).SerializeToString())
    ours = tensors.from_proto(proto)
    assert _same(ours, _upstream(proto))


def _parse(text: bytes) -> Any:
    return json.loads(text)


@PROFILE
@given(numeric_arrays(finite=False))
def test_response_json_round_trips_in_the_tensors_own_dtype(case: tuple[str, np.ndarray[Any, Any]]) -> None:
    _, array = case
    proto = tensor_pb2.TensorProto.FromString(tf.make_tensor_proto(array).SerializeToString())
    text = orjson.dumps(codec.tensor_json(tensors.from_proto(proto), "y"))
    parsed = np.array(_parse(text), dtype=array.dtype) if array.size else np.zeros(array.shape, array.dtype)
    assert _same(parsed.reshape(array.shape), array)


@PROFILE
@given(hnp.arrays(np.float32, SHAPES, elements={"allow_nan": False, "allow_infinity": False}))
def test_float32_prints_shortest(array: np.ndarray[Any, Any]) -> None:
    text = orjson.dumps(codec.tensor_json(array, "y")).decode()
    values = np.array(json.loads(text), dtype=np.float64).ravel() if array.size else np.array([])
    shortest = np.array([float(repr(float(str(v)))) for v in array.ravel()], dtype=np.float64)
    # Same decimal value as numpy's shortest float32 repr, i.e. no float64 noise digits.
    assert np.array_equal(values, shortest)


@PROFILE
@given(string_arrays(), st.sampled_from(["out", "out_bytes"]))
def test_string_outputs(array: np.ndarray[Any, Any], alias: str) -> None:
    proto = tensor_pb2.TensorProto.FromString(tf.make_tensor_proto(array, dtype=tf.string).SerializeToString())
    parsed = _parse(orjson.dumps(codec.tensor_json(tensors.from_proto(proto), alias)))
    flat = np.array(parsed, dtype=object).ravel() if array.ndim else [parsed]
    for got, want in zip(flat, array.ravel(), strict=True):
        if alias.endswith("_bytes"):
            assert base64.b64decode(got["b64"]) == want
        else:
            assert got == want.decode("utf-8", "replace")


@PROFILE
@given(
    hnp.arrays(
        object, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4), elements=st.binary(max_size=300)
    )
)
def test_string_tensor_content_decodes(array: np.ndarray[Any, Any]) -> None:
    # ModelServer with --enable_serialization_as_tensor_content writes strings in TF's
    # EncodeStringList layout (tensor_coding.cc); TF's Python API never produces it, so
    # the layout is built here and the e2e tests check it against the stand-in.
    content = _varint_content(array.ravel().tolist())
    proto = tensor_pb2.TensorProto(dtype=7, tensor_content=content)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    assert tensors.from_proto(proto).ravel().tolist() == array.ravel().tolist()


def _varint_content(values: list[bytes]) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    return b"".join(varint(len(v)) for v in values) + b"".join(values)
