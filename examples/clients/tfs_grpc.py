"""Classify a digit over TF Serving's gRPC API, with tensorflow-serving-api's PredictionServiceStub.

    python examples/clients/tfs_grpc.py --url localhost:8500 --model mnist   # ModelServer (or the stand-in)
    python examples/clients/tfs_grpc.py --url localhost:8001 --model mnist   # the gateway's gRPC port

Sends ``PredictionService.Predict`` with the image as a [1, 784] DT_FLOAT tensor, the way TF
Serving's own ``mnist_client.py`` does, and prints the digit. ``--deployment ID`` adds the
``x-deployment-id`` metadata the gateway routes by. An error prints its gRPC status and exits 1.
"""

from __future__ import annotations

import os
import sys

from common import INPUT, answer, load_image, parser

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads, so the answer is readable


def main(argv: list[str] | None = None) -> int:
    flags = parser(__doc__.splitlines()[0], "localhost:8500", "host:port of a TF Serving gRPC API")
    flags.add_argument("--signature", default="serving_default", help="signature name (default: %(default)s)")
    flags.add_argument("--deployment", help="a gateway deployment id, sent as x-deployment-id metadata")
    args = flags.parse_args(argv)

    # Imported after the flags are read: TensorFlow takes seconds to load, --help should not.
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model
    request.model_spec.signature_name = args.signature
    request.inputs[INPUT].CopyFrom(tf.make_tensor_proto(load_image(args.image)))
    metadata = [("x-deployment-id", args.deployment)] if args.deployment else None
    with grpc.insecure_channel(args.url) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=30, metadata=metadata)
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    outputs = {alias: tf.make_ndarray(tensor) for alias, tensor in response.outputs.items()}
    print(answer(outputs["classes"], outputs["probabilities"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
