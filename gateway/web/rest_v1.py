"""Thin request handlers: target -> binding -> body -> signature -> codec -> backend -> codec -> response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway._pb.tensorflow.core.protobuf.meta_graph_pb2 import SignatureDef
from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    input_pb2,
    regression_pb2,
)
from gateway.backend.client import CLASSIFY, REGRESS, STATUS
from gateway.codec import examples as codec_examples
from gateway.codec import fastjson, jsonio
from gateway.codec import meta as codec_meta
from gateway.codec import predict as codec
from gateway.pipeline import batching, offload
from gateway.pipeline.services import RequestInfo, Services
from gateway.routing.binding import Binding
from gateway.web import body as request_body

JSON = "application/json"

Handler = Callable[[web.Request, Services, Binding, RequestInfo], Awaitable[web.Response]]


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON)


async def read_body(request: web.Request, timeout: float | None = None) -> bytes:
    """The whole body, inflated by ``gateway.web.body`` and capped at ``client_max_size``, raw and inflated.

    ``timeout`` bounds a slow client (aiohttp has no body read timeout of its own).
    """
    return await request_body.read_body(request, limit=request.client_max_size, timeout=timeout)


async def status(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    if binding.label is not None:
        # ModelServer's status API ignores labels; resolve the label to its version first.
        resolved = await services.metadata(binding, info)
        binding = binding.pinned(resolved.model_spec.version.value)
    request_msg = get_model_status_pb2.GetModelStatusRequest(model_spec=binding.model_spec())
    return json_response(codec_meta.encode_status(await services.call(binding, STATUS, request_msg, info)))


async def metadata(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    return json_response(codec_meta.encode_metadata(await services.metadata(binding, info)))


async def predict(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    raw = await read_body(request, services.settings.server.client_read_timeout_seconds)
    size = len(raw)
    parsed = await offload.run(size, _parse_predict, raw, services.settings.server.max_json_depth)
    sig_name = codec.signature_name(parsed.doc)
    sig = codec.find_signature(await services.signatures(binding, info), sig_name)
    fmt, tensors = await offload.run(size, _decode_inputs, parsed, sig, sig_name, services.limits)
    outputs = await batching.predict(services, binding, sig, binding.model_spec(sig_name), tensors, info)
    out_size = sum(array.nbytes for array in outputs.values())
    return json_response(await offload.run(out_size, codec.encode_outputs, outputs, fmt))


@dataclass(slots=True)
class _Parsed:
    """A parsed predict body, handed from the parse step to the conversion step, which empties it.

    The document of a hostile body can hold a million objects, and freeing them takes as long as
    building them. Emptied on the conversion thread, they are freed there, not on the event loop.
    """

    doc: dict[str, Any]
    bools: bool  # whether it may hold true/false, which the numeric fast path excludes


def _parse_predict(raw: bytes, max_depth: int) -> _Parsed:
    with request_body.decoding():
        # Large all-number bodies skip the nested lists; the exact path decides everything else.
        fast = fastjson.parse_predict(raw, max_depth=max_depth)
        if fast is not None:
            return _Parsed(fast, False)
        return _Parsed(jsonio.parse_object(raw, max_depth=max_depth), codec.bools_possible(raw))


def _decode_inputs(
    parsed: _Parsed, sig: SignatureDef, sig_name: str, limits: codec.Limits
) -> tuple[codec.Format, dict[str, codec.Tensor]]:
    doc, parsed.doc = parsed.doc, {}
    with request_body.decoding():
        return codec.decode_predict_inputs(doc, sig, sig_name, limits, bools_possible=parsed.bools)


async def classify(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    grpc_request = classification_pb2.ClassificationRequest()
    await _examples_request(request, services, binding, grpc_request)
    reply = await services.call(binding, CLASSIFY, grpc_request, info)
    return json_response(codec_examples.encode_classify_response(reply))


async def regress(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    grpc_request = regression_pb2.RegressionRequest()
    await _examples_request(request, services, binding, grpc_request)
    reply = await services.call(binding, REGRESS, grpc_request, info)
    return json_response(codec_examples.encode_regress_response(reply))


async def _examples_request(
    request: web.Request,
    services: Services,
    binding: Binding,
    grpc_request: classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest,
) -> None:
    """Fill a Classification/RegressionRequest (same fields) from the body: spec 6.1."""
    raw = await read_body(request, services.settings.server.client_read_timeout_seconds)
    sig_name, examples = await offload.run(len(raw), _parse_examples, raw, services.settings.server.max_json_depth)
    grpc_request.model_spec.CopyFrom(binding.model_spec(sig_name))
    grpc_request.input.CopyFrom(examples)


def _parse_examples(raw: bytes, max_depth: int) -> tuple[str, input_pb2.Input]:
    with request_body.decoding():
        doc = jsonio.parse_object(raw, max_depth=max_depth)
        return codec.signature_name(doc), codec_examples.decode_input(doc)


API: dict[str, Handler] = {
    "status": status,
    "metadata": metadata,
    "predict": predict,
    "classify": classify,
    "regress": regress,
}
