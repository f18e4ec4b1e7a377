"""Our protos against upstream's: fresh stubs, exact method paths, identical bytes both ways."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2 as up_classification,
)
from tensorflow_serving.apis import (
    get_model_metadata_pb2 as up_metadata,
)
from tensorflow_serving.apis import (
    get_model_status_pb2 as up_status,
)
from tensorflow_serving.apis import (
    predict_pb2 as up_predict,
)
from tensorflow_serving.apis import (
    prediction_service_pb2_grpc as up_prediction_grpc,
)
from tensorflow_serving.apis import (
    regression_pb2 as up_regression,
)

from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from gateway.backend import client as backend

ROOT = Path(__file__).resolve().parent.parent


def _tree_diff(left: Path, right: Path) -> list[str]:
    cmp = filecmp.dircmp(left, right, ignore=["__pycache__"])
    diffs = [*cmp.left_only, *cmp.right_only, *cmp.diff_files]
    for name, sub in cmp.subdirs.items():
        diffs += [f"{name}/{d}" for d in _tree_diff(Path(sub.left), Path(sub.right))]
    return diffs


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    out = tmp_path / "_pb"
    subprocess.run([sys.executable, str(ROOT / "protos" / "regenerate.py"), "--out", str(out)], check=True)
    assert _tree_diff(ROOT / "gateway" / "_pb", out) == [], "run: python protos/regenerate.py"


@pytest.mark.parametrize(
    ("rpc", "path"),
    [
        (backend.PREDICT, "/tensorflow.serving.PredictionService/Predict"),
        (backend.CLASSIFY, "/tensorflow.serving.PredictionService/Classify"),
        (backend.REGRESS, "/tensorflow.serving.PredictionService/Regress"),
        (backend.METADATA, "/tensorflow.serving.PredictionService/GetModelMetadata"),
        (backend.STATUS, "/tensorflow.serving.ModelService/GetModelStatus"),
    ],
)
def test_method_paths_are_upstreams(rpc: backend.Rpc[object], path: str) -> None:  # type: ignore[type-var]
    assert rpc.path == path


def test_generated_service_paths_match_upstream_stub() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.paths: list[str] = []

        def unary_unary(self, path: str, *args: object, **kwargs: object) -> None:
            self.paths.append(path)

    ours, theirs = Recorder(), Recorder()
    prediction_service_pb2_grpc.PredictionServiceStub(ours)
    up_prediction_grpc.PredictionServiceStub(theirs)
    assert set(ours.paths) <= set(theirs.paths)
    recorder = Recorder()
    model_service_pb2_grpc.ModelServiceStub(recorder)
    assert recorder.paths == ["/tensorflow.serving.ModelService/GetModelStatus"]


def _our_predict() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.model_spec.version.value = 7
    request.model_spec.signature_name = "serving_default"
    tensor = request.inputs["x"]
    tensor.dtype = 1
    tensor.tensor_shape.dim.add(size=2)
    tensor.tensor_content = np.array([1.5, -2.0], np.float32).tobytes()
    request.inputs["s"].dtype = 7
    request.inputs["s"].string_val.extend([b"a", b"\xff"])
    request.output_filter.append("y")
    return request


def test_our_predict_request_parses_upstream_and_back() -> None:
    ours = _our_predict()
    theirs = up_predict.PredictRequest.FromString(ours.SerializeToString())
    assert theirs.model_spec.version.value == 7
    np.testing.assert_array_equal(tf.make_ndarray(theirs.inputs["x"]), np.array([1.5, -2.0], np.float32))
    assert list(theirs.inputs["s"].string_val) == [b"a", b"\xff"]
    assert predict_pb2.PredictRequest.FromString(theirs.SerializeToString()) == ours


def test_upstream_predict_response_parses_ours() -> None:
    theirs = up_predict.PredictResponse()
    theirs.outputs["y"].CopyFrom(tf.make_tensor_proto(np.arange(6, dtype=np.int64).reshape(2, 3)))
    theirs.model_spec.name = "m"
    theirs.model_spec.version_label = "stable"
    ours = predict_pb2.PredictResponse.FromString(theirs.SerializeToString())
    assert ours.model_spec.version_label == "stable"
    assert ours.outputs["y"].SerializeToString() == theirs.outputs["y"].SerializeToString()
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)


def test_classify_regress_status_and_metadata_round_trip() -> None:
    classify = up_classification.ClassificationResponse()
    classify.result.classifications.add().classes.add(label="cat", score=0.25)
    regress = up_regression.RegressionResponse()
    regress.result.regressions.add(value=1.5)
    status = up_status.GetModelStatusResponse()
    status.model_version_status.add(version=3, state=30).status.error_message = "fine"
    metadata = up_metadata.GetModelMetadataResponse()
    sig_map = up_metadata.SignatureDefMap()
    sig = sig_map.signature_def["serving_default"]
    sig.method_name = "tensorflow/serving/predict"
    sig.inputs["x"].name = "x:0"
    sig.inputs["x"].dtype = 1
    sig.inputs["x"].tensor_shape.dim.add(size=-1)
    metadata.metadata["signature_def"].Pack(sig_map)
    pairs = [
        (classify, classification_pb2.ClassificationResponse),
        (regress, regression_pb2.RegressionResponse),
        (status, get_model_status_pb2.GetModelStatusResponse),
        (metadata, get_model_metadata_pb2.GetModelMetadataResponse),
    ]
    for theirs, our_type in pairs:
        wire = theirs.SerializeToString(deterministic=True)
        assert our_type.FromString(wire).SerializeToString(deterministic=True) == wire


@pytest.mark.parametrize(
    "order",
    [
        "import gateway.web.app; import tensorflow; import tensorflow_serving.apis.predict_pb2",
        "import tensorflow; import tensorflow_serving.apis.predict_pb2; import gateway.web.app",
    ],
)
def test_gateway_shares_a_process_with_tensorflow(order: str) -> None:
    script = f"""{order}
