"""A minimal, fast stand-in for ModelServer: grpc.aio answering from precomputed replies.

It parses only what it must (the model name and the batch size) so that, in the bench,
CPU is spent in the server under test rather than here. Run it alone with
``python -m bench.backend PORT``; it prints ``ready`` once it listens.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from bench import cases
from gateway._pb.tensorflow_serving.apis import predict_pb2

PREDICTION = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
MAX_MESSAGE_BYTES = 512 << 20
OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES), ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]


def predict(request: bytes) -> bytes:
    parsed = predict_pb2.PredictRequest.FromString(request)
    tensor = parsed.inputs["x"]
    batch = tensor.tensor_shape.dim[0].size if tensor.tensor_shape.dim else 1
    return cases.predict_reply(parsed.model_spec.name, batch)


def metadata(request: bytes) -> bytes:
    from gateway._pb.tensorflow_serving.apis import get_model_metadata_pb2

    return cases.metadata_reply(get_model_metadata_pb2.GetModelMetadataRequest.FromString(request).model_spec.name)


ANSWERS: dict[str, Callable[[bytes], bytes]] = {
    f"/{PREDICTION}/Predict": predict,
    f"/{PREDICTION}/Classify": lambda _: cases.classify_reply(),
    f"/{PREDICTION}/GetModelMetadata": metadata,
    f"/{MODEL_SERVICE}/GetModelStatus": lambda _: cases.status_reply(),
}


def _handler(answer: Callable[[bytes], bytes]) -> Callable[[bytes, Any], Awaitable[bytes]]:
    async def unary(request: bytes, context: Any) -> bytes:
        return answer(request)

    return unary


class _Handlers(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        answer = ANSWERS.get(details.method)
        return None if answer is None else grpc.unary_unary_rpc_method_handler(_handler(answer))


async def serve(port: int) -> None:
    server = grpc.aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers([_Handlers()])
    server.add_insecure_port(f"127.0.0.1:{port}")
    for model in cases.MODELS:  # warm the reply caches the cases use
        cases.metadata_reply(model)
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
