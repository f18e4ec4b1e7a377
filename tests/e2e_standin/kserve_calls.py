"""kserve's InferenceRESTClient against a gateway, run as a script: one JSON line of what it saw.

    python tests/e2e_standin/kserve_calls.py http://127.0.0.1:PORT[/model-serving/DEP] MODEL

kserve and tritonclient.grpc both register the ``inference`` protos in protobuf's default pool,
so they cannot share a process; ``test_standin_oip_kserve.py`` runs this in a subprocess and
checks every value against TensorFlow. Nothing here asserts: it reports, the test judges.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
import kserve
import numpy as np
from kserve.protocol.infer_type import RequestedOutput

X = [1.0, 2.0, -3.25, 3.4e38]
MULTI_IO = {
    "a": ([[1.0, 2.0, 3.0], [0.1, 0.2, 0.3]], "FP32", np.float32),
    "b": ([7, -(2**40)], "INT64", np.int64),
    "s": ([b"h\xc3\xa9llo", b""], "BYTES", np.object_),
}


def _input(name: str, values: Any, datatype: str, np_type: Any, binary: bool) -> kserve.InferInput:
    array = np.array(values, dtype=np_type)
    tensor = kserve.InferInput(name=name, shape=list(array.shape), datatype=datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def _outputs(response: Any) -> dict[str, Any]:
    return {
        output.name: {
            "datatype": output.datatype,
            "shape": list(output.shape),
            "data": [_plain(value) for value in output.as_numpy().ravel().tolist()],
        }
        for output in response.outputs
    }


def _plain(value: Any) -> Any:
    """A value JSON can carry: BYTES (bytes from binary data, str from JSON) as their bytes in latin-1."""
    if isinstance(value, str):
        value = value.encode()
    return value.decode("latin-1") if isinstance(value, bytes) else value


async def _error(call: Any) -> str:
    try:
        await call
    except httpx.HTTPStatusError as error:
        return f"{error.response.status_code}|{error}"
    return "no error"


async def _infer(client: kserve.InferenceRESTClient, url: str, model: str, binary: bool) -> dict[str, Any]:
    x = _input("x", X, "FP32", np.float32, binary)
    wanted = [RequestedOutput("y", parameters={"binary_data": binary})]
    request = kserve.InferRequest(model_name=model, infer_inputs=[x], request_outputs=wanted, request_id="42")
    response = await client.infer(url, request, model_name=model)
    return {"id": response.id, "model_name": response.model_name, "outputs": _outputs(response)}


async def main(url: str, model: str) -> dict[str, Any]:
    config = kserve.RESTConfig(protocol="v2", retries=0, timeout=30)
    async with kserve.InferenceRESTClient(config) as client:
        seen: dict[str, Any] = {
            "live": await client.is_server_live(url),
            "ready": await client.is_server_ready(url),
            "model_ready": await client.is_model_ready(url, model),
            "unknown_model_ready": await client.is_model_ready(url, "no_such_model"),
            "json": await _infer(client, url, model, binary=False),
            "binary": await _infer(client, url, model, binary=True),
        }
        if "/model-serving/" not in url:
            for mode, binary in (("multi_json", False), ("multi_binary", True)):
                inputs = [_input(name, *spec, binary) for name, spec in MULTI_IO.items()]
                request = kserve.InferRequest(model_name="multi_io", infer_inputs=inputs)
                seen[mode] = _outputs(await client.infer(url, request, model_name="multi_io"))
            wrong = kserve.InferRequest(model_name=model, infer_inputs=[_input("x", X, "FP64", np.float64, False)])
            seen["wrong_datatype"] = await _error(client.infer(url, wrong, model_name=model))
        unknown = kserve.InferRequest(model_name="nope", infer_inputs=[_input("x", X, "FP32", np.float32, False)])
        seen["unknown_model"] = await _error(client.infer(url, unknown, model_name="nope"))
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
