"""kserve's InferenceRESTClient (protocol v2) against the gateway in front of the stand-in.

kserve and tritonclient.grpc both register the ``inference`` protos in protobuf's default pool, so
kserve runs in a subprocess (``kserve_calls.py``) that reports what it saw as one JSON line; the
test checks each value against TensorFlow. The gateway serves on a real port on this test's loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestServer

from . import test_standin_oip_rest
from .conftest import HALF_PLUS_TWO, LATEST, tf_outputs, version_dir

server = test_standin_oip_rest.server  # the same gateway fixture: in front of the stand-in, probes passed

SCRIPT = Path(__file__).with_name("kserve_calls.py")
CLIENT_SECONDS = 120  # a bound on a hang, not a timing assertion
X = np.array([1.0, 2.0, -3.25, 3.4e38], dtype=np.float32)


async def kserve_calls(url: str, model: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), url, model, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLIENT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    seen: dict[str, Any] = json.loads(out)
    return seen


def assert_y(seen: dict[str, Any], model: str, expected: np.ndarray) -> None:
    for mode in ("json", "binary"):
        reply = seen[mode]
        assert (reply["id"], reply["model_name"]) == ("42", model), reply
        y = reply["outputs"]["y"]
        assert (y["datatype"], y["shape"]) == ("FP32", [len(X)]), y
        np.testing.assert_array_equal(np.array(y["data"], dtype=np.float32), expected, err_msg=mode, strict=True)


async def test_kserve_client_health_infer_and_errors(server: TestServer, standin_models: Path) -> None:
    seen = await kserve_calls(f"http://127.0.0.1:{server.port}", HALF_PLUS_TWO)

    assert (seen["live"], seen["ready"], seen["model_ready"], seen["unknown_model_ready"]) == (True, True, True, False)
    assert_y(seen, HALF_PLUS_TWO, tf_outputs(version_dir(standin_models, HALF_PLUS_TWO), {"x": X})["y"])
    inputs = {
        "a": np.array([[1.0, 2.0, 3.0], [0.1, 0.2, 0.3]], dtype=np.float32),
        "b": np.array([7, -(2**40)], dtype=np.int64),
        "s": np.array([b"h\xc3\xa9llo", b""], dtype=object),
    }
    expected = tf_outputs(version_dir(standin_models, "multi_io"), inputs)
    for mode in ("multi_json", "multi_binary"):
        outputs = seen[mode]
        assert sorted(outputs) == sorted(expected), mode
        for name, array in expected.items():
            got = outputs[name]
            assert got["shape"] == list(array.shape), (mode, name)
            if array.dtype == object:
                assert [v.encode("latin-1") for v in got["data"]] == list(array), (mode, name)
            else:
                np.testing.assert_array_equal(np.array(got["data"], dtype=array.dtype), array.ravel(), err_msg=name)
    # kserve shows the gateway's error text (it reads it only from exactly application/json).
    status, text = seen["wrong_datatype"].split("|", 1)
    assert status == "400" and text.startswith("input 'x': model expects FP32 (DT_FLOAT), request has FP64"), text
    status, text = seen["unknown_model"].split("|", 1)
    assert status == "404" and "nope" in text, text


async def test_kserve_client_under_a_deployment_base_url(server: TestServer, standin_models: Path) -> None:
    seen = await kserve_calls(f"http://127.0.0.1:{server.port}/model-serving/hp2-v1", "hp2-v1")

    assert (seen["live"], seen["ready"], seen["model_ready"], seen["unknown_model_ready"]) == (True, True, True, False)
    expected = tf_outputs(version_dir(standin_models, HALF_PLUS_TWO, 1), {"x": X})["y"]
    assert LATEST[HALF_PLUS_TWO] != 1  # so the pin is what chose version 1
    assert_y(seen, "hp2-v1", expected)
    status, text = seen["unknown_model"].split("|", 1)
    assert status == "404" and "not served by deployment" in text, text
