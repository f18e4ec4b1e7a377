"""Classify a digit over the Open Inference Protocol (V2) REST API, with kserve's InferenceRESTClient.

    python examples/clients/v2_kserve.py --url http://localhost:8501 --model mnist          # binary
    python examples/clients/v2_kserve.py --url http://localhost:8501 --model mnist --json   # JSON

Builds a kserve ``InferRequest`` with the image as ``images`` [1, 784] FP32, sends it with
``InferenceRESTClient(RESTConfig(protocol="v2"))`` to ``{url}/v2/models/{model}/infer``, and
prints the digit. kserve pins protobuf below 7, so it may need a virtualenv of its own. An
error prints kserve's message (which carries the server's ``error`` text) and exits 1.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from common import INPUT, OUTPUTS, answer, load_image, parser


async def infer(url: str, model: str, image: Any, binary: bool) -> dict[str, Any]:
    """The response's outputs by name, as numpy arrays."""
    import kserve
    from kserve.protocol.infer_type import RequestedOutput  # not re-exported by the package

    tensor = kserve.InferInput(name=INPUT, shape=list(image.shape), datatype="FP32")
    tensor.set_data_from_numpy(image, binary_data=binary)
    wanted = [RequestedOutput(name, parameters={"binary_data": binary}) for name in OUTPUTS]
    request = kserve.InferRequest(model_name=model, infer_inputs=[tensor], request_outputs=wanted)
    async with kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", retries=0, timeout=30)) as client:
        response = await client.infer(url, request, model_name=model)
    return {output.name: output.as_numpy() for output in response.outputs}


def main(argv: list[str] | None = None) -> int:
    flags = parser(__doc__.splitlines()[0], "http://localhost:8501", "the gateway's HTTP base URL")
    flags.add_argument("--json", action="store_true", help="send and receive JSON tensors, not binary tensor data")
    args = flags.parse_args(argv)

    import httpx  # kserve's HTTP client; its status errors carry the server's message

    try:
        outputs = asyncio.run(infer(args.url, args.model, load_image(args.image), binary=not args.json))
    except httpx.HTTPError as error:
        print(error, file=sys.stderr)
        return 1
    print(answer(outputs["classes"], outputs["probabilities"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
