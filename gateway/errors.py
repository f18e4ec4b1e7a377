"""Every error the gateway can answer with, the one gRPC->HTTP table, and the one renderer.

::

    GatewayError                    status, reason token, message, details, headers
    ├── MalformedRequest     400    URL grammar (TF Serving: "Malformed request: GET /v1/foo")
    ├── InvalidArgument      400    JSON body and tensor conversion problems
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
    ├── Overloaded           503    shed load (carries Retry-After)
    └── BackendError         the backend's gRPC status, mapped by ``http_status_for``
        ├── BackendUnavailable   503  cannot reach the backend
        └── BackendTimeout       504  the deadline ran out

The envelope keeps TF Serving's ``{"error": msg}`` with ``error`` first; ``code``,
``reason``, ``request_id`` and ``details`` are additive keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

# tensorflow.error.Code / grpc.StatusCode number -> HTTP status, as TF Serving's
# http_server.cc maps them (spec 7.2). Codes outside the table become 500.
GRPC_TO_HTTP: Mapping[int, int] = {
    0: 200,  # OK
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}

GRPC_CODE_NAMES: Mapping[int, str] = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


def http_status_for(grpc_code: int) -> int:
    return GRPC_TO_HTTP.get(grpc_code, 500)


class GatewayError(Exception):
    """An error with everything needed to answer it: status, stable reason token, message."""

    status: ClassVar[int] = 500
    reason: ClassVar[str] = "internal"

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
    status = 400
    reason = "malformed_request"


class InvalidArgument(GatewayError):
    status = 400
    reason = "invalid_argument"


class Unimplemented(GatewayError):
    status = 501
    reason = "unimplemented"


class NotFound(GatewayError):
    status = 404
    reason = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    reason = "method_not_allowed"


class Unauthorized(GatewayError):
    status = 401
    reason = "unauthenticated"


class Forbidden(GatewayError):
    status = 403
    reason = "permission_denied"


class PayloadTooLarge(GatewayError):
    status = 413
    reason = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    """A request body in a coding the gateway cannot undo (carries Accept-Encoding, RFC 7694)."""

    status = 415
    reason = "unsupported_media_type"


class ClientClosedRequest(GatewayError):
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

    status = 408
    reason = "request_timeout"


class Overloaded(GatewayError):
    status = 503
    reason = "overloaded"


class BackendError(GatewayError):
    """A non-OK gRPC status from a backend; the backend's message passes through."""

    reason = "backend_error"

    def __init__(self, message: str, *, grpc_code: int, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.grpc_code = grpc_code

    @property
    def http_status(self) -> int:
        return http_status_for(self.grpc_code)

    @property
    def grpc_code_name(self) -> str:
        return GRPC_CODE_NAMES.get(self.grpc_code, "UNKNOWN")


class BackendUnavailable(BackendError):
    reason = "backend_unavailable"

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, grpc_code=14, details=details)


class BackendTimeout(BackendError):
    reason = "deadline_exceeded"

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, grpc_code=4, details=details)


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
    return orjson.dumps(body)
