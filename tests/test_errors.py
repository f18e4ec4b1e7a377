"""One gRPC->HTTP table (spec 7.2), one renderer, and grpc errors translated at the boundary."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest

from gateway import backend
from gateway.errors import (
    GRPC_CODE_NAMES,
    GRPC_TO_HTTP,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    InvalidArgument,
    http_status_for,
    render_error,
)

SPEC_7_2 = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_every_grpc_status_code_is_mapped_as_the_spec_says(code: grpc.StatusCode) -> None:
    number = code.value[0]
    assert number in GRPC_TO_HTTP
    assert GRPC_CODE_NAMES[number] == code.name
    assert http_status_for(number) == SPEC_7_2[code.name]


def test_unknown_codes_are_500() -> None:
    assert http_status_for(99) == 500


class FakeRpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c != grpc.StatusCode.OK], ids=lambda c: c.name)
def test_translate_covers_every_code(code: grpc.StatusCode) -> None:
    err = backend.translate(FakeRpcError(code, "model says no"), "default")
    assert isinstance(err, BackendError)
    assert err.http_status == SPEC_7_2[code.name]
    if code not in (grpc.StatusCode.DEADLINE_EXCEEDED,):
        assert err.message == "model says no"


def test_transport_failures_hide_peer_addresses() -> None:
    raw = "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.1.2.3:8500: Connection refused"
    err = backend.translate(FakeRpcError(grpc.StatusCode.UNAVAILABLE, raw), "default")
    assert isinstance(err, BackendUnavailable)
    assert err.http_status == 503
    assert "10.1.2.3" not in err.message


def test_deadline_is_504() -> None:
    err = backend.translate(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), "b")
    assert isinstance(err, BackendTimeout)
    assert err.http_status == 504


def test_envelope_keeps_error_first_and_adds_keys() -> None:
    body: dict[str, Any] = orjson.loads(
        render_error(InvalidArgument("bad", details={"input": "x", "index": 3}), "rid-1")
    )
    assert next(iter(body)) == "error"
    assert body == {
        "error": "bad",
        "code": 400,
        "reason": "invalid_argument",
        "request_id": "rid-1",
        "details": {"input": "x", "index": 3},
    }


def test_backend_error_reason_names_the_grpc_code() -> None:
    body = orjson.loads(render_error(BackendError("Servable not found", grpc_code=5)))
    assert body["reason"] == "backend_not_found"
    assert body["code"] == 404
