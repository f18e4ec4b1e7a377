"""Classify a digit over the Open Inference Protocol (V2) REST API, with tritonclient.http.

    python examples/clients/v2_http.py --url localhost:8501 --model mnist          # binary tensor data
    python examples/clients/v2_http.py --url localhost:8501 --model mnist --json   # JSON tensors

Sends ``POST /v2/models/{model}/infer`` with the image as ``images`` [1, 784] FP32, asks for
``classes`` and ``probabilities``, and prints the digit. tritonclient takes ``host:port`` with no
scheme. An error prints the server's message and exits 1.
"""

from __future__ import annotations

import sys

from common import INPUT, OUTPUTS, answer, load_image, parser


def main(argv: list[str] | None = None) -> int:
    flags = parser(__doc__.splitlines()[0], "localhost:8501", "host:port of the gateway's HTTP port, no scheme")
    flags.add_argument("--json", action="store_true", help="send and receive JSON tensors, not binary tensor data")
    args = flags.parse_args(argv)

    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    binary = not args.json
    image = load_image(args.image)
    tensor = httpclient.InferInput(INPUT, list(image.shape), "FP32")
    tensor.set_data_from_numpy(image, binary_data=binary)
    wanted = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in OUTPUTS]
    client = httpclient.InferenceServerClient(url=args.url)
    try:
        result = client.infer(args.model, [tensor], outputs=wanted)
    except InferenceServerException as error:
        print(error.message(), file=sys.stderr)
        return 1
    finally:
        client.close()
    print(answer(result.as_numpy("classes"), result.as_numpy("probabilities")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
