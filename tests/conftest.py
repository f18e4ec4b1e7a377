"""Shared fixtures: a fake ModelServer on loopback and a real gateway in front of it.

- ``fake_backend``: a started :class:`~fake_backend.FakeModelServer` holding the
  standard model zoo (:func:`harness.install_models`).
- ``settings_overrides``: ``{}``; override it in a module, or parametrize it with
  ``indirect=True``, to change the settings ``gateway_client`` is built with.
- ``gateway_settings``: the mapping given to ``Settings.from_mapping`` (the fake as the
  default backend, the standard deployments, then ``settings_overrides`` deep-merged).
- ``make_gateway_client(overrides=None)``: a gateway ``TestClient`` on ``127.0.0.1:0``
  built from ``gateway_settings`` plus ``overrides``, each with a fresh ``CollectorRegistry``.
- ``gateway_client``: ``make_gateway_client()``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import pytest
from fake_backend import FakeModelServer
from harness import GatewayClient, MakeGatewayClient, base_settings, build_app, install_models, merge
from hypothesis import settings

from devserver.testing import build_example_models, write_example_config

# CI (.ci/run sets CI=true) draws the same Hypothesis examples on every run, so a submission never
# lands or fails on a lucky draw; local runs stay random and keep finding new cases.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

AiohttpClient: TypeAlias = Callable[..., Awaitable[GatewayClient]]


@pytest.fixture
async def fake_backend() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as fake:
        install_models(fake)
        yield fake


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> Mapping[str, Any]:
    return getattr(request, "param", {})


@pytest.fixture
def gateway_settings(fake_backend: FakeModelServer, settings_overrides: Mapping[str, Any]) -> dict[str, Any]:
    return merge(base_settings(fake_backend), settings_overrides)


@pytest.fixture
def make_gateway_client(aiohttp_client: AiohttpClient, gateway_settings: dict[str, Any]) -> MakeGatewayClient:
    async def make(overrides: Mapping[str, Any] | None = None) -> GatewayClient:
        return await aiohttp_client(build_app(merge(gateway_settings, overrides or {})))

    return make


@pytest.fixture
async def gateway_client(make_gateway_client: MakeGatewayClient) -> GatewayClient:
    return await make_gateway_client()


@pytest.fixture(scope="session")
def example_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example SavedModels, built once per session for every stand-in test (tests only read them)."""
    return build_example_models(tmp_path_factory.mktemp("example-models"))


@pytest.fixture(scope="session")
def example_models_config(example_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example_config(example_models, tmp_path_factory.mktemp("example-config") / "models.config")
