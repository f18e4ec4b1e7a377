"""The gateway's own pages: ``/healthz``, ``/readyz`` and the metrics page.

``/healthz`` answers 200 while the process serves. ``/readyz`` reports the readiness checks
(``gateway/backend/readiness.py``): 200 when all pass, else 503 with each check and why.

Metrics are served on the main port and optionally on their own (``server.metrics_port``). A
separate port lets a NetworkPolicy expose metrics to Prometheus only; that app serves the
configured metrics paths and the status page (``web/status_page.py``) and nothing else (404
elsewhere), and records no request metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import orjson
from aiohttp import web

from gateway.errors import GatewayError, render_error
from gateway.ops.metrics import Metrics, exposition
from gateway.pipeline.overview import Board
from gateway.pipeline.services import ServicesRef
from gateway.routing import routes
from gateway.web import status_page
from gateway.web.keys import HEALTH, SERVICES, STATUS
from gateway.web.responses import json_response
from gateway.web.status_page import Handler


async def probes_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: probe from startup on; runs after the services are built, stops before they close."""
    services = app[SERVICES].current
    app[HEALTH].watch(services.backends, services.settings, services.metrics)
    yield
    await app[HEALTH].stop()


def _json(document: Mapping[str, object], status: int) -> web.Response:
    return json_response(orjson.dumps(document), status)


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"}, 200)


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[HEALTH].checks()
    ready = all(check.ok for check in checks.values())
    document = {
        "status": "ready" if ready else "not ready",
        "checks": {name: check.to_json() for name, check in checks.items()},
    }
    return _json(document, 200 if ready else 503)


_MAIN = web.AppKey("tfs_gateway_main_services", ServicesRef)


def _page(metrics: Metrics) -> web.Response:
    body, content_type = exposition(metrics)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def metrics_page(request: web.Request) -> web.Response:
    return _page(request.app[SERVICES].current.metrics)


def _admitted(endpoint: routes.Endpoint, handler: Handler) -> Handler:
    """``handler`` behind the main app's current auth policy for ``endpoint``: a reload's applies too."""

    async def admitted(request: web.Request) -> web.StreamResponse:
        try:
            request.app[_MAIN].current.authenticator.admit(routes.Special(endpoint), request.headers)
        except GatewayError as exc:
            return json_response(render_error(exc), exc.http_status, exc.headers)
        return await handler(request)

    return admitted


async def _metrics_only_page(request: web.Request) -> web.Response:
    return _page(request.app[_MAIN].current.metrics)


def metrics_app(services: ServicesRef, paths: tuple[str, ...], board: Board | None = None) -> web.Application:
    """The ``server.metrics_port`` app: the metrics paths, and the status page when ``board`` is
    given, under ``auth.protect_metrics`` like the main port's, reading the main app's services so
    reloads reach it."""
    app = web.Application()
    app[_MAIN] = services
    for path in paths:
        app.router.add_get(path, _admitted("metrics", _metrics_only_page))
    if board is not None:
        app[STATUS] = board
        for path, endpoint in status_page.PATHS.items():
            app.router.add_get(path, _admitted(endpoint, status_page.HANDLERS[endpoint]))
    return app
