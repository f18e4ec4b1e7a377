"""BASELINE, not the gateway: the hand-written proxy users write instead of using one.

It does exactly the usual pipeline, json.loads -> tf.make_tensor_proto -> gRPC ->
tf.make_ndarray().tolist() -> json.dumps, on aiohttp, and it imports TensorFlow (its
RSS is part of what the bench compares). It knows the bench's models only as far as a
hand-written proxy would: every input is float32 except base64 strings. It is kept
simple on purpose; it validates nothing.
Run: ``python -m bench.baseline_proxy HTTP_PORT GRPC_TARGET``.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import grpc
import tensorflow as tf
from aiohttp import web
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from bench.backend import MAX_MESSAGE_BYTES, OPTIONS

STUBS = web.AppKey("stubs", tuple)


def _tensor(values: Any) -> Any:
    if isinstance(values, list) and values and isinstance(values[0], dict):
        return tf.make_tensor_proto([base64.b64decode(v["b64"]) for v in values])
    return tf.make_tensor_proto(values, dtype=tf.float32)


def _outputs(response: predict_pb2.PredictResponse) -> Any:
    arrays = {k: tf.make_ndarray(v).tolist() for k, v in response.outputs.items()}
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


async def predict(request: web.Request, model: str) -> web.Response:
    doc = json.loads(await request.read())
    grpc_request = predict_pb2.PredictRequest()
    grpc_request.model_spec.name = model
    key = "instances" if "instances" in doc else "inputs"
    grpc_request.inputs["x"].CopyFrom(_tensor(doc[key]))
    response = await request.app[STUBS][0].Predict(grpc_request)
    out_key = "predictions" if key == "instances" else "outputs"
    return web.json_response({out_key: _outputs(response)}, dumps=json.dumps)


async def classify(request: web.Request, model: str) -> web.Response:
    doc = json.loads(await request.read())
    grpc_request = classification_pb2.ClassificationRequest()
    grpc_request.model_spec.name = model
    for ex in doc["examples"]:
        grpc_request.input.example_list.examples.append(_example(ex))
    response = await request.app[STUBS][0].Classify(grpc_request)
    results = [[[c.label, c.score] for c in item.classes] for item in response.result.classifications]
    return web.json_response({"results": results}, dumps=json.dumps)


def _example(ex: dict[str, Any]) -> Any:
    feature = {}
    for name, value in ex.items():
        values = value if isinstance(value, list) else [value]
        if isinstance(values[0], str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
        elif isinstance(values[0], int):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature))


async def status(request: web.Request, model: str) -> web.Response:
    grpc_request = get_model_status_pb2.GetModelStatusRequest()
    grpc_request.model_spec.name = model
    response = await request.app[STUBS][1].GetModelStatus(grpc_request)
    return web.Response(text=json_format.MessageToJson(response), content_type="application/json")


async def metadata(request: web.Request, model: str) -> web.Response:
    grpc_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    grpc_request.model_spec.name = model
    response = await request.app[STUBS][0].GetModelMetadata(grpc_request)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sig_map)
    body = {
        "model_spec": json_format.MessageToDict(response.model_spec),
        "metadata": {"signature_def": json_format.MessageToDict(sig_map, preserving_proto_field_name=True)},
    }
    return web.json_response(body, dumps=json.dumps)


async def post(request: web.Request) -> web.Response:
    model, _, verb = request.match_info["name"].partition(":")
    return await (predict if verb == "predict" else classify)(request, model)


async def get(request: web.Request) -> web.Response:
    model, _, sub = request.match_info["name"].partition("/")
    return await (metadata if sub == "metadata" else status)(request, model)


def build(target: str) -> web.Application:
    app = web.Application(client_max_size=MAX_MESSAGE_BYTES)

    async def channel_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        channel = grpc.aio.insecure_channel(target, options=OPTIONS)
        app[STUBS] = (
            prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel),
        )
        yield
        await channel.close(None)

    app.cleanup_ctx.append(channel_ctx)
    app.router.add_post("/v1/models/{name}", post)
    app.router.add_get("/v1/models/{name:.+}", get)
    return app


if __name__ == "__main__":
    port, target = int(sys.argv[1]), sys.argv[2]
    web.run_app(build(target), host="127.0.0.1", port=port, access_log=None, print=lambda *_: None)
