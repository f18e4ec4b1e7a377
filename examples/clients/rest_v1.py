"""Classify a digit over TF Serving's REST API (v1), with requests: the gateway's v1 front.

    python examples/clients/rest_v1.py --url http://localhost:8501 --model mnist
    python examples/clients/rest_v1.py --deployment digits     # /model-serving/digits:predict

Posts ``{"instances": [[784 floats]]}`` to ``/v1/models/{model}:predict`` and prints the digit.
An error prints the gateway's ``error`` text and exits 1.
"""

from __future__ import annotations

import sys

import requests
from common import answer, load_image, parser


def predict_url(base: str, model: str, deployment: str | None) -> str:
    target = f"model-serving/{deployment}" if deployment else f"v1/models/{model}"
    return f"{base.rstrip('/')}/{target}:predict"


def main(argv: list[str] | None = None) -> int:
    flags = parser(__doc__.splitlines()[0], "http://localhost:8501", "the gateway's HTTP address")
    flags.add_argument("--deployment", help="a deployment id: call /model-serving/{id} instead of --model")
    args = flags.parse_args(argv)
    image = load_image(args.image)
    response = requests.post(
        predict_url(args.url, args.model, args.deployment), json={"instances": image.tolist()}, timeout=30
    )
    if response.status_code != 200:
        print(f"HTTP {response.status_code}: {response.json().get('error', response.text)}", file=sys.stderr)
        return 1
    (prediction,) = response.json()["predictions"]
    print(answer(prediction["classes"], prediction["probabilities"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
