"""The per-call policy every gRPC service on ``server.grpc_port`` shares, as REST's middleware does.

One call, in order: pin the current ``Services`` generation (a reload never changes settings or
backends under a call in flight, and a drain waits for it); read the metadata (``authorization``
and ``x-api-key`` for the same ``Authenticator`` REST uses, ``x-deployment-id``, ``x-request-id``,
echoed in the trailing metadata); count the call in ``tfs_gateway_http_requests_in_flight`` under
its route; run the service's handler; turn a ``GatewayError`` into its ``grpc_status`` with its
message (REST's ``error`` text) and anything else into INTERNAL, logged; then record the
``tfs_gateway_http_*`` series (``code`` = the HTTP status REST would answer, ``499`` for a call the
client gave up on) and the access-log line (``method`` ``POST``, ``path`` the gRPC method path).

The client's deadline reaches the backend as ``Call.client_seconds``, which ``bind`` caps at
``timeouts.max_client_seconds``. Overload is shed where REST sheds it, in the backend's limiter
(``backends.<name>.max_concurrency`` / ``max_queue``): an ``Overloaded`` error, UNAVAILABLE here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from multidict import CIMultiDict

from gateway.errors import GatewayError, InternalError, error_reason
from gateway.ops import accesslog
from gateway.pipeline.services import RequestInfo, Services, ServicesRef
from gateway.routing import routes
from gateway.routing.binding import Binding, bind

log = logging.getLogger("tfs_gateway")

DEPLOYMENT_KEY = "x-deployment-id"
REQUEST_ID_KEY = "x-request-id"
_MAX_REQUEST_ID = 128
_MIN_SECONDS = 1e-3  # a call whose deadline has (nearly) passed still gets a bounded, failing attempt
_CANCELLED = 499  # what REST logs for a request the client gave up on

Context = grpc.aio.ServicerContext[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its path (``/package.Service/Name``), and the metrics route and verb it counts under."""

    service: str
    name: str
    route: str
    kind: str

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"


@dataclass(slots=True)
class Call:
    """What a handler gets besides the request bytes: the pinned services and the call's metadata."""

    services: Services
    info: RequestInfo
    headers: CIMultiDict[str]
    client_seconds: float | None

    @property
    def deployment(self) -> str | None:
        """The deployment ``x-deployment-id`` names, if any (OIP §9; TF Serving's API alike)."""
        return self.headers.get(DEPLOYMENT_KEY)

    def admit(self, target: routes.Target) -> None:
        """Auth, with the policy of what the call addresses (401/403 -> UNAUTHENTICATED/PERMISSION_DENIED)."""
        self.services.authenticator.admit(target, self.headers)

    def bind(self, target: routes.Target) -> Binding:
        """The backend, model, version and deadline for ``target``, recorded for metrics and the log."""
        binding = bind(self.services.settings, target, self.client_seconds, self.headers, self.services.rng)
        self.info.bound(binding)
        return binding


Handler = Callable[[Call, bytes], Awaitable[bytes]]


def unary(ref: ServicesRef, method: Method, handler: Handler) -> grpc.RpcMethodHandler[bytes, bytes]:
    """A bytes-in, bytes-out method handler running ``handler`` under the shared policy.

    No (de)serialisers: a handler parses its own request, so bytes that are not the message
    get INVALID_ARGUMENT from the codec rather than gRPC's own INTERNAL.
    """

    async def handle(request: bytes, context: Context) -> bytes:
        return await serve(ref, method, handler, request, context)

    return grpc.unary_unary_rpc_method_handler(handle)


async def serve(ref: ServicesRef, method: Method, handler: Handler, request: bytes, context: Context) -> bytes:
    """One call: the reply bytes, or an abort with the error's status and message."""
    with ref.pinned() as services:
        headers = _metadata(context)
        info = RequestInfo(request_id=_request_id(headers), route=method.route, verb=method.kind)
        trailer = ((REQUEST_ID_KEY, info.request_id),)
        in_flight = services.metrics.in_flight_by_route[method.route]
        in_flight.inc()
        start = time.perf_counter()
        status = _CANCELLED  # stays so when a cancellation escapes below
        reply = b""
        try:
            reply = await handler(Call(services, info, headers, _client_seconds(context)), request)
            status = 200
        except GatewayError as exc:
            status = exc.http_status
            info.extra["reason"] = error_reason(exc)
            await context.abort(exc.grpc_status, exc.message, trailer)
        except Exception:
            log.exception("unhandled error on gRPC %s", method.path)
            status = InternalError.status
            info.extra["reason"] = InternalError.reason
            await context.abort(grpc.StatusCode.INTERNAL, "Internal error", trailer)
        finally:
            in_flight.dec()
            _record(services, method, info, status, (len(request), len(reply)), time.perf_counter() - start)
        context.set_trailing_metadata(trailer)
        return reply


def _metadata(context: Context) -> CIMultiDict[str]:
    # Binary (-bin) entries carry bytes; no policy reads them.
    return CIMultiDict((key, value) for key, value in context.invocation_metadata() or () if isinstance(value, str))


def _request_id(headers: CIMultiDict[str]) -> str:
    given = headers.get(REQUEST_ID_KEY, "")
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return os.urandom(16).hex()


def _client_seconds(context: Context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(remaining, _MIN_SECONDS)


def _record(
    services: Services, method: Method, info: RequestInfo, status: int, sizes: tuple[int, int], elapsed: float
) -> None:
    services.observe(info, status, elapsed, *sizes)
    if not services.settings.server.access_log:
        return
    # Every gRPC call is an HTTP/2 POST to its method path.
    accesslog.write(info.access_record("POST", method.path, status, elapsed, *sizes))
