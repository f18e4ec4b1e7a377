"""Every error path: ModelServer's gRPC code and text."""

from __future__ import annotations

import grpc
import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    predict_pb2,
    regression_pb2,
)
from tensorflow_serving.apis.model_service_pb2_grpc import ModelServiceStub
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub

from .devserver_helpers import expect_error, f32, float_example, i32, i64, predict_request, spec

Code = grpc.StatusCode
X = f32([1.0])


def test_unknown_model_latest(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("nope"), x=X)
    expect_error(predict_stub.Predict, request, Code.NOT_FOUND, "Servable not found for request: Latest(nope)")


def test_unknown_version(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("half_plus_two", version=7), x=X)
    message = "Servable not found for request: Specific(half_plus_two, 7)"
    expect_error(predict_stub.Predict, request, Code.NOT_FOUND, message)


def test_unknown_label(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("half_plus_two", label="beta"), x=X)
    expect_error(predict_stub.Predict, request, Code.INVALID_ARGUMENT, "Unrecognized servable version label: beta")
    unknown_model = predict_request(spec("nope", label="stable"), x=X)
    message = "Unrecognized servable version label: stable"
    expect_error(predict_stub.Predict, unknown_model, Code.INVALID_ARGUMENT, message)


def test_unknown_signature(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("half_plus_two", signature="nope"), x=X)
    expect_error(predict_stub.Predict, request, Code.FAILED_PRECONDITION, 'Serving signature key "nope" not found.')


def test_missing_model_spec(predict_stub: PredictionServiceStub) -> None:
    expect_error(predict_stub.Predict, predict_pb2.PredictRequest(), Code.INVALID_ARGUMENT, "Missing ModelSpec")


def test_wrong_input_name(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("half_plus_two"), z=X)
    message = (
        "input size does not match signature: 1!=1 len({z}) != len({x}). Sent extra: {z}. Missing but required: {x}."
    )
    expect_error(predict_stub.Predict, request, Code.INVALID_ARGUMENT, message)


def test_missing_and_extra_inputs(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("multi_io"), a=f32([[1, 2, 3]]), b=i64([1]), x=X, y=X)
    message = (
        "input size does not match signature: 4!=3 len({a,b,x,y}) != len({a,b,s}). "
        "Sent extra: {x,y}. Missing but required: {s}."
    )
    expect_error(predict_stub.Predict, request, Code.INVALID_ARGUMENT, message)


def test_wrong_dtype(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("multi_io"), a=f32([[1, 2, 3]]), b=i32([1]), s=np.array([b"x"]))
    message = "Expects arg[1] to be int64 but int32 is provided"
    expect_error(predict_stub.Predict, request, Code.INVALID_ARGUMENT, message)
    strings = predict_request(spec("half_plus_two"), x=np.array([b"1"]))
    expect_error(
        predict_stub.Predict, strings, Code.INVALID_ARGUMENT, "Expects arg[0] to be float but string is provided"
    )


def test_unparsable_tensor(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("half_plus_two"), x=X)
    request.inputs["x"].tensor_content = b"\x00\x01\x02"  # not a whole float
    request.inputs["x"].ClearField("float_val")
    expect_error(predict_stub.Predict, request, Code.INVALID_ARGUMENT, "tensor parsing error: x")


def test_unknown_output_filter(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("half_plus_two"), x=X)
    request.output_filter.append("nope")
    message = "output tensor alias not found in signature: nope Outputs expected to be in the set {y}."
    expect_error(predict_stub.Predict, request, Code.INVALID_ARGUMENT, message)


def test_tf_runtime_error_passes_through(predict_stub: PredictionServiceStub) -> None:
    # Wrong inner dimension: TensorFlow itself rejects the matmul.
    request = predict_request(spec("mnist"), images=f32([[1.0, 2.0]]))
    expect_error(predict_stub.Predict, request, Code.INVALID_ARGUMENT, "", exact=False)


def test_metadata_errors(predict_stub: PredictionServiceStub) -> None:
    no_field = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec("half_plus_two"))
    message = "GetModelMetadataRequest must specify at least one metadata_field"
    expect_error(predict_stub.GetModelMetadata, no_field, Code.INVALID_ARGUMENT, message)
    bad_field = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec("half_plus_two"), metadata_field=["x"])
    expect_error(predict_stub.GetModelMetadata, bad_field, Code.INVALID_ARGUMENT, "Metadata field x is not supported")
    unknown = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec("nope"), metadata_field=["signature_def"])
    message = "Servable not found for request: Latest(nope)"
    expect_error(predict_stub.GetModelMetadata, unknown, Code.NOT_FOUND, message)
    label = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=spec("half_plus_two", label="zzz"), metadata_field=["signature_def"]
    )
    message = "Unrecognized servable version label: zzz"
    expect_error(predict_stub.GetModelMetadata, label, Code.INVALID_ARGUMENT, message)


def test_status_errors(model_stub: ModelServiceStub) -> None:
    unknown = get_model_status_pb2.GetModelStatusRequest(model_spec=spec("nope"))
    message = "Could not find any versions of model nope"
    expect_error(model_stub.GetModelStatus, unknown, Code.NOT_FOUND, message)
    version = get_model_status_pb2.GetModelStatusRequest(model_spec=spec("half_plus_two", version=9))
    message = "Could not find version 9 of model half_plus_two"
    expect_error(model_stub.GetModelStatus, version, Code.NOT_FOUND, message)


def examples(*xs: float) -> input_pb2.Input:
    return input_pb2.Input(example_list=input_pb2.ExampleList(examples=[float_example(x=x) for x in xs]))


def test_classify_errors(predict_stub: PredictionServiceStub) -> None:
    def request(signature: str, model_input: input_pb2.Input) -> classification_pb2.ClassificationRequest:
        return classification_pb2.ClassificationRequest(
            model_spec=spec("half_plus_two", signature=signature), input=model_input
        )

    message = (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )
    expect_error(predict_stub.Classify, request("", examples(1.0)), Code.INVALID_ARGUMENT, message)
    missing = request("nope", examples(1.0))
    expect_error(predict_stub.Classify, missing, Code.INVALID_ARGUMENT, "No signature was found with the name: nope")
    empty = request("classify_x_to_y", input_pb2.Input())
    expect_error(predict_stub.Classify, empty, Code.INVALID_ARGUMENT, "Input is empty.")
    unknown_model = classification_pb2.ClassificationRequest(model_spec=spec("nope"), input=examples(1.0))
    message = "Servable not found for request: Latest(nope)"
    expect_error(predict_stub.Classify, unknown_model, Code.NOT_FOUND, message)


def test_regress_errors(predict_stub: PredictionServiceStub) -> None:
    def request(signature: str, model_input: input_pb2.Input) -> regression_pb2.RegressionRequest:
        return regression_pb2.RegressionRequest(
            model_spec=spec("half_plus_two", signature=signature), input=model_input
        )

    message = (
        "Expected regression signature method_name to be tensorflow/serving/regress. Was: tensorflow/serving/classify"
    )
    expect_error(predict_stub.Regress, request("classify_x_to_y", examples(1.0)), Code.INVALID_ARGUMENT, message)
    # An example without the `x` feature: TensorFlow's parse error passes through.
    no_x = input_pb2.Input(example_list=input_pb2.ExampleList(examples=[float_example(y=1.0)]))
    expect_error(predict_stub.Regress, request("regress_x_to_y", no_x), Code.INVALID_ARGUMENT, "", exact=False)