from gateway._pb.tensorflow_serving.apis import predict_pb2 as ours
from tensorflow_serving.apis import predict_pb2 as theirs
import tensorflow as tf
r = ours.PredictRequest()
x = r.inputs['x']; x.dtype = 1; x.tensor_shape.dim.add(size=1); x.float_val.append(2.0)
t = theirs.PredictRequest.FromString(r.SerializeToString())
assert tf.make_ndarray(t.inputs['x']).tolist() == [2.0]
assert ours.PredictRequest.DESCRIPTOR.file.pool is not theirs.PredictRequest.DESCRIPTOR.file.pool
print('ok')
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_gateway_package_never_imports_tensorflow() -> None:
    script = "import sys, gateway.web.app, gateway.cli; assert 'tensorflow' not in sys.modules; print('ok')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]


# --------------------------------------------------------------------------- the Open Inference Protocol

OIP_MESSAGES = (
    "ServerLiveRequest",
    "ServerLiveResponse",
    "ServerReadyRequest",
    "ServerReadyResponse",
    "ModelReadyRequest",
    "ModelReadyResponse",
    "ServerMetadataRequest",
    "ServerMetadataResponse",
    "ModelMetadataRequest",
    "ModelMetadataResponse",
    "InferParameter",
    "InferTensorContents",
    "ModelInferRequest",
    "ModelInferResponse",
)


def _fields(descriptor: Any) -> list[tuple[str, int, int, bool, str, str]]:
    """Every field of a message and its nested messages: name, number, type, repeated, message type, oneof."""
    rows = [
        (
            f"{descriptor.full_name}.{f.name}",
            f.number,
            f.type,
            f.is_repeated,
            f.message_type.full_name if f.message_type else "",
            f.containing_oneof.name if f.containing_oneof else "",
        )
        for f in descriptor.fields
    ]
    for nested in descriptor.nested_types:
        rows += _fields(nested)
    return rows


@pytest.mark.parametrize("name", OIP_MESSAGES)
def test_oip_messages_are_tritonclients_on_the_wire(name: str) -> None:
    from tritonclient.grpc import service_pb2 as triton

    from gateway._pb.inference import open_inference_grpc_pb2 as ours

    theirs = triton.DESCRIPTOR.message_types_by_name[name]
    mine = ours.DESCRIPTOR.message_types_by_name[name]
    assert _fields(mine) == _fields(theirs)


def test_oip_service_methods_are_a_subset_of_tritons() -> None:
    from tritonclient.grpc import service_pb2 as triton

    from gateway._pb.inference import open_inference_grpc_pb2 as ours

    theirs = {
        m.name: (m.input_type.full_name, m.output_type.full_name)
        for m in triton.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
    }
    mine = {
        m.name: (m.input_type.full_name, m.output_type.full_name)
        for m in ours.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
    }
    assert mine == {name: theirs[name] for name in mine}
    assert sorted(mine) == ["ModelInfer", "ModelMetadata", "ModelReady", "ServerLive", "ServerMetadata", "ServerReady"]


@pytest.mark.parametrize(
    "order",
    [
        "import gateway.grpcfront.server; import tritonclient.grpc",
        "import tritonclient.grpc; import gateway.grpcfront.server",
    ],
)
def test_gateway_shares_a_process_with_tritonclient_grpc(order: str) -> None:
    script = f"""{order}
from gateway._pb.inference import open_inference_grpc_pb2 as ours
from tritonclient.grpc import service_pb2 as theirs
r = ours.ModelInferRequest(model_name='m', id='7')
r.inputs.add(name='x', datatype='FP32', shape=[2])
r.raw_input_contents.append(b'\\0' * 8)
t = theirs.ModelInferRequest.FromString(r.SerializeToString())
assert (t.model_name, t.id, list(t.inputs[0].shape), len(t.raw_input_contents[0])) == ('m', '7', [2], 8)
assert ours.ModelInferRequest.DESCRIPTOR.file.pool is not theirs.ModelInferRequest.DESCRIPTOR.file.pool
print('ok')
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
