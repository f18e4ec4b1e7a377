"""One gRPC->HTTP table (spec 7.2), one renderer, and grpc errors translated at the boundary."""

from __future__ import annotations

import json
from typing import Any

import grpc
import orjson
import pytest

from gateway import errors
from gateway.backend import client as backend
from gateway.errors import (
    GRPC_TO_HTTP,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    InvalidArgument,
    http_status_for,
    render_error,
    status_code,
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
    assert code in GRPC_TO_HTTP
    assert http_status_for(code) == SPEC_7_2[code.name]
    assert status_code(code.value[0]) is code


def test_unknown_code_numbers_are_unknown_and_500() -> None:
    assert status_code(99) is grpc.StatusCode.UNKNOWN
    assert http_status_for(status_code(99)) == 500


def _error_classes() -> list[type[errors.GatewayError]]:
    found, todo = [], [errors.GatewayError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == "gateway.errors"]


def test_every_gateway_error_lives_in_errors_py_and_is_drawn_in_its_tree() -> None:
    import gateway  # noqa: F401  (every subpackage imported below registers its subclasses)
    from gateway.web import app  # noqa: F401

    for cls in _all_subclasses(errors.GatewayError):
        assert cls.__module__ == "gateway.errors" or cls.__module__.startswith("tests."), cls
    tree = errors.__doc__ or ""
    for cls in _error_classes():
        assert cls.__name__ in tree, f"{cls.__name__} is missing from the tree in errors.py's docstring"


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_has_a_grpc_status_for_the_grpc_fronts(cls: type[errors.GatewayError]) -> None:
    assert isinstance(cls.grpc_status, grpc.StatusCode | property)


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


def test_details_orjson_cannot_write_still_render() -> None:
    """Found by schemathesis: an OIP shape whose element count passes 64 bits made the renderer raise,
    and the client got aiohttp's bare text/plain 500 instead of the 400 envelope."""
    elements = 125592049816611904 * 92105028715479936
    body = json.loads(render_error(InvalidArgument("too many", details={"elements": elements}), "rid-2"))
    assert next(iter(body)) == "error"
    assert body["details"] == {"elements": elements} and body["code"] == 400


def test_backend_error_reason_names_the_grpc_code() -> None:
    body = orjson.loads(render_error(BackendError("Servable not found", grpc_code=grpc.StatusCode.NOT_FOUND)))
    assert body["reason"] == "backend_not_found"
    assert body["code"] == 404
