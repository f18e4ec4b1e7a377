"""One JSON line per request on the ``tfs_gateway.access`` logger, and the process's log setup.

A line looks like::

    {"time": "2025-01-31T12:00:00.123456+00:00", "request_id": "4f...", "method": "POST",
     "path": "/v1/models/half_plus_two:predict", "route": "v1_predict", "model": "half_plus_two",
     "version": "", "arm": "", "status": 200, "duration_seconds": 0.0042, "bytes_in": 27,
     "bytes_out": 31, "backend": "default", "grpc_code": "OK", "reason": null}

In a serving process (``configure_logging``) lines go straight to stdout as bytes, flushed once
per event-loop iteration: ``logging``'s record, caller lookup, formatter and lock cost more than
the rest of the line together, and one flush covers every request that finished in the same
iteration. Without ``configure_logging`` (an app built in-process, as in the tests) lines go
through the ``tfs_gateway.access`` logger.

Never logged: headers (credentials live there), the query string, request and response bodies.
Unlike the metrics' bounded labels, ``model`` is the name as requested and ``version`` the
version or ``label:<l>`` the request named (empty: latest); ``arm`` is the deployment's split arm
that served it (empty without a split).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from datetime import datetime, timezone
from typing import BinaryIO

import orjson

from gateway.config import ServerSettings

ACCESS_LOGGER = "tfs_gateway.access"
access_log = logging.getLogger(ACCESS_LOGGER)

_MAX_PATH = 512


_second: tuple[int, str] = (-1, "")


def _now() -> str:
    """``datetime.now(timezone.utc).isoformat()``, with the date and time formatted once a second."""
    global _second
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second = (whole, datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{int((now - whole) * 1e6):06d}+00:00"


def record(
    *,
    request_id: str,
    method: str,
    path: str,
    route: str,
    model: str,
    version: str,
    arm: str,
    status: int,
    duration_seconds: float,
    bytes_in: int,
    bytes_out: int,
    backend: str,
    grpc_code: str,
    reason: str | None,
) -> dict[str, object]:
    """The access-log document; keyword-only so a field can never land in the wrong slot."""
    return {
        "time": _now(),
        "request_id": request_id,
        "method": method,
        "path": path[:_MAX_PATH],
        "route": route,
        "model": model,
        "version": version,
        "arm": arm,
        "status": status,
        "duration_seconds": round(duration_seconds, 6),
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "backend": backend,
        "grpc_code": grpc_code,
        "reason": reason,
    }


def shadow_record(
    *,
    request_id: str,
    deployment: str,
    arm: str,
    primary_arm: str,
    result: str,
    rpc: str,
    reason: str,
    output: str | None = None,
    index: list[int] | None = None,
    primary: object = None,
    shadow: object = None,
    max_abs_diff: float | None = None,
) -> dict[str, object]:
    """The line for a shadow copy that disagreed or failed (``"event": "shadow"``; request lines
    have no ``event``). ``output``, ``index``, ``primary`` and ``shadow`` locate the first
    difference; for an error, ``reason`` is the error's message."""
    return {
        "time": _now(),
        "event": "shadow",
        "request_id": request_id,
        "deployment": deployment,
        "arm": arm,
        "primary_arm": primary_arm,
        "rpc": rpc,
        "result": result,
        "reason": reason,
        "output": output,
        "index": index,
        "primary": primary,
        "shadow": shadow,
        "max_abs_diff": max_abs_diff,
    }


class _Stdout:
    """Bytes lines to a binary stream, flushed once per loop iteration (at once without a loop)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._flush_pending = False

    def write(self, line: bytes) -> None:
        self._stream.write(line)
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._stream.flush()
            return
        self._flush_pending = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stdout must not fail requests
            self._stream.flush()


_direct: _Stdout | None = None


def write(document: dict[str, object]) -> None:
    if _direct is not None:
        _direct.write(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE))
    elif access_log.isEnabledFor(logging.INFO):
        access_log.info(orjson.dumps(document).decode())


class _Bare(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def configure_logging(server: ServerSettings, access_stream: BinaryIO | None = None) -> None:
    """Root logging at ``server.log_level`` on stderr; access lines, bare JSON, on stdout (or
    ``access_stream``, a binary stream: the bench sends them to /dev/null).

    The access log has its own switch (``server.access_log``, read per request so a reload can
    flip it) rather than following the log level, so ``log_level: warning`` quiets the gateway
    without losing the request record.
    """
    logging.basicConfig(
        level=server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    access_log.handlers.clear()
    access_log.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Bare())
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    global _direct
    _direct = _Stdout(sys.stdout.buffer if access_stream is None else access_stream)
