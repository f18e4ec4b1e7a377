"""Self-description: ``/openapi.json`` and the Swagger UI page at ``/docs``, served by the gateway itself.

``/openapi.json`` is built by ``gateway/describe/openapi.py`` from facts gathered here: the
gateway's own pages, each configured deployment with its live SignatureDefs (fetched through
the signature cache, so a lookup costs what a predict's would), and every servable the cache has
seen. The document is kept for ``CACHE_SECONDS``, keyed by the config generation and the
signature cache's ``generation``, so it changes when a model's signatures do (a new version
seen, a servable dropped) and is rebuilt at most once per ``CACHE_SECONDS`` otherwise.

Both follow ``auth.protect_metrics``: the document names every deployment and model the gateway
has seen, which is what the metrics page reveals too, so the same switch guards both.

``/docs`` is Swagger UI from a vendored copy (``static/swagger-ui/README.md``). Every asset is
served from here and the page's init script is a file, so the Content-Security-Policy allows
scripts, styles and requests to this origin only (images also as ``data:`` URIs, which the
stylesheet uses), and ``validatorUrl: null`` keeps the page from calling validator.swagger.io.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import orjson
from aiohttp import web

import gateway
from gateway.codec import meta as codec_meta
from gateway.codec.messages import Signatures
from gateway.describe import openapi
from gateway.errors import GatewayError, NotFound
from gateway.pipeline import offload
from gateway.pipeline.services import RequestInfo, Services
from gateway.pipeline.signatures import CacheKey
from gateway.routing import routes
from gateway.routing.binding import bind
from gateway.web import status_page
from gateway.web.assets import static_file
from gateway.web.keys import SPECIALS
from gateway.web.middleware import request_info, request_services
from gateway.web.responses import json_response

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
CACHE_SECONDS = 5.0
# URL path -> (file under static/, Content-Type)
ASSETS: dict[str, tuple[str, str]] = {
    "/docs/init.js": ("docs/init.js", "text/javascript; charset=utf-8"),
    "/docs/swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "/docs/swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "/docs/LICENSE": ("swagger-ui/LICENSE", "text/plain; charset=utf-8"),
    "/docs/NOTICE": ("swagger-ui/NOTICE", "text/plain; charset=utf-8"),
    "/docs/swagger-ui-bundle.js.LICENSE.txt": (
        "swagger-ui/swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8",
    ),
}
_PAGE = ("docs/index.html", "text/html; charset=utf-8")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def paths() -> dict[str, routes.Endpoint]:
    """The special paths this module serves, for the dispatcher."""
    found: dict[str, routes.Endpoint] = {OPENAPI_PATH: "openapi", DOCS_PATH: "docs"}
    found.update({path: "docs" for path in ASSETS})
    return found


# --------------------------------------------------------------------------- /docs


async def docs(request: web.Request) -> web.Response:
    """``/docs`` and its assets: the page, the vendored Swagger UI files and the init script."""
    name, content_type = _PAGE if request.path == DOCS_PATH else ASSETS.get(request.path, ("", ""))
    if not name:
        raise NotFound(f"Not found: {request.path}")
    headers = {
        "Content-Type": content_type,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    return web.Response(body=static_file(name), headers=headers)


# --------------------------------------------------------------------------- /openapi.json


@dataclass(frozen=True, slots=True)
class _Built:
    key: tuple[int, int]  # (config generation, signature cache generation)
    expires: float
    body: bytes


class DocumentCache:
    """The last document built; one per app, so that workers and tests each keep their own."""

    def __init__(self) -> None:
        self.last: _Built | None = None

    def fresh(self, key: tuple[int, int], now: float) -> bytes | None:
        last = self.last
        return last.body if last is not None and last.key == key and now < last.expires else None


DOCUMENT_CACHE = web.AppKey("tfs_gateway_openapi_document", DocumentCache)


async def document(request: web.Request) -> web.Response:
    """``/openapi.json``: the cached document, or a new one when signatures changed or it aged out."""
    services = request_services(request)
    cache = request.app[DOCUMENT_CACHE]
    body = cache.fresh(_key(services), time.monotonic())
    if body is None:
        surface = await gather(services, request.app[SPECIALS], request_info(request).request_id)
        # Its cost grows with every servable seen (tens of ms for hundreds): built off the loop.
        body = await offload.in_thread(_render, surface)
        # Keyed after the build: fetching the deployments' signatures may itself have stored some.
        cache.last = _Built(_key(services), time.monotonic() + CACHE_SECONDS, body)
    return json_response(body, 200, {"Cache-Control": f"max-age={int(CACHE_SECONDS)}"})


def _render(surface: openapi.Surface) -> bytes:
    return orjson.dumps(openapi.build(surface))


def _key(services: Services) -> tuple[int, int]:
    return id(services), services.signature_cache.generation


async def gather(services: Services, specials: dict[str, routes.Endpoint], request_id: str) -> openapi.Surface:
    """The facts for the document: pages, configured deployments (signatures fetched) and seen models."""
    auth = services.authenticator
    names = services.settings.deployments
    deployments = await asyncio.gather(*(_deployment(services, name, request_id) for name in names))
    seen = sorted(
        (_seen(services, key, sigs) for key, sigs in services.signature_cache.entries() if _routable(services, key)),
        key=lambda servable: servable.prefix,
    )
    endpoints = set(specials.values())
    protected = {e for e in endpoints if auth.active and auth.policy_for(routes.Special(e)).type != "none"}
    return openapi.Surface(
        version=gateway.__version__,
        specials=dict(specials),
        assets={
            path: content_type.split(";")[0]
            for path, (_, content_type) in {**ASSETS, **status_page.ASSETS}.items()
            if path in specials
        },
        servables=[*deployments, *seen],
        auth=auth.active,
        protected=frozenset(protected),
    )


async def _deployment(services: Services, name: str, request_id: str) -> openapi.Servable:
    target = routes.Target("deployment", "metadata", name)
    protected = _protected(services, target)
    # A split draws its arm at random: a fixed draw keeps the document stable for one config.
    binding = bind(services.settings, target, rng=random.Random(0))
    try:
        sigs = await services.signatures(binding, RequestInfo(request_id))
    except GatewayError as exc:
        note = f"Signatures unavailable ({exc.message}); described generically."
        return openapi.Servable("deployment", name, protected=protected, note=note)
    note = f"Model {binding.model!r}" + (f", split arm {binding.arm!r}" if binding.arm else "")
    return openapi.Servable(
        "deployment", name, signatures=codec_meta.signature_specs(sigs), protected=protected, note=note
    )


def _routable(services: Services, key: CacheKey) -> bool:
    """Whether ``/v1/models/{key.model}`` reaches the backend this entry came from."""
    return services.settings.model_settings(key.model).backend == key.backend


def _seen(services: Services, key: CacheKey, sigs: Signatures) -> openapi.Servable:
    target = routes.Target("v1", "metadata", key.model, key.version, key.label)
    return openapi.Servable(
        "v1",
        key.model,
        key.version,
        key.label,
        codec_meta.signature_specs(sigs),
        protected=_protected(services, target),
    )


def _protected(services: Services, target: routes.Target) -> bool:
    auth = services.authenticator
    return auth.active and auth.policy_for(target).type != "none"
