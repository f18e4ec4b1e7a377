"""The one JSON response builder: every JSON body the gateway writes (answers, errors, health)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

JSON = "application/json"


def json_response(body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A response for JSON text that is already written (orjson bytes, or the error renderer's)."""
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)
