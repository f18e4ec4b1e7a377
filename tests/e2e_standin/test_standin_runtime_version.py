"""A version added while everything runs: the stand-in picks it up, the gateway serves it."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from devserver.testing import DevServer, running_devserver

from .conftest import (
    POLL_WAIT_SECONDS,
    Client,
    MakeGateway,
    assert_predict_matches,
    ok,
    tf_outputs,
    version_dir,
    versions_and_states,
)

GENEROUS_WAIT = 60.0
NEW_VERSION = 3


@pytest.fixture
def base_path(standin_models: Path, tmp_path: Path) -> Path:
    """A fresh base path holding only half_plus_two's version 1."""
    base = tmp_path / "half_plus_two"
    shutil.copytree(version_dir(standin_models, "half_plus_two", 1), base / "1")
    return base


@pytest.fixture
def lone_standin(base_path: Path) -> Iterator[DevServer]:
    """A separate stand-in started with only --model_name/--model_base_path."""
    with running_devserver(
        model_name="half_plus_two", model_base_path=base_path, poll_wait_seconds=POLL_WAIT_SECONDS
    ) as server:
        yield server


def add_version(base: Path, source: Path, version: int) -> None:
    """Copy beside the base path, then rename in: the poller never sees half a version."""
    staging = base.parent / f".staging-{version}"
    shutil.copytree(source, staging)
    staging.rename(base / str(version))


async def wait_for_available(client: Client, version: str, deadline: float) -> list[tuple[str, str]]:
    states: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        states = versions_and_states(await ok(client, "GET", "/v1/models/half_plus_two"))
        if (version, "AVAILABLE") in states:
            return states
        await asyncio.sleep(0.2)
    raise AssertionError(f"version {version} not AVAILABLE within {GENEROUS_WAIT}s; last status {states}")


async def test_version_added_while_running_is_served(
    make_standin_gateway: MakeGateway, lone_standin: DevServer, base_path: Path, standin_models: Path
) -> None:
    client = await make_standin_gateway(lone_standin.address)
    assert versions_and_states(await ok(client, "GET", "/v1/models/half_plus_two")) == [("1", "AVAILABLE")]

    add_version(base_path, version_dir(standin_models, "half_plus_two", 1), NEW_VERSION)
    await wait_for_available(client, str(NEW_VERSION), time.monotonic() + GENEROUS_WAIT)

    x = np.array([1.0, 2.0, 7.5], dtype=np.float32)
    expected = tf_outputs(version_dir(standin_models, "half_plus_two", 1), {"x": x})  # version 3 is a copy of 1
    for path in (f"/v1/models/half_plus_two/versions/{NEW_VERSION}", "/v1/models/half_plus_two"):
        assert_predict_matches(await ok(client, "POST", f"{path}:predict", {"instances": x.tolist()}), "row", expected)
    metadata = await ok(client, "GET", "/v1/models/half_plus_two/metadata")
    assert metadata["model_spec"]["version"] == str(NEW_VERSION)
