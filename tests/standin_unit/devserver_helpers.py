"""Request builders and assertions shared by the stand-in's tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2

Response = TypeVar("Response")


def f32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def i64(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def i32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def spec(name: str, version: int | None = None, label: str | None = None, signature: str = "") -> model_pb2.ModelSpec:
    model_spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        model_spec.version.value = version
    if label is not None:
        model_spec.version_label = label
    return model_spec


def predict_request(model_spec: model_pb2.ModelSpec, **inputs: Any) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_spec)
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def outputs_as_arrays(response: predict_pb2.PredictResponse) -> dict[str, np.ndarray]:
    return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}


def float_example(**features: float) -> example_pb2.Example:
    return example_pb2.Example(
        features=feature_pb2.Features(
            feature={k: feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[v])) for k, v in features.items()}
        )
    )


def expect_error(
    call: Callable[..., Response], request: Any, code: grpc.StatusCode, message: str, exact: bool = True
) -> str:
    """Call an RPC that must fail; check its code and text (exact, or a prefix)."""
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    error: Any = raised.value
    details = error.details()
    assert error.code() == code, details
    if exact:
        assert details == message
    else:
        assert details.startswith(message), details
    return str(details)


def run_direct(model_path: str, signature: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """What TensorFlow itself computes for a signature, as the oracle."""
    function = tf.saved_model.load(model_path).signatures[signature]
    return {k: v.numpy() for k, v in function(**{a: tf.constant(x) for a, x in inputs.items()}).items()}
