"""The stand-in serves the dtypes example model: every Open Inference Protocol datatype, both encodings."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub

from devserver.tensors import array_to_proto

from .devserver_helpers import outputs_as_arrays, run_direct, spec

# One input per OIP datatype, with each dtype's edges: wrap-around, sign, precision, non-finite.
INPUTS = {
    "bool": np.array([True, False]),
    "int8": np.array([-128, 127], dtype=np.int8),
    "uint8": np.array([0, 255], dtype=np.uint8),
    "int16": np.array([-(2**15), 2**15 - 1], dtype=np.int16),
    "uint16": np.array([0, 2**16 - 1], dtype=np.uint16),
    "int32": np.array([-(2**31), 2**31 - 1], dtype=np.int32),
    "int64": np.array([-(2**63), 2**53 + 1], dtype=np.int64),
    "fp16": np.array([1.5, -np.inf], dtype=np.float16),
    "bf16": np.array([1.5, 3e38], dtype=ml_dtypes.bfloat16),
    "fp32": np.array([0.1, np.nan], dtype=np.float32),
    "fp64": np.array([0.1, 1e300], dtype=np.float64),
    "bytes": np.array([b"\xff\x00", "h\u00e9llo".encode()], dtype=object),
}
DATATYPES = {
    "bool_out": types_pb2.DT_BOOL,
    "int8_out": types_pb2.DT_INT8,
    "uint8_out": types_pb2.DT_UINT8,
    "int16_out": types_pb2.DT_INT16,
    "uint16_out": types_pb2.DT_UINT16,
    "int32_out": types_pb2.DT_INT32,
    "int64_out": types_pb2.DT_INT64,
    "fp16_out": types_pb2.DT_HALF,
    "bf16_out": types_pb2.DT_BFLOAT16,
    "fp32_out": types_pb2.DT_FLOAT,
    "fp64_out": types_pb2.DT_DOUBLE,
    "bytes_out": types_pb2.DT_STRING,
}


def typed_fields(array: np.ndarray) -> object:
    """The input in typed repeated fields (int_val, half_val...), as a V2 front may send it."""
    return array_to_proto(array, tf.dtypes.as_dtype(object if array.dtype == object else array.dtype))


@pytest.mark.parametrize("encoding", ["tensor_content", "typed_fields"])
def test_every_datatype_matches_tensorflow(
    predict_stub: PredictionServiceStub, models_dir: Path, encoding: str
) -> None:
    request = predict_pb2.PredictRequest(model_spec=spec("dtypes"))
    for alias, value in INPUTS.items():
        proto = tf.make_tensor_proto(value) if encoding == "tensor_content" else typed_fields(value)
        request.inputs[alias].CopyFrom(proto)
    if encoding == "tensor_content":
        assert request.inputs["fp16"].tensor_content  # make_tensor_proto packs 2+ numbers as raw bytes
    else:
        assert list(request.inputs["fp16"].half_val) == list(INPUTS["fp16"].view(np.uint16))

    response = predict_stub.Predict(request, timeout=30)

    assert {alias: tensor.dtype for alias, tensor in response.outputs.items()} == DATATYPES
    expected = run_direct(str(models_dir / "dtypes" / "1"), "serving_default", INPUTS)
    got = outputs_as_arrays(response)
    for alias, value in expected.items():
        np.testing.assert_array_equal(got[alias], value, err_msg=alias, strict=True)
    # Spelled out too, so a model that lost its "+ 1" fails here and not only against itself.
    np.testing.assert_array_equal(got["int8_out"], np.array([-127, -128], dtype=np.int8))
    np.testing.assert_array_equal(got["fp16_out"], np.array([2.5, -np.inf], dtype=np.float16))
    np.testing.assert_array_equal(got["uint16_out"], np.array([1, 0], dtype=np.uint16))
    np.testing.assert_array_equal(got["bool_out"], [False, True])
    assert list(got["bytes_out"]) == list(INPUTS["bytes"])
