"""Version and label routing, and the deployment URLs /model-serving/{id}[...].

Classify and regress on the same routes are in test_standin_classify_regress.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import (
    CASES,
    FORMATS,
    HP2,
    HP2_ROUTES,
    Client,
    Format,
    assert_predict_matches,
    ok,
    tf_outputs,
    version_dir,
    versions_and_states,
)

X = np.array([1.0, 2.0, -0.5], dtype=np.float32)
PREDICT_ROUTES = {
    **HP2_ROUTES,
    f"{HP2}/versions/2": 2,
    "/model-serving/hp2/labels/stable": 1,
    # A version or label in the URL takes precedence over the deployment's pin (README).
    "/model-serving/hp2-v1/labels/canary": 2,
    "/model-serving/hp2-canary/versions/1": 1,
}

# path -> the versions its status lists (a label is honoured: the gateway resolves it)
STATUS_ROUTES = {
    HP2: ["2", "1"],
    f"{HP2}/versions/1": ["1"],
    f"{HP2}/labels/stable": ["1"],
    f"{HP2}/labels/canary": ["2"],
    "/model-serving/hp2": ["2", "1"],
    "/model-serving/hp2-v1": ["1"],
    "/model-serving/hp2-canary": ["2"],
    "/model-serving/hp2/labels/stable": ["1"],
    "/model-serving/digits": ["1"],
}


@pytest.mark.parametrize(("path", "version"), PREDICT_ROUTES.items())
async def test_predict_routes_to_the_right_version(
    standin_gateway: Client, standin_models: Path, path: str, version: int
) -> None:
    answer = await ok(standin_gateway, "POST", f"{path}:predict", {"instances": X.tolist()})
    assert_predict_matches(answer, "row", tf_outputs(version_dir(standin_models, "half_plus_two", version), {"x": X}))


async def test_versions_give_different_numbers(standin_gateway: Client) -> None:
    request = {"inputs": [1.0, 2.0]}
    v1 = await ok(standin_gateway, "POST", f"{HP2}/versions/1:predict", request)
    v2 = await ok(standin_gateway, "POST", f"{HP2}/versions/2:predict", request)
    assert v1 == {"outputs": [2.5, 3.0]}  # 0.5x + 2
    assert v2 == {"outputs": [3.5, 4.0]}  # 0.5x + 3


@pytest.mark.parametrize(("path", "versions"), STATUS_ROUTES.items())
async def test_status_routes(standin_gateway: Client, path: str, versions: list[str]) -> None:
    states = versions_and_states(await ok(standin_gateway, "GET", path))
    assert states == [(version, "AVAILABLE") for version in versions]


@pytest.mark.parametrize(
    ("path", "model", "version"),
    [
        (f"{HP2}/versions/1/metadata", "half_plus_two", "1"),
        (f"{HP2}/labels/canary/metadata", "half_plus_two", "2"),
        ("/model-serving/hp2/metadata", "half_plus_two", "2"),
        ("/model-serving/hp2-v1/metadata", "half_plus_two", "1"),
        ("/model-serving/hp2-canary/metadata", "half_plus_two", "2"),
        ("/model-serving/hp2/labels/stable/metadata", "half_plus_two", "1"),
        ("/model-serving/digits/metadata", "mnist", "1"),
    ],
)
async def test_metadata_routes(standin_gateway: Client, path: str, model: str, version: str) -> None:
    answer = await ok(standin_gateway, "GET", path)
    assert answer["model_spec"] == {"name": model, "version": version, "signature_name": ""}
    assert "serving_default" in answer["metadata"]["signature_def"]["signature_def"]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_deployment_predict_on_mnist(standin_gateway: Client, standin_models: Path, fmt: Format) -> None:
    (case,) = [case for case in CASES if case.model == "mnist"]
    answer = await ok(standin_gateway, "POST", "/model-serving/digits:predict", case.body(fmt))
    assert_predict_matches(answer, fmt, tf_outputs(version_dir(standin_models, "mnist"), case.inputs))
