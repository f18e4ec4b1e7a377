"""Classify a digit over the Open Inference Protocol (V2) gRPC API, with tritonclient.grpc.

    python examples/clients/v2_grpc.py --url localhost:8001 --model mnist

Calls ``inference.GRPCInferenceService/ModelInfer`` with the image as ``images`` [1, 784] FP32
(tritonclient sends it as raw bytes), asks for ``classes`` and ``probabilities``, and prints the
digit. An error prints the server's message and exits 1.
"""

from __future__ import annotations

import sys

from common import INPUT, OUTPUTS, answer, load_image, parser


def main(argv: list[str] | None = None) -> int:
    flags = parser(__doc__.splitlines()[0], "localhost:8001", "host:port of the gateway's gRPC port")
    args = flags.parse_args(argv)

    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    image = load_image(args.image)
    tensor = grpcclient.InferInput(INPUT, list(image.shape), "FP32")
    tensor.set_data_from_numpy(image)
    wanted = [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]
    client = grpcclient.InferenceServerClient(url=args.url)
    try:
        result = client.infer(args.model, [tensor], outputs=wanted, client_timeout=30)
    except InferenceServerException as error:
        print(error.message(), file=sys.stderr)
        return 1
    finally:
        client.close()
    print(answer(result.as_numpy("classes"), result.as_numpy("probabilities")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
