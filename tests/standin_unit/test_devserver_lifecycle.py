"""Versions appearing and disappearing at run time, start-up failures, clean shutdown."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis.model_service_pb2_grpc import ModelServiceStub
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub

from devserver.server import main
from devserver.testing import running_devserver, start_devserver

from .devserver_helpers import f32, outputs_as_arrays, predict_request, spec

State = get_model_status_pb2.ModelVersionStatus.State
GENEROUS_WAIT = 30.0
# Poll the file system often so version changes show up quickly.
FAST_POLL = 0.25


def wait_until(condition: Callable[[], bool], timeout: float = GENEROUS_WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def states(channel: grpc.Channel, name: str) -> list[tuple[int, int]]:
    stub = ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec(name))
    return [(s.version, s.state) for s in stub.GetModelStatus(request, timeout=30).model_version_status]


def add_version(base: Path, source: Path, version: int) -> None:
    """Copy under a hidden name, then rename: the poller never sees a half-copied version."""
    staging = base / f".staging-{version}"
    shutil.copytree(source, staging)
    staging.rename(base / str(version))


def test_version_added_then_removed(half_plus_two_copy: Path, models_dir: Path) -> None:
    with (
        running_devserver(model_name="hpt", model_base_path=half_plus_two_copy, poll_wait_seconds=FAST_POLL) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        assert states(channel, "hpt") == [(1, State.AVAILABLE)]
        add_version(half_plus_two_copy, models_dir / "half_plus_two" / "2", 2)
        # Default policy is latest(1): version 2 loads, then version 1 is unloaded.
        wait_until(lambda: states(channel, "hpt") == [(2, State.AVAILABLE), (1, State.END)])
        stub = PredictionServiceStub(channel)
        response = stub.Predict(predict_request(spec("hpt"), x=f32([2.0])), timeout=30)
        np.testing.assert_allclose(outputs_as_arrays(response)["y"], [4.0])
        shutil.rmtree(half_plus_two_copy / "2")
        wait_until(lambda: states(channel, "hpt") == [(2, State.END), (1, State.AVAILABLE)])
        response = stub.Predict(predict_request(spec("hpt"), x=f32([2.0])), timeout=30)
        assert response.model_spec.version.value == 1


def test_all_policy_keeps_both_and_removed_goes_end(half_plus_two_copy: Path, models_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "all.config"
    # A relative base path resolves from the config file's folder.
    relative = half_plus_two_copy.relative_to(tmp_path)
    config.write_text(
        f"model_config_list {{ config {{ name: 'hpt' base_path: '{relative}' model_platform: 'tensorflow' "
        "model_version_policy { all {} } } }"
    )
    with (
        running_devserver(config, poll_wait_seconds=FAST_POLL) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        add_version(half_plus_two_copy, models_dir / "half_plus_two" / "2", 2)
        wait_until(lambda: states(channel, "hpt") == [(2, State.AVAILABLE), (1, State.AVAILABLE)])
        shutil.rmtree(half_plus_two_copy / "1")
        wait_until(lambda: states(channel, "hpt") == [(2, State.AVAILABLE), (1, State.END)])
        stub = PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(predict_request(spec("hpt", version=1), x=f32([2.0])), timeout=30)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_specific_policy_serves_only_listed(models_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "specific.config"
    config.write_text(
        f"model_config_list {{ config {{ name: 'hpt' base_path: '{models_dir / 'half_plus_two'}' "
        "model_platform: 'tensorflow' model_version_policy { specific { versions: 1 } } "
        "version_labels { key: 'stable' value: 1 } } }"
    )
    server = start_devserver(config)
    try:
        with grpc.insecure_channel(server.address) as channel:
            assert states(channel, "hpt") == [(1, State.AVAILABLE)]
            stub = PredictionServiceStub(channel)
            response = stub.Predict(predict_request(spec("hpt", label="stable"), x=f32([2.0])), timeout=30)
            assert response.model_spec.version.value == 1
    finally:
        # ModelServer stops cleanly on SIGTERM (SIGINT is covered by the tensor_content test).
        exit_code = server.stop(signal.SIGTERM, timeout=GENEROUS_WAIT)
    assert exit_code == 0


def test_broken_version_fails_start_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"not a saved model")
    # In-process: start-up fails before anything binds a port or installs signal handlers.
    assert main(["--port", "0", "--model_name", "broken", "--model_base_path", str(tmp_path)]) == 1
    assert "Failed to start server" in caplog.text


def test_bad_config_fails_start_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "bad.config"
    config.write_text("model_config_list { config { name: 'x' base_path: '/tmp' model_platform: 'onnx' } }")
    assert main(["--port", "0", "--model_config_file", str(config)]) == 1
    assert "platform 'onnx' is not supported" in caplog.text
    config.write_text("model_config_list { config { name: 'x' base_pth: '/tmp' } }")
    assert main(["--port", "0", "--model_config_file", str(config)]) == 1
    assert "Invalid model config" in caplog.text


def test_needs_a_model(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--port", "0"]) == 1
    assert "--model_base_path or --model_config_file" in caplog.text
