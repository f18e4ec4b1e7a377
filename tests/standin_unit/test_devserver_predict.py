"""Predict through the stand-in matches TensorFlow run directly on the same SavedModels."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub

from devserver.testing import start_devserver

from .devserver_helpers import f32, float_example, i64, outputs_as_arrays, predict_request, run_direct, spec


def test_half_plus_two_latest_is_version_2(predict_stub: PredictionServiceStub) -> None:
    response = predict_stub.Predict(predict_request(spec("half_plus_two"), x=f32([1.0, 2.0])), timeout=30)
    np.testing.assert_allclose(outputs_as_arrays(response)["y"], [3.5, 4.0])
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"


def test_half_plus_two_versions_and_labels_route(predict_stub: PredictionServiceStub) -> None:
    x = f32([1.0, 2.0])
    cases = [(spec("half_plus_two", version=1), 1, [2.5, 3.0]), (spec("half_plus_two", version=2), 2, [3.5, 4.0])]
    cases += [(spec("half_plus_two", label="stable"), 1, [2.5, 3.0])]
    cases += [(spec("half_plus_two", label="canary"), 2, [3.5, 4.0])]
    for model_spec, version, expected in cases:
        response = predict_stub.Predict(predict_request(model_spec, x=x), timeout=30)
        np.testing.assert_allclose(outputs_as_arrays(response)["y"], expected)
        assert response.model_spec.version.value == version


def test_typed_fields_by_default(predict_stub: PredictionServiceStub) -> None:
    response = predict_stub.Predict(predict_request(spec("half_plus_two"), x=f32([1.0, 2.0])), timeout=30)
    y = response.outputs["y"]
    assert list(y.float_val) == [3.5, 4.0]
    assert y.tensor_content == b""
    assert y.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in y.tensor_shape.dim] == [2]


def test_multi_io_matches_tensorflow(predict_stub: PredictionServiceStub, models_dir: Path) -> None:
    inputs = {
        "a": f32([[1.0, 2.0, 3.0], [0.5, -1.0, 4.25]]),
        "b": i64([10, -3]),
        "s": np.array([b"abc", "h\u00e9llo".encode()], dtype=object),
    }
    response = predict_stub.Predict(predict_request(spec("multi_io"), **inputs), timeout=30)
    got = outputs_as_arrays(response)
    expected = run_direct(str(models_dir / "multi_io" / "1"), "serving_default", inputs)
    assert sorted(got) == ["b_times_2", "s_len", "s_upper", "sum"]
    for alias, value in expected.items():
        np.testing.assert_array_equal(got[alias], value)
    assert response.outputs["b_times_2"].dtype == types_pb2.DT_INT64
    assert list(response.outputs["b_times_2"].int64_val) == [20, -6]
    assert response.outputs["s_len"].dtype == types_pb2.DT_INT32
    assert list(response.outputs["s_upper"].string_val) == [b"ABC", "H\u00e9LLO".encode()]


def test_output_filter_returns_only_requested(predict_stub: PredictionServiceStub) -> None:
    request = predict_request(spec("multi_io"), a=f32([[1, 2, 3]]), b=i64([1]), s=np.array([b"x"]))
    request.output_filter.extend(["s_len", "sum"])
    response = predict_stub.Predict(request, timeout=30)
    assert sorted(response.outputs) == ["s_len", "sum"]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["sum"]), [7.0])


def test_string_bytes_raw_output(predict_stub: PredictionServiceStub) -> None:
    text = np.array([b"hi", b""], dtype=object)
    response = predict_stub.Predict(predict_request(spec("string_bytes"), text=text), timeout=30)
    assert list(response.outputs["echo"].string_val) == [b"hi", b""]
    assert list(response.outputs["raw_bytes"].string_val) == [b"\xff\x00hi", b"\xff\x00"]


def test_mnist_matches_tensorflow(predict_stub: PredictionServiceStub, models_dir: Path) -> None:
    images = np.random.RandomState(7).uniform(0, 1, (3, 784)).astype(np.float32)
    response = predict_stub.Predict(predict_request(spec("mnist"), images=images), timeout=30)
    got = outputs_as_arrays(response)
    expected = run_direct(str(models_dir / "mnist" / "1"), "serving_default", {"images": images})
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=1e-6)
    np.testing.assert_array_equal(got["classes"], expected["classes"])
    assert got["probabilities"].shape == (3, 10)
    np.testing.assert_allclose(got["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_predict_can_run_a_classify_signature(predict_stub: PredictionServiceStub) -> None:
    """ModelServer's Predict accepts classify/regress signatures with raw inputs."""
    serialized = np.array([float_example(x=4.0).SerializeToString()], dtype=object)
    request = predict_request(spec("half_plus_two", version=1, signature="classify_x_to_y"), inputs=serialized)
    response = predict_stub.Predict(request, timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["scores"]), [[4.0]])
    assert response.model_spec.signature_name == "classify_x_to_y"


def test_tensor_content_flag(config_file: Path) -> None:
    server = start_devserver(config_file, extra_args=["--enable_serialization_as_tensor_content=true"])
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = PredictionServiceStub(channel)
            request = predict_request(spec("multi_io"), a=f32([[1, 2, 3]]), b=i64([4]), s=np.array([b"q"]))
            response = stub.Predict(request, timeout=30)
            hpt = stub.Predict(predict_request(spec("half_plus_two"), x=f32([1, 2])), timeout=30)
    finally:
        # ModelServer exits cleanly on SIGINT (SIGTERM is covered by the lifecycle tests).
        exit_code = server.stop(signal.SIGINT, timeout=30)
    assert exit_code == 0
    y = hpt.outputs["y"]
    assert not y.float_val
    assert y.tensor_content == f32([3.5, 4.0]).tobytes()
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["b_times_2"]), [8])
    assert response.outputs["sum"].tensor_content == f32([10.0]).tobytes()
    # Strings use TF's own encoding: varint lengths first, then the bytes.
    assert response.outputs["s_upper"].tensor_content == b"\x01Q"
    assert not response.outputs["s_upper"].string_val


def test_concurrent_requests_are_each_answered_right(predict_stub: PredictionServiceStub) -> None:
    """The stand-in serves requests in parallel; each gets its own answer."""

    def call(i: int) -> tuple[int, float]:
        version = 1 + i % 2
        request = predict_request(spec("half_plus_two", version=version), x=f32([float(i)]))
        y = outputs_as_arrays(predict_stub.Predict(request, timeout=60))["y"]
        return version, float(y[0]) - 0.5 * i

    with ThreadPoolExecutor(max_workers=16) as pool:
        offsets = list(pool.map(call, range(64)))
    assert all(offset == version + 1 for version, offset in offsets)
