"""The metrics page, on the main port and optionally on its own (``server.metrics_port``).

A separate port lets a NetworkPolicy expose metrics to Prometheus only; that app serves the
configured metrics paths and nothing else (404 elsewhere), and records no request metrics.
"""

from __future__ import annotations

from aiohttp import web

from gateway.ops.metrics import Metrics, exposition
from gateway.web.keys import SERVICES

_METRICS = web.AppKey("tfs_gateway_metrics_only", Metrics)


def _page(metrics: Metrics) -> web.Response:
    body, content_type = exposition(metrics)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def metrics_page(request: web.Request) -> web.Response:
    return _page(request.app[SERVICES].current.metrics)


async def _metrics_only_page(request: web.Request) -> web.Response:
    return _page(request.app[_METRICS])


def metrics_app(metrics: Metrics, paths: tuple[str, ...]) -> web.Application:
    app = web.Application()
    app[_METRICS] = metrics
    for path in paths:
        app.router.add_get(path, _metrics_only_page)
    return app
