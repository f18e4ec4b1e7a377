"""The errors ModelServer produces, through the gateway: HTTP status and the backend's text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from devserver.testing import DevServer

from .conftest import Client, failed

ONE = {"instances": [1.0]}
MULTI_ROW = {"a": [1.0, 2.0, 3.0], "b": 7, "s": "x"}
MULTI_COLUMNS = {"a": [[1.0, 2.0, 3.0]], "b": [7], "s": ["x"]}


@dataclass(frozen=True)
class ErrorCase:
    id: str
    method: str
    path: str
    body: Any
    status: int
    message: str | None = None  # the exact text, when it is the backend's
    facts: tuple[str, ...] = ()  # regexes the text must contain (the policy lets wording differ)


CASES = (
    # Servables (spec 7.3, 2.4): the backend's texts, verbatim.
    ErrorCase("unknown-model", "POST", "/v1/models/nope:predict", ONE, 404,
              "Servable not found for request: Latest(nope)"),
    ErrorCase("unknown-version", "POST", "/v1/models/half_plus_two/versions/99:predict", ONE, 404,
              "Servable not found for request: Specific(half_plus_two, 99)"),
    ErrorCase("unknown-label", "POST", "/v1/models/half_plus_two/labels/nope:predict", ONE, 400,
              "Unrecognized servable version label: nope"),
    ErrorCase("unknown-model-classify", "POST", "/v1/models/nope:classify", {"examples": [{"x": 1.0}]}, 404,
              "Servable not found for request: Latest(nope)"),
    ErrorCase("unknown-version-regress", "POST", "/v1/models/half_plus_two/versions/99:regress",
              {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]}, 404,
              "Servable not found for request: Specific(half_plus_two, 99)"),
    ErrorCase("unknown-model-metadata", "GET", "/v1/models/nope/metadata", None, 404,
              "Servable not found for request: Latest(nope)"),
    ErrorCase("unknown-label-metadata", "GET", "/v1/models/half_plus_two/labels/nope/metadata", None, 400,
              "Unrecognized servable version label: nope"),
    ErrorCase("unknown-model-status", "GET", "/v1/models/nope", None, 404,
              "Could not find any versions of model nope"),
    ErrorCase("unknown-version-status", "GET", "/v1/models/half_plus_two/versions/99", None, 404,
              "Could not find version 99 of model half_plus_two"),
    ErrorCase("unknown-label-status", "GET", "/v1/models/half_plus_two/labels/nope", None, 400,
              "Unrecognized servable version label: nope"),
    ErrorCase("unknown-signature", "POST", "/v1/models/half_plus_two:predict",
              {"signature_name": "nope", **ONE}, 400,
              'Serving signature name: "nope" not found in signature def'),
    ErrorCase("unknown-signature-deployment", "POST", "/model-serving/hp2-v1:predict",
              {"signature_name": "nope", **ONE}, 400,
              'Serving signature name: "nope" not found in signature def'),
    # Classify/regress signature checks (spec 7.3): the backend's texts, verbatim.
    ErrorCase("classify-on-predict-signature", "POST", "/v1/models/half_plus_two:classify",
              {"examples": [{"x": 1.0}]}, 400,
              "Expected classification signature method_name to be tensorflow/serving/classify. "
              "Was: tensorflow/serving/predict"),
    ErrorCase("regress-on-classify-signature", "POST", "/model-serving/hp2:regress",
              {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}]}, 400,
              "Expected regression signature method_name to be tensorflow/serving/regress. "
              "Was: tensorflow/serving/classify"),
    ErrorCase("example-without-its-feature", "POST", "/v1/models/half_plus_two:classify",
              {"signature_name": "classify_x_to_y", "examples": [{"y": 1.0}]}, 400,
              facts=(r"Feature: x \(data type: float\) is required",)),
    # Input names (spec 4.3, 4.4): the offending or missing name is named.
    ErrorCase("wrong-name-row", "POST", "/v1/models/multi_io:predict",
              {"instances": [{"a": [1.0, 2.0, 3.0], "b": 7, "colour": "x"}]}, 400,
              facts=(r"\bcolour\b",)),
    ErrorCase("missing-name-columnar", "POST", "/v1/models/multi_io:predict",
              {"inputs": {"a": [[1.0, 2.0, 3.0]], "b": [7], "colour": ["x"]}}, 400,
              facts=(r"\bs\b", "[Mm]issing")),
    ErrorCase("wrong-name-single-input", "POST", "/v1/models/half_plus_two:predict",
              {"inputs": {"y": [1.0]}}, 400, facts=(r"\bx\b", "[Mm]issing")),
    ErrorCase("plain-list-for-several-inputs", "POST", "/v1/models/multi_io:predict",
              {"instances": [[1.0, 2.0, 3.0]]}, 400, facts=("list of objects",)),
    # Dtypes (spec 4.5): expected type and what was sent.
    ErrorCase("string-for-float", "POST", "/v1/models/half_plus_two:predict", {"instances": ["abc"]}, 400,
              facts=(r"\bfloat\b", "String")),
    ErrorCase("decimal-for-int64", "POST", "/v1/models/multi_io:predict",
              {"inputs": {**MULTI_COLUMNS, "b": [1.5]}}, 400, facts=(r"\bint64\b", r"1\.5")),
    ErrorCase("number-for-string", "POST", "/v1/models/multi_io:predict",
              {"instances": [{**MULTI_ROW, "s": 5}]}, 400, facts=(r"\bstring\b", "Number")),
    ErrorCase("bool-for-float", "POST", "/model-serving/digits:predict", {"instances": [[True] * 784]}, 400,
              facts=(r"\bfloat\b",)),
    # Deployments.
    ErrorCase("unknown-deployment-status", "GET", "/model-serving/nope", None, 404, facts=(r"\bnope\b",)),
    ErrorCase("unknown-deployment-predict", "POST", "/model-serving/nope:predict", ONE, 404, facts=(r"\bnope\b",)),
    ErrorCase("unknown-deployment-metadata", "GET", "/model-serving/nope/metadata", None, 404,
              facts=(r"\bnope\b",)),
)  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_error(standin_gateway: Client, case: ErrorCase) -> None:
    error = await failed(standin_gateway, case.method, case.path, case.body, case.status)
    if case.message is not None:
        assert error == case.message
    for fact in case.facts:
        assert re.search(fact, error), (fact, error)


def backend_predict_error(address: str, model: str, inputs: dict[str, np.ndarray]) -> tuple[grpc.StatusCode, str]:
    """The status the stand-in itself answers a Predict with, over tensorflow-serving-api's stub."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as raised:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    error: Any = raised.value
    return error.code(), error.details()


async def test_tensorflow_runtime_error_is_the_backends_text(standin_gateway: Client, standin: DevServer) -> None:
    # Two floats where mnist wants 784: TensorFlow fails the matmul; the text passes through whole.
    images = np.array([[1.0, 2.0]], dtype=np.float32)
    error = await failed(standin_gateway, "POST", "/v1/models/mnist:predict", {"instances": images.tolist()}, 400)
    assert backend_predict_error(standin.address, "mnist", {"images": images}) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        error,
    )
    assert "Matrix size-incompatible" in error
