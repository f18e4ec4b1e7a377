"""Middlewares, outer to inner: request id -> observe (metrics) -> errors.

The errors middleware is where every exception becomes an answer: ``GatewayError``s
render through the one renderer, aiohttp's own HTTP errors are translated first, and
anything unexpected is logged with its traceback and answered with a bare 500
envelope, never the traceback.
"""

from __future__ import annotations

import logging
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import GatewayError, MethodNotAllowed, NotFound, PayloadTooLarge, render_error
from gateway.services import RequestInfo
from gateway.web_keys import INFO, SERVICES

log = logging.getLogger("tfs_gateway")

REQUEST_ID_HEADER = "X-Request-ID"
_MAX_REQUEST_ID = 128


class InternalError(GatewayError):
    status = 500
    reason = "internal"


def request_info(request: web.Request) -> RequestInfo:
    return request[INFO]


def _request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return uuid.uuid4().hex


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    info = RequestInfo(request_id=_request_id(request))
    request[INFO] = info
    response = await handler(request)
    response.headers[REQUEST_ID_HEADER] = info.request_id
    return response


def _from_http_exception(exc: web.HTTPException) -> GatewayError:
    if exc.status == 404:
        return NotFound(f"Not found: {exc.reason}")
    if exc.status == 405:
        return MethodNotAllowed(exc.reason)
    if exc.status == 413:
        return PayloadTooLarge("Request body is too large")
    err = GatewayError(exc.reason or "HTTP error")
    err.status = exc.status  # type: ignore[misc]
    return err


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return error_response(exc, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc), request)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.rel_url.path)
        return error_response(InternalError("Internal error"), request)


def error_response(exc: GatewayError, request: web.Request) -> web.Response:
    info = request.get(INFO)
    request_id = info.request_id if info is not None else None
    response = web.Response(body=render_error(exc, request_id), status=exc.http_status, content_type="application/json")
    response.headers.update(exc.headers)
    if info is not None:
        info.extra["reason"] = exc.reason
    return response


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[SERVICES].metrics
    info = request_info(request)
    start = time.perf_counter()
    response = await handler(request)
    elapsed = time.perf_counter() - start
    model = metrics.model_label(info.model)
    version = metrics.version_label(model, info.version, info.label) if model else ""
    code = str(response.status)
    metrics.requests.labels(info.route, model, version, info.verb, code).inc()
    metrics.latency.labels(info.route, model, version, info.verb, code).observe(elapsed)
    metrics.request_size.labels(info.route, info.verb).observe(request.content_length or 0)
    metrics.response_size.labels(info.route, info.verb).observe(response.body_length or 0)
    return response
