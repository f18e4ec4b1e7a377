"""A status-carrying exception, so deep helpers can fail with ModelServer's code and text."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """An error to send to the client as a gRPC status (code + message, nothing else)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def status_code_from_int(value: int) -> grpc.StatusCode:
    """tensorflow.error.Code and gRPC share numbering; unknown numbers become UNKNOWN."""
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN
