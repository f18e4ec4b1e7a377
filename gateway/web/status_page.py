"""``/status``: the status page, its JSON, script and stylesheet; open or protected like ``/metrics``.

- ``GET /status``: HTML rendered here from ``gateway.pipeline.overview`` (``status_html``), readable
  without JavaScript;
- ``GET /status.json``: the same document as JSON, which ``status.js`` polls to refresh the page in
  place;
- ``GET /status.js``, ``GET /status.css``: the page's only assets, served from ``web/static``.

Every answer carries a strict Content-Security-Policy (no inline script or style, nothing from
elsewhere) and ``Cache-Control: no-store``. The pages are ``Special`` endpoints, so
``auth.protect_metrics`` guards them on the main port, and ``metrics_app`` mounts them on
``server.metrics_port`` too. The board (the ring of metric snapshots and the model states) lives
on the app, sampled from startup to cleanup by ``status_ctx``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web

import gateway
from gateway.config import Settings
from gateway.pipeline.overview import Board
from gateway.routing import routes
from gateway.web import status_html
from gateway.web.assets import static_file
from gateway.web.keys import HEALTH, SERVICES, STATUS
from gateway.web.responses import json_response

PATHS: dict[str, routes.Endpoint] = {
    "/status": "status_page",
    "/status.json": "status_json",
    "/status.js": "status_asset",
    "/status.css": "status_asset",
}
ASSETS = {"/status.js": ("status.js", "text/javascript"), "/status.css": ("status.css", "text/css")}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def status_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the board, sampled from startup on; runs after the services are built."""
    board = app[STATUS] = Board(app[SERVICES], app[HEALTH])
    sampler = asyncio.create_task(board.sample_forever(), name="tfs-gateway status sampler")
    yield
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    await board.close()


def _links(settings: Settings) -> list[tuple[str, str]]:
    links = [("status.json", "JSON")]
    if settings.metrics.enabled and settings.metrics.paths:
        links.append((settings.metrics.paths[-1], "Metrics"))
    return links


async def status_page(request: web.Request) -> web.Response:
    board = request.app[STATUS]
    document = await board.document()
    links = _links(board.ref.current.settings)
    body = status_html.page(document, version=gateway.__version__, links=links)
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=HEADERS)


async def status_json(request: web.Request) -> web.Response:
    document = await request.app[STATUS].document()
    return json_response(orjson.dumps(document), 200, HEADERS)


async def status_asset(request: web.Request) -> web.Response:
    name, content_type = ASSETS[request.path]
    headers = {**HEADERS, "Content-Type": f"{content_type}; charset=utf-8"}
    return web.Response(body=static_file(name), headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HANDLERS: dict[str, Handler] = {"status_page": status_page, "status_json": status_json, "status_asset": status_asset}
