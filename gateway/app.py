"""Wiring only: the dispatcher, middleware order, typed app keys, and the backends' lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway import codec, handlers, routes
from gateway.backend import Backend
from gateway.binding import bind, client_timeout
from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.middlewares import error_middleware, observe_middleware, request_id_middleware, request_info
from gateway.services import Services
from gateway.signatures import SignatureCache
from gateway.web_keys import SERVICES

log = logging.getLogger("tfs_gateway")


def special_paths(settings: Settings) -> dict[str, routes.Endpoint]:
    specials: dict[str, routes.Endpoint] = {"/healthz": "healthz", "/readyz": "readyz"}
    if settings.metrics.enabled:
        specials.update({path: "metrics" for path in settings.metrics.paths})
    return specials


def known_models(settings: Settings) -> set[str]:
    """Metric label values allowed for ``model``: what config names, so cardinality stays bounded."""
    return set(settings.models.overrides) | set(settings.deployments)


async def dispatch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    info = request_info(request)
    target = routes.resolve(request.method, request.raw_path, request.app[SPECIALS])
    if isinstance(target, routes.Special):
        info.route = target.endpoint
        return await SPECIAL_HANDLERS[target.endpoint](request)
    info.route, info.verb = target.route, target.kind
    with services.metrics.in_flight.labels(target.route).track_inprogress():
        binding = bind(services.settings, target, client_timeout(request.headers))
        info.bound(binding)
        return await handlers.API[target.kind](request, services, binding, info)


async def healthz(request: web.Request) -> web.Response:
    return handlers.json_response(b'{"status":"ok"}')


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    down = sorted(name for name, backend in services.backends.items() if not backend.is_connected())
    if down:
        return handlers.json_response(b'{"status":"not ready","backends_down":%s}' % _names(down), status=503)
    return handlers.json_response(b'{"status":"ready"}')


def _names(names: list[str]) -> bytes:
    import orjson

    return orjson.dumps(names)


async def metrics_page(request: web.Request) -> web.Response:
    registry = request.app[SERVICES].metrics.registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


SPECIAL_HANDLERS = {"healthz": healthz, "readyz": readyz, "metrics": metrics_page}
SPECIALS = web.AppKey("tfs_gateway_specials", dict)


def build_services(settings: Settings, registry: CollectorRegistry) -> Services:
    metrics = Metrics(registry, known_models(settings))
    backends = {
        name: Backend(
            name,
            backend.targets,
            metrics=metrics,
            max_message_bytes=backend.max_message_bytes,
            load_balancing=backend.load_balancing,
        )
        for name, backend in settings.backends.items()
    }
    cache = SignatureCache(
        ttl_seconds=settings.signature_cache.ttl_seconds,
        max_entries=settings.signature_cache.max_entries,
        metrics=metrics,
    )
    return Services(settings, metrics, backends, cache, codec.Limits(settings.server.max_tensor_elements))


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> web.Application:
    app = web.Application(
        client_max_size=settings.server.max_request_bytes,
        middlewares=[request_id_middleware, observe_middleware, error_middleware],
        handler_args={
            "max_line_size": settings.server.max_header_bytes,
            "max_field_size": settings.server.max_header_bytes,
        },
    )
    app[SPECIALS] = special_paths(settings)
    registry = registry if registry is not None else CollectorRegistry()

    async def backends_ctx(app: web.Application) -> AsyncIterator[None]:
        # grpc.aio channels belong to the running loop, so they open here, not at build time.
        app[SERVICES] = build_services(settings, registry)
        yield
        await app[SERVICES].close()

    app.cleanup_ctx.append(backends_ctx)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def run(settings: Settings) -> int:
    logging.basicConfig(level=settings.server.log_level.upper())
    web.run_app(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_grace_seconds,
        access_log=None,
        keepalive_timeout=settings.server.keepalive_timeout_seconds,
        print=lambda *_: None,
    )
    return 0
