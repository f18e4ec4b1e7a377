"""The Open Inference Protocol (KServe V2) over REST as a front over the transport-free verbs.

``docs/spec/open-inference-protocol.md`` is the contract. Each handler adapts one route:

* ``/v2/health/live``: the process answers, so it is live; ``/v2/health/ready``: the checks
  behind ``/readyz``. 200 with ``{"live": true}`` / ``{"ready": true}``, else 503 (OIP §2).
* ``/v2``: the server's name, version and extensions; no backend call.
* ``.../models/{m}[/versions/{v}]/ready``: ``verbs.status``; ``.../models/{m}[/versions/{v}]``:
  ``verbs.metadata`` and ``verbs.status`` together.
* ``.../infer``: the body framed and parsed by ``codec/oip.py``, then ``verbs.predict`` with
  the codec's conversion and output selection, and the reply written by the codec.

Errors are raised as ``GatewayError``s and rendered by the one middleware, so V2 clients get the
same envelope and status mapping as v1 (``{"error": ...}`` first, ``application/json``). Only
200 infer replies may be gzipped: tritonclient's aio client reads other bodies undecoded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import orjson
from aiohttp import web

import gateway
from gateway.codec import messages, oip
from gateway.codec import meta as codec_meta
from gateway.codec.predict import Tensor
from gateway.errors import NotReady
from gateway.pipeline import offload, verbs
from gateway.pipeline.services import RequestInfo, Services
from gateway.routing.binding import Binding
from gateway.web import body as request_body
from gateway.web.keys import HEALTH, OIP_MODEL
from gateway.web.responses import json_response

ServerHandler = Callable[[web.Request, Services], Awaitable[web.Response]]
ModelHandler = Callable[[web.Request, Services, Binding, RequestInfo], Awaitable[web.Response]]
OCTET_STREAM = "application/octet-stream"


# --------------------------------------------------------------------------- server


async def live(request: web.Request, services: Services) -> web.Response:
    return json_response(b'{"live":true}')


async def ready(request: web.Request, services: Services) -> web.Response:
    _check_ready(request, None)
    return json_response(b'{"ready":true}')


async def server_metadata(request: web.Request, services: Services) -> web.Response:
    return json_response(oip.encode_server_metadata(gateway.__version__))


def _check_ready(request: web.Request, backend: str | None) -> None:
    """503 unless the gateway is ready: every check, or (for a deployment) its backend's and draining."""
    failed = {name: check.to_json() for name, check in request.app[HEALTH].failed(backend).items()}
    if failed:
        raise NotReady("The server is not ready", details={"checks": failed})


# --------------------------------------------------------------------------- deployment-scoped server routes


async def deployment_live(
    request: web.Request, services: Services, binding: Binding, info: RequestInfo
) -> web.Response:
    return await live(request, services)


async def deployment_ready(
    request: web.Request, services: Services, binding: Binding, info: RequestInfo
) -> web.Response:
    """Ready when the backend is and the deployment's model (pinned version) is AVAILABLE (OIP §9)."""
    _check_ready(request, binding.backend)
    await _model_available(services, binding, info)
    return json_response(b'{"ready":true}')


async def deployment_server_metadata(
    request: web.Request, services: Services, binding: Binding, info: RequestInfo
) -> web.Response:
    return await server_metadata(request, services)


# --------------------------------------------------------------------------- models


async def model_ready(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    await _model_available(services, binding, info)
    return json_response(orjson.dumps({"name": _addressed(binding, request), "ready": True}))


async def _model_available(services: Services, binding: Binding, info: RequestInfo) -> None:
    reply = await verbs.status(services, binding, info)
    reason = oip.unready_reason(reply, binding.version)
    if reason is not None:
        raise NotReady(f"Model {binding.model} is not ready: {reason}", details={"model": binding.model})


async def model_metadata(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    signature_name = binding.signature(request.query.get("signature_name", ""))
    meta, status = await asyncio.gather(verbs.metadata(services, binding, info), verbs.status(services, binding, info))
    sigs = codec_meta.signature_defs(meta)
    return json_response(oip.encode_model_metadata(_addressed(binding, request), signature_name, sigs, status))


async def infer(request: web.Request, services: Services, binding: Binding, info: RequestInfo) -> web.Response:
    timeout = services.settings.server.client_read_timeout_seconds
    raw = await request_body.read_body(request, limit=request.client_max_size, timeout=timeout)
    header = oip.header_length(request.headers.get(oip.HEADER_LENGTH))
    parsed = await offload.run(len(raw), _parse, raw, header, services.settings.server.max_json_depth)
    decode = partial(_tensors, parsed, services)
    select = partial(oip.select_outputs, parsed)
    outputs = await verbs.predict(services, binding, info, parsed.signature_name, decode, len(raw), select)
    size = sum(array.nbytes for array in outputs.values())
    name = _addressed(binding, request)
    reply = await offload.run(size, oip.encode_infer, parsed, name, info.served_version, outputs)
    info.compress = True  # a 200 infer reply: the one kind both clients decode
    if reply.header_length is None:
        return json_response(reply.body)
    headers = {oip.HEADER_LENGTH: str(reply.header_length)}
    return web.Response(body=reply.body, content_type=OCTET_STREAM, headers=headers)


def _parse(raw: bytes, header: int | None, max_depth: int) -> oip.InferRequest:
    with request_body.decoding():
        return oip.parse_infer(raw, header, max_depth=max_depth)


def _tensors(parsed: oip.InferRequest, services: Services, sig: messages.SignatureDef) -> dict[str, Tensor]:
    with request_body.decoding():
        return oip.decode_inputs(parsed, sig, services.limits)


def _addressed(binding: Binding, request: web.Request) -> str:
    """The model name as the URL gave it (the deployment form may name the deployment id)."""
    return request.get(OIP_MODEL) or binding.name


SERVER: dict[str, ServerHandler] = {"live": live, "ready": ready, "server_metadata": server_metadata}
API: dict[str, ModelHandler] = {
    "live": deployment_live,
    "ready": deployment_ready,
    "server_metadata": deployment_server_metadata,
    "model_ready": model_ready,
    "model_metadata": model_metadata,
    "infer": infer,
}
