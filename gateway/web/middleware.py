"""The one middleware around every request. In order, it:

1. pins the request to the current ``Services`` generation, so a config reload never changes
   settings or backends under a request in flight;
2. takes ``X-Request-ID`` from the client or makes one, and echoes it; adds ``X-Model-Version``
   when a model call's reply said which version answered (``RequestInfo.served_version``);
3. answers CORS preflights and adds CORS headers to every answer (when CORS is on);
4. turns every exception into an answer: ``GatewayError``s render through the one renderer;
   aiohttp's own errors are translated first (``web.HTTPException``s keep their status, the
   body-reading ones, ``RequestPayloadError`` and ``http_exceptions.*``, become 4xx through
   ``body.from_aiohttp``, the same mapping ``body.read_body`` uses); anything unexpected is
   logged with its traceback and answered with a bare 500 envelope, never the traceback.
   Decoder exceptions (``ValueError`` and friends) are *not* mapped here: only inside
   ``body.decoding()`` do they mean a bad body, and anywhere else they are bugs;
5. gzips large answers for clients that accept it;
6. records metrics and the access-log line;
7. returns freed heap to the OS after large requests (``memtrim``).

These used to be seven stacked middlewares; each layer is a coroutine frame and a wrapper on
every request, about a tenth of a small predict's CPU, so they run here as plain calls.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from aiohttp import http_exceptions, web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

from gateway.errors import (
    GatewayError,
    HttpError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    render_error,
)
from gateway.ops import accesslog, memtrim
from gateway.pipeline.services import RequestInfo, Services
from gateway.web import body, compression, cors
from gateway.web.cors import Cors
from gateway.web.keys import HEALTH, INFO, PINNED, SERVICES
from gateway.web.responses import json_response

log = logging.getLogger("tfs_gateway")

REQUEST_ID_HEADER = "X-Request-ID"
MODEL_VERSION_HEADER = "X-Model-Version"  # the version ModelServer's reply says answered
_MAX_REQUEST_ID = 128


def request_info(request: web.Request) -> RequestInfo:
    return request[INFO]


def request_services(request: web.Request) -> Services:
    """The settings, metrics and backends this request uses, whatever reloads happen meanwhile."""
    return request[PINNED]


@dataclass(frozen=True, slots=True)
class Edge:
    """The web-facing settings that are fixed for the app's life (a reload warns about them)."""

    cors: Cors | None
    gzip: bool
    trimmer: memtrim.Trimmer


EDGE = web.AppKey("tfs_gateway_edge", Edge)


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    edge = app[EDGE]
    with app[SERVICES].pinned() as services:
        request[PINNED] = services
        info = RequestInfo(request_id=_request_id(request))
        request[INFO] = info
        start = time.perf_counter()
        origin = request.headers.get("Origin") if edge.cors is not None else None
        preflight = origin is not None and cors.is_preflight(request)
        large = edge.trimmer.enter(request.content_length or 0)
        try:
            if preflight and edge.cors is not None and origin is not None:
                response: web.StreamResponse = cors.preflight(edge.cors, request, origin)
            else:
                response = await handler(request)
        except GatewayError as exc:
            response = error_response(exc, request)
        except web.HTTPException as exc:
            if 100 <= exc.status < 400:
                raise  # redirects and the like are answers, not errors
            response = error_response(_from_http_exception(exc), request)
        except (RequestPayloadError, http_exceptions.HttpProcessingError) as exc:
            response = error_response(body.from_aiohttp(exc), request)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.rel_url.path)
            response = error_response(InternalError("Internal error"), request)
        finally:
            if large:
                edge.trimmer.leave()
        response.headers[REQUEST_ID_HEADER] = info.request_id
        if info.served_version is not None:
            response.headers[MODEL_VERSION_HEADER] = str(info.served_version)
        if origin is not None and edge.cors is not None and not preflight:
            # A preflight carries its own allowances, and a refused one must carry none.
            edge.cors.decorate(response, origin)
        if edge.gzip and info.compress and isinstance(response, web.Response):
            compression.maybe_compress(request, response)
        observe(request, services, info, response, time.perf_counter() - start)
    if app[HEALTH].draining:
        response.force_close()  # keep-alive clients move to another replica instead of finding us gone
    return response


def _request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return os.urandom(16).hex()  # what uuid4().hex carries, without building a UUID


def _from_http_exception(exc: web.HTTPException) -> GatewayError:
    if not 400 <= exc.status < 600:
        # An abstract base (HTTPError, HTTPClientError...) has status -1: a bug, and no status line.
        log.error("HTTP exception without a valid status: %r", exc)
        return InternalError("Internal error")
    if exc.status == 404:
        return NotFound(f"Not found: {exc.reason}")
    if exc.status == 405:
        return MethodNotAllowed(exc.reason)
    if exc.status == 413:
        return PayloadTooLarge("Request body is too large")
    return HttpError(exc.reason or "HTTP error", status=exc.status)


def error_response(exc: GatewayError, request: web.Request) -> web.Response:
    info = request.get(INFO)
    request_id = info.request_id if info is not None else None
    response = json_response(render_error(exc, request_id), exc.http_status, exc.headers)
    if info is not None:
        info.extra["reason"] = exc.reason
    return response


def observe(
    request: web.Request, services: Services, info: RequestInfo, response: web.StreamResponse, elapsed: float
) -> None:
    bytes_in, bytes_out = request.content_length or 0, _bytes_out(response)
    services.observe(info, response.status, elapsed, bytes_in, bytes_out)
    if services.settings.server.access_log:
        write_access_line(request, info, response, elapsed, bytes_in, bytes_out)


def write_access_line(
    request: web.Request,
    info: RequestInfo,
    response: web.StreamResponse,
    elapsed: float,
    bytes_in: int,
    bytes_out: int,
) -> None:
    """The request's access-log line (``gateway.ops.accesslog``)."""
    accesslog.write(info.access_record(request.method, request.path, response.status, elapsed, bytes_in, bytes_out))


def _bytes_out(response: web.StreamResponse) -> int:
    # Not yet sent, so body_length is still 0 for a plain Response; its body length is known though.
    return response.body_length or response.content_length or 0
