"""GetModelStatus and GetModelMetadata answers."""

from __future__ import annotations

from pathlib import Path

from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
)
from tensorflow_serving.apis.model_service_pb2_grpc import ModelServiceStub
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub

from .devserver_helpers import spec

State = get_model_status_pb2.ModelVersionStatus.State


def status(stub: ModelServiceStub, model_spec: model_pb2.ModelSpec) -> list[tuple[int, int, int, str]]:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_spec)
    response = stub.GetModelStatus(request, timeout=30)
    return [(s.version, s.state, s.status.error_code, s.status.error_message) for s in response.model_version_status]


def test_status_lists_versions_descending(model_stub: ModelServiceStub) -> None:
    assert status(model_stub, spec(name="half_plus_two")) == [(2, State.AVAILABLE, 0, ""), (1, State.AVAILABLE, 0, "")]
    assert status(model_stub, spec(name="mnist")) == [(1, State.AVAILABLE, 0, "")]


def test_status_of_one_version(model_stub: ModelServiceStub) -> None:
    assert status(model_stub, spec(name="half_plus_two", version=1)) == [(1, State.AVAILABLE, 0, "")]


def test_status_ignores_labels_like_modelserver(model_stub: ModelServiceStub) -> None:
    assert [v for v, *_ in status(model_stub, spec(name="half_plus_two", label="stable"))] == [2, 1]


def metadata(
    stub: PredictionServiceStub, model_spec: model_pb2.ModelSpec
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=model_spec, metadata_field=["signature_def"])
    return stub.GetModelMetadata(request, timeout=30)


def unpacked(response: get_model_metadata_pb2.GetModelMetadataResponse) -> get_model_metadata_pb2.SignatureDefMap:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    return signature_map


def test_metadata_is_the_saved_models_signature_defs(predict_stub: PredictionServiceStub, models_dir: Path) -> None:
    response = metadata(predict_stub, spec(name="half_plus_two", version=1))
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == ""
    saved = saved_model_pb2.SavedModel.FromString((models_dir / "half_plus_two/1/saved_model.pb").read_bytes())
    assert dict(unpacked(response).signature_def) == dict(saved.meta_graphs[0].signature_def)


def test_metadata_signatures_of_half_plus_two(predict_stub: PredictionServiceStub) -> None:
    signatures = unpacked(metadata(predict_stub, spec(name="half_plus_two"))).signature_def
    default = signatures["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    assert default.inputs["x"].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in default.inputs["x"].tensor_shape.dim] == [-1]
    assert default.inputs["x"].name  # a real tensor name such as serving_default_x:0
    assert signatures["classify_x_to_y"].method_name == "tensorflow/serving/classify"
    assert [d.size for d in signatures["classify_x_to_y"].outputs["scores"].tensor_shape.dim] == [-1, 1]
    assert signatures["regress_x_to_y"].method_name == "tensorflow/serving/regress"
    assert signatures["regress_x_to_y"].inputs["inputs"].dtype == types_pb2.DT_STRING


def test_metadata_resolves_labels_and_latest(predict_stub: PredictionServiceStub) -> None:
    assert metadata(predict_stub, spec(name="half_plus_two", label="stable")).model_spec.version.value == 1
    assert metadata(predict_stub, spec(name="half_plus_two")).model_spec.version.value == 2


def test_metadata_of_multi_io(predict_stub: PredictionServiceStub) -> None:
    default = unpacked(metadata(predict_stub, spec(name="multi_io"))).signature_def["serving_default"]
    dtypes = {alias: info.dtype for alias, info in default.inputs.items()}
    assert dtypes == {"a": types_pb2.DT_FLOAT, "b": types_pb2.DT_INT64, "s": types_pb2.DT_STRING}
    assert [d.size for d in default.inputs["a"].tensor_shape.dim] == [-1, 3]
    out_dtypes = {alias: info.dtype for alias, info in default.outputs.items()}
    assert out_dtypes == {
        "sum": types_pb2.DT_FLOAT,
        "b_times_2": types_pb2.DT_INT64,
        "s_upper": types_pb2.DT_STRING,
        "s_len": types_pb2.DT_INT32,
    }
