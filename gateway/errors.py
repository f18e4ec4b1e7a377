"""Every error the gateway can answer with, the one gRPC->HTTP table, and the one renderer.

::

    GatewayError                    status, reason token, message, details, headers
    ├── MalformedRequest     400    URL grammar (TF Serving: "Malformed request: GET /v1/foo")
    ├── InvalidArgument      400    JSON body and tensor conversion problems
    │   ├── BinaryFraming    400    OIP binary tensor data that does not add up
    │   └── OutputNotUtf8    400    an OIP BYTES output JSON cannot carry (binary_data needed)
    ├── Unimplemented        501    dtypes the REST API cannot express (columnar format)
    ├── NotFound             404    unknown path or deployment
    ├── MethodNotAllowed     405
    ├── Unauthorized         401    (carries WWW-Authenticate)
    ├── Forbidden            403
    ├── PayloadTooLarge      413    body over server.max_request_bytes, raw or inflated
    ├── UnsupportedMediaType 415    a Content-Encoding the gateway cannot undo
    ├── RequestTimeout       408    the body arrived too slowly
    ├── ClientClosedRequest  499    the client hung up mid-body (nginx's status; nobody reads it)
    ├── HttpError            4xx/5xx  an aiohttp HTTP error with no counterpart here, its status kept
    ├── InternalError        500    a bug: logged with its traceback, answered without it
    ├── Overloaded           503    shed load (carries Retry-After)
    ├── NotReady             503    OIP health and model readiness that fail (details say why)
    └── BackendError         the backend's gRPC status, mapped by ``http_status_for``
        ├── BadGateway           502  a reply that does not parse (INTERNAL towards gRPC clients)
        ├── BackendUnavailable   503  cannot reach the backend
        │   └── CircuitOpen      503  failing fast while the backend is down (carries Retry-After)
        └── BackendTimeout       504  the deadline ran out

Every error knows its ``grpc.StatusCode`` too (``grpc_status``), for the gRPC fronts; the table
below is the one place the two numbering schemes meet. This module imports grpc for the
``StatusCode`` enum alone: nothing here opens channels or makes calls.

The envelope keeps TF Serving's ``{"error": msg}`` with ``error`` first; ``code``,
``reason``, ``request_id`` and ``details`` are additive keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import grpc
import orjson

# grpc.StatusCode -> HTTP status, as TF Serving's http_server.cc maps them (spec §7.2).
# tests/test_errors.py checks that every StatusCode is here.
GRPC_TO_HTTP: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_BY_NUMBER: Mapping[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """The StatusCode for a wire number (TF's error::Code uses the same numbers); UNKNOWN if none."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def http_status_for(code: grpc.StatusCode) -> int:
    return GRPC_TO_HTTP.get(code, 500)


class GatewayError(Exception):
    """An error with everything needed to answer it: status, stable reason token, message."""

    status: ClassVar[int] = 500
    reason: ClassVar[str] = "internal"
    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN  # what a gRPC front answers

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: Mapping[str, Any] = details or {}
        self.headers: Mapping[str, str] = headers or {}

    @property
    def http_status(self) -> int:
        return self.status


class MalformedRequest(GatewayError):
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT
    status = 400
    reason = "malformed_request"


class InvalidArgument(GatewayError):
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT
    status = 400
    reason = "invalid_argument"


class BinaryFraming(InvalidArgument):
    """The Open Inference Protocol's binary tensor data does not frame (spec OIP §6)."""

    reason = "binary_framing"


class OutputNotUtf8(InvalidArgument):
    """A BYTES output that JSON text cannot carry; the client must ask for binary_data (OIP §4)."""

    reason = "output_not_utf8"


class Unimplemented(GatewayError):
    grpc_status = grpc.StatusCode.UNIMPLEMENTED
    status = 501
    reason = "unimplemented"


class NotFound(GatewayError):
    grpc_status = grpc.StatusCode.NOT_FOUND
    status = 404
    reason = "not_found"


class MethodNotAllowed(GatewayError):
    grpc_status = grpc.StatusCode.UNIMPLEMENTED
    status = 405
    reason = "method_not_allowed"


class Unauthorized(GatewayError):
    grpc_status = grpc.StatusCode.UNAUTHENTICATED
    status = 401
    reason = "unauthenticated"


class Forbidden(GatewayError):
    grpc_status = grpc.StatusCode.PERMISSION_DENIED
    status = 403
    reason = "permission_denied"


class PayloadTooLarge(GatewayError):
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED
    status = 413
    reason = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    """A request body in a coding the gateway cannot undo (carries Accept-Encoding, RFC 7694)."""

    grpc_status = grpc.StatusCode.UNIMPLEMENTED
    status = 415
    reason = "unsupported_media_type"


class ClientClosedRequest(GatewayError):
    grpc_status = grpc.StatusCode.CANCELLED
    status = 499
    reason = "client_closed_request"


class HttpError(GatewayError):
    """An aiohttp HTTP error with no gateway counterpart, keeping its status."""

    reason = "http_error"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self._status = status

    @property
    def http_status(self) -> int:
        return self._status


class RequestTimeout(GatewayError):
    """The client sent its body too slowly (``server.client_read_timeout_seconds``)."""

    grpc_status = grpc.StatusCode.DEADLINE_EXCEEDED
    status = 408
    reason = "request_timeout"


class Overloaded(GatewayError):
    grpc_status = grpc.StatusCode.UNAVAILABLE
    status = 503
    reason = "overloaded"


class NotReady(GatewayError):
    """The gateway, or a model behind it, is not ready to serve (OIP health and model ready)."""

    grpc_status = grpc.StatusCode.UNAVAILABLE
    status = 503
    reason = "not_ready"


class InternalError(GatewayError):
    grpc_status = grpc.StatusCode.INTERNAL
    status = 500
    reason = "internal"


class BackendError(GatewayError):
    """A non-OK gRPC status from a backend; the backend's message passes through."""

    reason = "backend_error"

    def __init__(self, message: str, *, grpc_code: grpc.StatusCode, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.grpc_code = grpc_code

    @property
    def http_status(self) -> int:
        return http_status_for(self.grpc_code)

    @property
    def grpc_code_name(self) -> str:
        return str(self.grpc_code.name)

    @property
    def grpc_status(self) -> grpc.StatusCode:  # type: ignore[override]  # per instance: the backend's own
        return self.grpc_code


class BadGateway(BackendError):
    """The backend answered, but not with a message we can read: 502 here, INTERNAL to gRPC clients."""

    reason = "bad_backend_response"

    def __init__(self, message: str) -> None:
        super().__init__(message, grpc_code=grpc.StatusCode.INTERNAL)

    @property
    def http_status(self) -> int:
        return 502


class BackendUnavailable(BackendError):
    reason = "backend_unavailable"

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, grpc_code=grpc.StatusCode.UNAVAILABLE, details=details)


class CircuitOpen(BackendUnavailable):
    """Failing fast: the backend failed repeatedly and has not been seen back yet."""

    reason = "circuit_open"

    def __init__(self, backend: str, retry_after: float) -> None:
        super().__init__(f"Backend {backend} is unavailable", details={"backend": backend})
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}


class BackendTimeout(BackendError):
    reason = "deadline_exceeded"

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, grpc_code=grpc.StatusCode.DEADLINE_EXCEEDED, details=details)


def error_reason(err: GatewayError) -> str:
    """The stable token for logs and the envelope's ``reason`` key."""
    if type(err) is BackendError:
        return "backend_" + err.grpc_code_name.lower()
    return err.reason


def render_error(err: GatewayError, request_id: str | None = None) -> bytes:
    """The one place that writes an error body."""
    body: dict[str, Any] = {"error": err.message, "code": err.http_status, "reason": error_reason(err)}
    if request_id:
        body["request_id"] = request_id
    if err.details:
        body["details"] = dict(err.details)
    try:
        return orjson.dumps(body)
    except TypeError:
        # A detail orjson cannot write (an integer past 64 bits, say a shape's element count): the
        # error must still be answered with its envelope, so the exact stdlib writer takes it.
        return json.dumps(body, default=str, ensure_ascii=False, separators=(",", ":")).encode()
