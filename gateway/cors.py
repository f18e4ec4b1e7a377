"""CORS for browser clients: configured origins, methods and headers; off by default.

A preflight is an ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``. It is
answered here, before auth (browsers never send credentials on a preflight), with 204 and
the allowances, or with a 403 envelope when the origin, method or a requested header is not
allowed. Other requests from an allowed origin get ``Access-Control-Allow-Origin`` on
every answer, errors included, so a browser can read the error envelope.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.config import CorsSettings
from gateway.errors import Forbidden
from gateway.middlewares import error_response


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


def _requested_headers(request: web.Request) -> list[str]:
    raw = request.headers.get("Access-Control-Request-Headers", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def preflight(cors: Cors, request: web.Request, origin: str, method: str) -> web.Response:
    problem = cors.preflight_problem(origin, method, _requested_headers(request))
    if problem is not None:
        return error_response(Forbidden(f"CORS preflight refused: {problem} not allowed"), request)
    return web.Response(status=204, headers=cors.preflight_headers(origin))


def middleware(settings: CorsSettings) -> Middleware | None:
    """The CORS middleware, or None while CORS is disabled."""
    if not settings.enabled:
        return None
    cors = Cors(settings)
    expose = ", ".join(settings.expose_headers)

    @web.middleware
    async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        method = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and method is not None:
            return preflight(cors, request, origin, method)
        response = await handler(request)
        if cors.origin_allowed(origin):
            response.headers.update(cors.allow_origin_headers(origin))
            if expose:
                response.headers["Access-Control-Expose-Headers"] = expose
        return response

    return cors_middleware
