"""TF Serving's REST API (v1) as a front over the transport-free verbs.

Each handler reads the body, parses what needs no signature (the JSON document, the
``signature_name``, tf.Examples), calls its verb in ``gateway.pipeline.verbs`` and writes the
verb's result as TF Serving's JSON. Everything else (signatures, conversion with the
signature's dtypes, batching, the backend call) happens in the verb.

Parsing and conversion run inside ``body.decoding()`` (decoder failures are 400s) and, for
bodies of ``LARGE_BODY_BYTES`` or more, on a decode thread (``pipeline.offload``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from gateway.codec import examples as codec_examples
from gateway.codec import fastjson, jsonio, messages
from gateway.codec import meta as codec_meta
from gateway.codec import predict as codec
from gateway.pipeline import offload, verbs
from gateway.pipeline.services import RequestInfo, Services
from gateway.routing.binding import Binding
from gateway.web import body as request_body
from gateway.web.responses import json_response

Handler = Callable[[web.Request, Services, Binding, RequestInfo], Awaitable[web.Response]]


async def read_body(request: web.Request, services: Services) -> bytes:
    """The whole body, inflated and capped (``gateway.web.body``); a slow client gets a 408."""
    timeout = services.settings.server.client_read_timeout_seconds
    return await request_body.read_body(request, limit=request.client_max_size, timeout=timeout)


async def status(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    return json_response(codec_meta.encode_status(await verbs.status(services, binding, info)))


async def metadata(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    return json_response(codec_meta.encode_metadata(await verbs.metadata(services, binding, info)))


async def predict(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    raw = await read_body(request, services)
    parsed = await offload.run(len(raw), _parse_predict, raw, services.settings.server.max_json_depth)
    decode = partial(_tensors, parsed, services.limits)
    outputs = await verbs.predict(services, binding, info, parsed.signature_name, decode, len(raw))
    size = sum(array.nbytes for array in outputs.values())
    return json_response(await offload.run(size, codec.encode_outputs, outputs, parsed.fmt))


async def classify(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    name, examples = await _examples(request, services)
    reply = await verbs.classify(services, binding, info, name, examples)
    return json_response(codec_examples.encode_classify_response(reply))


async def regress(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    name, examples = await _examples(request, services)
    reply = await verbs.regress(services, binding, info, name, examples)
    return json_response(codec_examples.encode_regress_response(reply))


API: dict[str, Handler] = {
    "status": status,
    "metadata": metadata,
    "predict": predict,
    "classify": classify,
    "regress": regress,
}


@dataclass(slots=True)
class _Parsed:
    """A parsed predict body, handed from the parse step to the conversion step, which empties it.

    The document of a hostile body can hold a million objects, and freeing them takes as long as
    building them. Emptied on the conversion thread, they are freed there, not on the event loop.
    """

    doc: dict[str, Any]
    signature_name: str
    raw: bytes | None  # the body, to scan for true/false if the signature needs it; None: cannot hold them
    fmt: codec.Format = field(default="row")  # set by the conversion


def _parse_predict(raw: bytes, max_depth: int) -> _Parsed:
    with request_body.decoding():
        # Large all-number bodies skip the nested lists; the exact path decides everything else.
        fast = fastjson.parse_predict(raw, max_depth=max_depth)
        if fast is not None:
            return _Parsed(fast, codec.signature_name(fast), None)
        doc = jsonio.parse_object(raw, max_depth=max_depth)
        return _Parsed(doc, codec.signature_name(doc), raw)


def _tensors(parsed: _Parsed, limits: codec.Limits, sig: messages.SignatureDef) -> dict[str, codec.Tensor]:
    doc, parsed.doc = parsed.doc, {}
    raw = parsed.raw
    bools = raw is not None and codec.bools_need_scan(sig) and codec.bools_possible(raw)
    with request_body.decoding():
        parsed.fmt, tensors = codec.decode_predict_inputs(doc, sig, parsed.signature_name, limits, bools_possible=bools)
    return tensors


async def _examples(request: web.Request, services: Services) -> tuple[str, messages.Examples]:
    raw = await read_body(request, services)
    return await offload.run(len(raw), _parse_examples, raw, services.settings.server.max_json_depth)


def _parse_examples(raw: bytes, max_depth: int) -> tuple[str, messages.Examples]:
    """The signature name and the tf.Examples of a classify or regress body (spec §6.1)."""
    with request_body.decoding():
        doc = jsonio.parse_object(raw, max_depth=max_depth)
        return codec.signature_name(doc), codec_examples.decode_input(doc)
