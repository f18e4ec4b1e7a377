"""The demo models through the gateway's REST v1 API: mnist reads handwriting, dtypes carries each datatype.

mnist is trained at build time on scikit-learn's handwritten digits (examples/digits.py); the
samples it never trained on must come back right, both as numbers and as the PNG files MNIST
clients load. dtypes carries one tensor per Open Inference Protocol datatype: everything but
DT_HALF, DT_BFLOAT16 and DT_UINT16 goes through TF Serving's JSON; those are a 501 as inputs and a
400 as outputs, as TF Serving answers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devserver.testing import build_example_models
from examples import digits
from examples.clients import common

from .conftest import (
    FORMATS,
    Client,
    Format,
    PredictCase,
    assert_predict_matches,
    failed,
    ok,
    strings,
    tf_outputs,
    version_dir,
)

MNIST = "/v1/models/mnist:predict"
DTYPES = "/v1/models/dtypes"
MIN_ACCURACY = 0.9


CHUNK = 32  # images per request: ~0.5 MB of JSON, under the size aiohttp's client sends without a warning


async def classes(client: Client, images: np.ndarray) -> np.ndarray:
    """The classes the gateway answers for (n, 784) images, sent in columnar requests of CHUNK."""
    answers = []
    for start in range(0, len(images), CHUNK):
        body = await ok(client, "POST", MNIST, {"inputs": images[start : start + CHUNK].tolist()})
        answers += body["outputs"]["classes"]
    return np.array(answers, dtype=np.int64)


# --------------------------------------------------------------------------- mnist


async def test_a_handwritten_5_as_a_png_comes_back_as_5(
    standin_gateway: Client, standin_models: Path, tmp_path: Path
) -> None:
    png = tmp_path / "five.png"
    png.write_bytes(digits.render_png(digits.typical_held_out(5)))
    image = common.load_image(png)  # as the clients read it: grey, 28x28, pixel / 255

    body = await ok(standin_gateway, "POST", MNIST, {"instances": image.tolist()})

    assert_predict_matches(body, "row", tf_outputs(version_dir(standin_models, "mnist"), {"images": image}))
    (prediction,) = body["predictions"]
    assert prediction["classes"] == 5, prediction
    assert max(prediction["probabilities"]) == prediction["probabilities"][5]


def test_the_committed_demo_image_is_that_5() -> None:
    rendered = digits.render_png(digits.typical_held_out(5))
    np.testing.assert_array_equal(common.load_image(common.DEFAULT_IMAGE), common.load_image_bytes(rendered))


async def test_held_out_digits_are_read_right(standin_gateway: Client, standin_models: Path) -> None:
    data = digits.split()
    assert len(data.test_labels) >= 300 and set(data.test_labels) == set(range(10))

    got = await classes(standin_gateway, data.test_images)

    oracle = tf_outputs(version_dir(standin_models, "mnist"), {"images": data.test_images})["classes"]
    np.testing.assert_array_equal(got, oracle)
    accuracy = float(np.mean(got == data.test_labels))
    assert accuracy >= MIN_ACCURACY, accuracy


async def test_held_out_digits_as_png_files_are_read_right(standin_gateway: Client) -> None:
    images8, labels = digits.raw_digits()
    test = digits.held_out(len(labels))
    images = np.concatenate([common.load_image_bytes(digits.render_png(image)) for image in images8[test]])

    got = await classes(standin_gateway, images)

    accuracy = float(np.mean(got == labels[test]))
    assert accuracy >= MIN_ACCURACY, accuracy


def test_the_build_is_deterministic(standin_models: Path, tmp_path: Path) -> None:
    again = build_example_models(tmp_path / "models")
    variables = Path("1") / "variables" / "variables.data-00000-of-00001"
    first, second = (models / "mnist" / variables for models in (standin_models, again))
    assert first.read_bytes() == second.read_bytes()


# --------------------------------------------------------------------------- dtypes

# Every datatype TF Serving's JSON carries, at its edges (int8 127 + 1 wraps, as TensorFlow does).
JSON_INPUTS = {
    "bool": np.array([True, False]),
    "int8": np.array([-128, 127], dtype=np.int8),
    "uint8": np.array([0, 255], dtype=np.uint8),
    "int16": np.array([-(2**15), 2**15 - 1], dtype=np.int16),
    "int32": np.array([-(2**31), 2**31 - 1], dtype=np.int32),
    "int64": np.array([-(2**63), 2**53 + 1], dtype=np.int64),
    "fp32": np.array([0.1, 3.4e38], dtype=np.float32),
    "fp64": np.array([0.1, 1e300], dtype=np.float64),
    "bytes": strings("h\u00e9llo", ""),
}
SIGNATURE_DTYPES = {
    "bool": "DT_BOOL",
    "int8": "DT_INT8",
    "uint8": "DT_UINT8",
    "int16": "DT_INT16",
    "uint16": "DT_UINT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "fp16": "DT_HALF",
    "bf16": "DT_BFLOAT16",
    "fp32": "DT_FLOAT",
    "fp64": "DT_DOUBLE",
    "bytes": "DT_STRING",
}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_json_datatype_round_trips(standin_gateway: Client, standin_models: Path, fmt: Format) -> None:
    body = {"signature_name": "tf_serving_json", **PredictCase("dtypes", "dtypes", JSON_INPUTS).body(fmt)}

    answer = await ok(standin_gateway, "POST", f"{DTYPES}:predict", body)

    expected = tf_outputs(version_dir(standin_models, "dtypes"), JSON_INPUTS, "tf_serving_json")
    assert sorted(expected) == sorted(f"{alias}_out" for alias in JSON_INPUTS)
    assert_predict_matches(answer, fmt, expected)
    np.testing.assert_array_equal(expected["int8_out"], np.array([-127, -128], dtype=np.int8))


@pytest.mark.parametrize(
    ("signature", "body", "dtype"),
    [
        ("fp16", {"inputs": [1.5, -2.0]}, "half"),
        # Inputs convert in alias order, so bf16 is the first TF Serving cannot read.
        (
            "serving_default",
            {"inputs": {alias: [1] for alias in SIGNATURE_DTYPES} | {"bool": [True], "bytes": ["x"]}},
            "bfloat16",
        ),
    ],
)
async def test_16_bit_inputs_are_not_json_so_they_are_a_501(
    standin_gateway: Client, signature: str, body: dict[str, Any], dtype: str
) -> None:
    error = await failed(standin_gateway, "POST", f"{DTYPES}:predict", {"signature_name": signature, **body}, 501)
    assert error.endswith(f"to type: {dtype}"), error


@pytest.mark.parametrize("fmt", FORMATS)
async def test_16_bit_outputs_are_a_400_as_tf_serving_writes_them(standin_gateway: Client, fmt: Format) -> None:
    body = {"signature_name": "narrow", **PredictCase("dtypes", "dtypes", {"x": np.array([1.5])}).body(fmt)}
    error = await failed(standin_gateway, "POST", f"{DTYPES}:predict", body, 400)
    # TF Serving names the first it writes; its order is protobuf map order, ours is sorted.
    assert error == "Failed to write JSON value for tensor type: bfloat16", error


async def test_metadata_lists_one_input_and_output_per_datatype(standin_gateway: Client) -> None:
    body = await ok(standin_gateway, "GET", f"{DTYPES}/metadata")
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert sorted(name for name in signatures if not name.startswith("__")) == [  # not __saved_model_init_op
        "fp16",
        "narrow",
        "serving_default",
        "tf_serving_json",
    ]
    default = signatures["serving_default"]
    assert {alias: info["dtype"] for alias, info in default["inputs"].items()} == SIGNATURE_DTYPES
    assert {alias: info["dtype"] for alias, info in default["outputs"].items()} == {
        f"{alias}_out": dtype for alias, dtype in SIGNATURE_DTYPES.items()
    }
    assert "fp16" not in signatures["tf_serving_json"]["inputs"]
