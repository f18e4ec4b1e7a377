"""Predict in both formats on every example model, compared exactly with TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import (
    CASES,
    FORMATS,
    Client,
    Format,
    PredictCase,
    assert_predict_matches,
    ok,
    tf_outputs,
    version_dir,
)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_predict_equals_tensorflow(
    standin_gateway: Client, standin_models: Path, case: PredictCase, fmt: Format
) -> None:
    body = await ok(standin_gateway, "POST", f"/v1/models/{case.model}:predict", case.body(fmt))
    expected = tf_outputs(version_dir(standin_models, case.model), case.inputs)
    assert_predict_matches(body, fmt, expected)


async def test_half_plus_two_prints_non_finite_tokens(standin_gateway: Client) -> None:
    # y = 0.5x + 3 on the latest version; NaN/Infinity travel as bare tokens both ways.
    body = await ok(
        standin_gateway, "POST", "/v1/models/half_plus_two:predict", {"instances": [1.0, float("inf"), float("nan")]}
    )
    predictions = body["predictions"]
    assert predictions[:2] == [3.5, float("inf")]
    assert np.isnan(predictions[2])


async def test_bytes_output_is_base64_and_text_output_is_a_string(standin_gateway: Client) -> None:
    body = await ok(standin_gateway, "POST", "/v1/models/string_bytes:predict", {"instances": ["hi"]})
    # raw_bytes = b"\xff\x00" + text, never valid UTF-8, hence b64.
    assert body == {"predictions": [{"echo": "hi", "raw_bytes": {"b64": "/wBoaQ=="}}]}


async def test_mnist_batch_of_784_vectors(standin_gateway: Client, standin_models: Path) -> None:
    images = np.random.default_rng(10).random((8, 784), dtype=np.float32)
    body = await ok(standin_gateway, "POST", "/v1/models/mnist:predict", {"instances": images.tolist()})
    for row in body["predictions"]:
        assert len(row["probabilities"]) == 10
        assert row["classes"] == int(np.argmax(np.array(row["probabilities"], dtype=np.float32)))
    assert_predict_matches(body, "row", tf_outputs(version_dir(standin_models, "mnist"), {"images": images}))
