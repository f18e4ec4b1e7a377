"""CORS for browser clients: configured origins, methods and headers; off by default.

A preflight is an ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``. It is
answered here, before auth (browsers never send credentials on a preflight), with 204 and
the allowances, or with a 403 envelope when the origin, method or a requested header is not
allowed. Other requests from an allowed origin get ``Access-Control-Allow-Origin`` on
every answer, errors included, so a browser can read the error envelope.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config import CorsSettings
from gateway.errors import Forbidden


class Cors:
    """The allowances of one config, normalised once."""

    def __init__(self, settings: CorsSettings) -> None:
        self.settings = settings
        self.any_origin = "*" in settings.allow_origins
        self.origins = frozenset(settings.allow_origins)
        self.methods = frozenset(settings.allow_methods)
        self.headers = frozenset(h.lower() for h in settings.allow_headers)

    def origin_allowed(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    def allow_origin_headers(self, origin: str) -> dict[str, str]:
        # With a list of origins the answer depends on Origin, so caches must key on it.
        headers = {"Access-Control-Allow-Origin": "*" if self.any_origin else origin}
        if not self.any_origin:
            headers["Vary"] = "Origin"
        if self.settings.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def preflight_problem(self, origin: str, method: str, requested: list[str]) -> str | None:
        if not self.origin_allowed(origin):
            return "origin"
        if method not in self.methods:
            return "method"
        if any(header.lower() not in self.headers for header in requested):
            return "headers"
        return None

    def preflight_headers(self, origin: str) -> dict[str, str]:
        headers = self.allow_origin_headers(origin)
        headers["Access-Control-Allow-Methods"] = ", ".join(self.settings.allow_methods)
        headers["Access-Control-Allow-Headers"] = ", ".join(self.settings.allow_headers)
        headers["Access-Control-Max-Age"] = str(self.settings.max_age_seconds)
        return headers

    def decorate(self, response: web.StreamResponse, origin: str) -> None:
        """Allowances on an actual (non-preflight) answer, errors included."""
        if self.origin_allowed(origin):
            response.headers.update(self.allow_origin_headers(origin))
            if self.settings.expose_headers:
                response.headers["Access-Control-Expose-Headers"] = ", ".join(self.settings.expose_headers)


def is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def _requested_headers(request: web.Request) -> list[str]:
    raw = request.headers.get("Access-Control-Request-Headers", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def preflight(cors: Cors, request: web.Request, origin: str) -> web.Response:
    """204 with the allowances, or Forbidden (rendered as the 403 envelope)."""
    method = request.headers.get("Access-Control-Request-Method", "")
    problem = cors.preflight_problem(origin, method, _requested_headers(request))
    if problem is not None:
        raise Forbidden(f"CORS preflight refused: {problem} not allowed")
    return web.Response(status=204, headers=cors.preflight_headers(origin))
