"""Dispatch: URL -> target -> auth -> binding -> the front's handler, or one of the gateway's pages.

Auth is checked here, on the target the URL resolved to, so that an encoded path cannot reach
a route under another route's policy.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.pipeline.services import Services
from gateway.routing import routes
from gateway.routing.binding import bind, client_timeout
from gateway.web import oip_rest, pages, rest_v1, selfdoc, status_page
from gateway.web.keys import OIP_MODEL, SPECIALS
from gateway.web.middleware import request_info, request_services

PAGES = {
    "healthz": pages.healthz,
    "readyz": pages.readyz,
    "metrics": pages.metrics_page,
    "openapi": selfdoc.document,
    "docs": selfdoc.docs,
    **status_page.HANDLERS,
}


def special_paths(settings: Settings) -> dict[str, routes.Endpoint]:
    """The gateway's own pages by path: health, readiness, the status page, the configured metrics
    paths, and the self-description (``/openapi.json``, ``/docs`` and its assets)."""
    specials: dict[str, routes.Endpoint] = {
        "/healthz": "healthz",
        "/readyz": "readyz",
        **status_page.PATHS,
        **selfdoc.paths(),
    }
    if settings.metrics.enabled:
        specials.update({path: "metrics" for path in settings.metrics.paths})
    return specials


async def dispatch(request: web.Request) -> web.StreamResponse:
    services = request_services(request)
    info = request_info(request)
    try:
        target = routes.resolve(request.method, request.raw_path, request.app[SPECIALS])
    except GatewayError:
        services.authenticator.admit(None, request.headers)
        raise
    if isinstance(target, routes.Special):
        info.route = target.endpoint
        services.authenticator.admit(target, request.headers)
        return await PAGES[target.endpoint](request)
    info.route, info.verb = target.route, target.kind
    services.authenticator.admit(target, request.headers)
    in_flight = services.metrics.in_flight_by_route[target.route]
    in_flight.inc()
    try:
        if target.protocol == "v2":
            return await _v2(request, services, target)
        headers = request.headers
        binding = bind(services.settings, target, client_timeout(headers), headers, services.rng)
        info.bound(binding)
        return await rest_v1.API[target.kind](request, services, binding, info)
    finally:
        in_flight.dec()


async def _v2(request: web.Request, services: Services, target: routes.Target) -> web.StreamResponse:
    """The Open Inference Protocol's routes: server-wide ones need no binding."""
    info = request_info(request)
    info.compress = False  # only a 200 infer reply may be gzipped (docs/spec/open-inference-protocol.md §6)
    if target.server_level:
        return await oip_rest.SERVER[target.kind](request, services)
    headers = request.headers
    binding = bind(services.settings, target, client_timeout(headers), headers, services.rng)
    info.bound(binding)
    request[OIP_MODEL] = target.model or target.name
    return await oip_rest.API[target.kind](request, services, binding, info)
