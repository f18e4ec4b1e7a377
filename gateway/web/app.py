"""Wiring only: the dispatcher, middleware order, typed app keys, and the backends' lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.backend import readiness as health
from gateway.backend.client import Backend
from gateway.codec import predict as codec
from gateway.config.settings import Settings
from gateway.errors import GatewayError
from gateway.ops import gctune, memtrim
from gateway.ops.metrics import Metrics
from gateway.pipeline.services import Services, ServicesRef
from gateway.pipeline.signatures import SignatureCache
from gateway.routing import routes
from gateway.routing.binding import bind, client_timeout
from gateway.web import pages as web_metrics
from gateway.web import rest_v1 as handlers
from gateway.web.cors import Cors
from gateway.web.keys import SERVICES
from gateway.web.middleware import EDGE, Edge, gateway_middleware, request_info, request_services

log = logging.getLogger("tfs_gateway")


def special_paths(settings: Settings) -> dict[str, routes.Endpoint]:
    specials: dict[str, routes.Endpoint] = {"/healthz": "healthz", "/readyz": "readyz"}
    if settings.metrics.enabled:
        specials.update({path: "metrics" for path in settings.metrics.paths})
    return specials


def known_models(settings: Settings) -> set[str]:
    """Metric label values allowed for ``model``: what config names, so cardinality stays bounded."""
    served = {deployment.model for deployment in settings.deployments.values()}
    return set(settings.models.overrides) | set(settings.deployments) | served


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
        return await SPECIAL_HANDLERS[target.endpoint](request)
    info.route, info.verb = target.route, target.kind
    services.authenticator.admit(target, request.headers)
    with services.metrics.in_flight.labels(target.route).track_inprogress():
        binding = bind(services.settings, target, client_timeout(request.headers))
        info.bound(binding)
        return await handlers.API[target.kind](request, services, binding, info)


SPECIAL_HANDLERS = {"healthz": health.healthz, "readyz": health.readyz, "metrics": web_metrics.metrics_page}
SPECIALS = web.AppKey("tfs_gateway_specials", dict)


def build_services(settings: Settings, metrics: Metrics) -> Services:
    backends = {name: Backend.from_settings(name, backend, metrics) for name, backend in settings.backends.items()}
    cache = SignatureCache(
        ttl_seconds=settings.signature_cache.ttl_seconds,
        max_entries=settings.signature_cache.max_entries,
        metrics=metrics,
    )
    return Services(settings, metrics, backends, cache, codec.Limits(settings.server.max_tensor_elements))


def create_app(
    settings: Settings, *, registry: CollectorRegistry | None = None, probes: bool = False
) -> web.Application:
    """The gateway app. ``probes=True`` starts the backend probes behind ``/readyz`` and ``backend_up``
    (the process runner does); they are off by default so that a scripted test backend sees only the
    calls its test makes, and ``/readyz`` then reports the backends as not probed."""
    specials = special_paths(settings)
    app = web.Application(
        client_max_size=settings.server.max_request_bytes,
        middlewares=[gateway_middleware],
        handler_args={
            "max_line_size": settings.server.max_header_bytes,
            "max_field_size": settings.server.max_header_bytes,
            # body.read_body inflates request bodies itself, bounded and streaming.
            "auto_decompress": False,
        },
    )
    app[SPECIALS] = specials
    app[EDGE] = Edge(
        cors=Cors(settings.cors) if settings.cors.enabled else None,
        gzip=settings.server.gzip_responses,
        trimmer=memtrim.Trimmer(),
    )
    app[health.HEALTH] = health.Health()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry, known_models(settings), settings.backends)

    async def backends_ctx(app: web.Application) -> AsyncIterator[None]:
        # grpc.aio channels belong to the running loop, so they open here, not at build time.
        app[SERVICES] = ServicesRef(build_services(settings, metrics))
        gctune.freeze_startup_objects()
        yield
        await app[SERVICES].close()

    app.cleanup_ctx.append(backends_ctx)
    if probes:
        app.cleanup_ctx.append(health.probes_ctx)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def reload_services(app: web.Application, settings: Settings) -> None:
    """Serve new requests with ``settings``; requests in flight finish on the old backends."""
    ref = app[SERVICES]
    metrics = ref.current.metrics
    metrics.set_known_models(known_models(settings))
    ref.swap(build_services(settings, metrics))
    app[health.HEALTH].watch(ref.current)


def run(settings: Settings, reload: Callable[[], Settings] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; ``reload`` re-reads the configuration on SIGHUP."""
    from gateway.process.serve import run as run_process  # it imports this module: a top-level import is circular

    return run_process(settings, reload)
