"""The app factory: middleware, typed app keys, the catch-all route to ``dispatch``, and the lifetime
of the backends (opened in a ``cleanup_ctx`` on the running loop, swapped whole on reload)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.backend.client import Backend
from gateway.backend.readiness import Health
from gateway.codec import predict as codec
from gateway.config import Settings
from gateway.ops import gctune, memtrim
from gateway.ops.metrics import Metrics
from gateway.pipeline.services import Services, ServicesRef
from gateway.pipeline.signatures import SignatureCache
from gateway.web import pages, selfdoc, status_page
from gateway.web.cors import Cors
from gateway.web.dispatch import dispatch, special_paths
from gateway.web.keys import HEALTH, SERVICES, SPECIALS
from gateway.web.middleware import EDGE, Edge, gateway_middleware

log = logging.getLogger("tfs_gateway")


def known_models(settings: Settings) -> set[str]:
    """Metric label values allowed for ``model``: what config names, so cardinality stays bounded."""
    served = {deployment.model for deployment in settings.deployments.values()}
    return set(settings.models.overrides) | set(settings.deployments) | served


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
    app[HEALTH] = Health()
    app[selfdoc.DOCUMENT_CACHE] = selfdoc.DocumentCache()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry, known_models(settings), settings.backends)

    async def backends_ctx(app: web.Application) -> AsyncIterator[None]:
        # grpc.aio channels belong to the running loop, so they open here, not at build time.
        app[SERVICES] = ServicesRef(build_services(settings, metrics))
        gctune.freeze_startup_objects()
        yield
        await app[SERVICES].close()

    app.cleanup_ctx.append(backends_ctx)
    app.cleanup_ctx.append(status_page.status_ctx)  # after the backends: it reads them
    if probes:
        app.cleanup_ctx.append(pages.probes_ctx)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def reload_services(app: web.Application, settings: Settings) -> None:
    """Serve new requests with ``settings``; requests in flight finish on the old backends."""
    ref = app[SERVICES]
    metrics = ref.current.metrics
    metrics.set_known_models(known_models(settings))
    ref.swap(build_services(settings, metrics))
    app[HEALTH].watch(ref.current.backends, settings, metrics)
