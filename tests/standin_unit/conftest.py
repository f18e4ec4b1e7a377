"""Fixtures for the ModelServer stand-in's own tests: models built once, one shared server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from devserver.testing import DevServer, running_devserver


@pytest.fixture(scope="session")
def models_dir(example_models: Path) -> Path:
    return example_models


@pytest.fixture(scope="session")
def config_file(example_models_config: Path) -> Path:
    return example_models_config


@pytest.fixture(scope="session")
def server(config_file: Path) -> Iterator[DevServer]:
    with running_devserver(config_file) as running:
        yield running


@pytest.fixture(scope="session")
def channel(server: DevServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as opened:
        yield opened


@pytest.fixture(scope="session")
def predict_stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="session")
def model_stub(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture
def half_plus_two_copy(models_dir: Path, tmp_path: Path) -> Path:
    """A private base path holding only version 1, free for a test to mutate."""
    base = tmp_path / "half_plus_two"
    base.mkdir()
    shutil.copytree(models_dir / "half_plus_two" / "1", base / "1")
    return base
