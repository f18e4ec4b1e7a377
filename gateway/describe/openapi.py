"""The gateway described as an OpenAPI 3.1 document, from plain facts about what it serves. Pure.

``build(surface)`` takes a :class:`Surface`: the gateway's own pages by path, and the servables
to describe concretely (configured deployments and the models the signature cache has seen),
each with its signatures as ``codec.meta.SignatureSpec`` values. It returns the document as a
dict; the web handler (``gateway/web/selfdoc.py``) gathers the facts and serves the JSON.

What it describes:

* generic, parametrised paths for every route the URL grammar (``routing/routes.py``) knows:
  TF Serving's v1 routes and the deployment forms, each bare, ``/versions/{version}`` and
  ``/labels/{label}``; the Open Inference Protocol's ``/v2`` tree and its deployment forms;
* one concrete path set per servable, whose predict bodies come from its live SignatureDefs
  (``describe/schemas.py``);
* the gateway's own pages (health, readiness, metrics, this document, ``/docs``);
* every error status each route can answer, with the ``{"error": ...}`` envelope, and 401/403
  with security schemes on the routes whose auth policy asks for credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from gateway.codec.meta import SignatureSpec
from gateway.describe import schemas
from gateway.describe.schemas import Schema
from gateway.routing.routes import INT64_MAX

OPENAPI_VERSION = "3.1.0"
Family = Literal["v1", "deployment"]

# Error statuses by what a route does (docs/contracts.md; gateway/errors.py's tree).
_BACKEND = (404, 429, 500, 502, 503, 504)  # ModelServer's codes, mapped; 503 also for shed load
_READ = (400, *_BACKEND)  # status, metadata: a bad X-Request-Timeout or label is a 400
_WRITE = (400, 408, 413, 415, 501, *_BACKEND)  # body read with bounds, converted, then called
_AUTH = (401, 403)
_REASONS = {
    400: "The request or its body is malformed, or the backend refused its arguments.",
    401: "Credentials are missing or wrong (carries WWW-Authenticate).",
    403: "These credentials are valid elsewhere, but not for this route.",
    404: "No such model, version, label or deployment.",
    408: "The body arrived too slowly.",
    413: "The body is over `server.max_request_bytes`, raw or inflated.",
    415: "A Content-Encoding the gateway cannot undo.",
    429: "The backend is out of a resource (RESOURCE_EXHAUSTED).",
    500: "The backend failed internally.",
    501: "A dtype or feature the REST API cannot express.",
    502: "The backend's reply does not parse.",
    503: "The backend is unreachable, its circuit is open, or the gateway sheds load (Retry-After).",
    504: "The deadline ran out.",
}
_SECURITY: list[dict[str, list[str]]] = [{"basicAuth": []}, {"bearerAuth": []}, {"apiKey": []}]
_SECURITY_SCHEMES = {
    "basicAuth": {"type": "http", "scheme": "basic"},
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key as a bearer token."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
_REQUEST_ID = {
    "X-Request-ID": {
        "description": "The request's id: the client's own, or one the gateway made.",
        "required": True,
        "schema": {"type": "string"},
    }
}
_MODEL_VERSION = {
    "X-Model-Version": {
        "description": "The version that answered, as ModelServer's reply names it.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


@dataclass(frozen=True, slots=True)
class Servable:
    """Routes to describe concretely: a model (v1) or a deployment, with what the backend said of it.

    ``signatures`` is None when they could not be fetched (the routes are then described generically).
    """

    family: Family
    name: str
    version: int | None = None
    label: str | None = None
    signatures: Mapping[str, SignatureSpec] | None = None
    protected: bool = False
    note: str = ""

    @property
    def prefix(self) -> str:
        root = "/v1/models/" if self.family == "v1" else "/model-serving/"
        path = root + quote(self.name, safe="")
        if self.version is not None:
            return f"{path}/versions/{self.version}"
        if self.label is not None:
            return f"{path}/labels/{quote(self.label, safe='')}"
        return path

    @property
    def oip_model(self) -> str:
        """The same servable's Open Inference Protocol model path (OIP §2, §9)."""
        name = quote(self.name, safe="")
        path = f"/v2/models/{name}" if self.family == "v1" else f"/model-serving/{name}/v2/models/{name}"
        if self.version is not None:
            return f"{path}/versions/{self.version}"
        if self.label is not None:
            return f"{path}/versions/{quote(self.label, safe='')}"
        return path


@dataclass(frozen=True, slots=True)
class Surface:
    """Everything the document says, as plain facts.

    ``specials`` maps each of the gateway's own paths to its endpoint name (``healthz``, ``metrics``...);
    ``assets`` maps the paths of ``/docs``'s and ``/status``'s static files to their content types;
    ``protected`` names the endpoints whose policy asks for credentials; ``auth`` is whether any
    model or deployment route may (the generic paths then document 401 and 403).
    """

    version: str
    specials: Mapping[str, str]
    assets: Mapping[str, str] = field(default_factory=dict)
    servables: Sequence[Servable] = ()
    auth: bool = False
    protected: frozenset[str] = field(default_factory=frozenset)


def build(surface: Surface) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    _add_specials(paths, surface)
    for family in ("v1", "deployment"):
        _add_generic_tfs(paths, family, surface.auth)
    _add_oip(paths, "/v2", surface.auth, deployment=False)
    _add_oip(paths, "/model-serving/{deployment}/v2", surface.auth, deployment=True)
    for servable in surface.servables:
        _add_servable(paths, servable)
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "tfserving-gateway",
            "version": surface.version,
            "description": (
                "TF Serving's REST API, deployment routes and the Open Inference Protocol, served by "
                "tfserving-gateway. Concrete paths come from the live SignatureDefs of configured "
                "deployments and of the models this gateway has seen; parametrised paths cover the rest."
            ),
        },
        "paths": paths,
        "components": {"schemas": {"Error": schemas.ERROR, "B64": schemas.B64}},
    }
    if surface.auth or surface.protected:
        document["components"]["securitySchemes"] = _SECURITY_SCHEMES
    return document


# --------------------------------------------------------------------------- building blocks


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ok(description: str, schema: Schema, *, versioned: bool = False) -> dict[str, Any]:
    headers = {**_REQUEST_ID, **_MODEL_VERSION} if versioned else dict(_REQUEST_ID)
    return {"description": description, "headers": headers, "content": _json(schema)}


def _errors(statuses: Iterable[int], protected: bool) -> dict[str, Any]:
    codes = sorted(set(statuses) | (set(_AUTH) if protected else set()))
    error = {"$ref": "#/components/schemas/Error"}
    return {str(code): {"description": _REASONS[code], "content": _json(error)} for code in codes}


_ID_CHARS = re.compile(r"[^A-Za-z0-9]+")


def _operation(
    method: str,
    path: str,
    summary: str,
    tag: str,
    responses: dict[str, Any],
    protected: bool,
    body: Schema | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": _ID_CHARS.sub("_", f"{method}{path}").strip("_"),
        "summary": summary,
        "tags": [tag],
        "responses": responses,
    }
    parameters = _parameters(path)
    if path.startswith(_BINDING_ROOTS):
        parameters.append(_CLIENT_TIMEOUT)
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    if protected:
        operation["security"] = _SECURITY
    return operation


_NAME: Schema = {"type": "string", "minLength": 1}
_PARAMETERS: dict[str, dict[str, Any]] = {
    "model": {"description": "A model name, as ModelServer knows it.", "schema": _NAME},
    "deployment": {"description": "A configured deployment id.", "schema": _NAME},
    "version": {
        "description": "A version number.",
        "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
    },
    "label": {"description": "A version label.", "schema": _NAME},
}
_OIP_VERSION = {"description": "A version number, or else a version label.", "schema": _NAME}
_TEMPLATE = re.compile(r"\{(\w+)\}")
# Routes that bind to a model or deployment, and so read the client's deadline (routing/binding.py).
_BINDING_ROOTS = ("/v1/", "/model-serving/", "/v2/models/")
_CLIENT_TIMEOUT = {
    "name": "X-Request-Timeout",
    "in": "header",
    "required": False,
    "description": "The client's deadline in seconds, capped by `timeouts.max_client_seconds`; 504 when it runs out.",
    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e300},
}


def _parameters(path: str) -> list[dict[str, Any]]:
    oip = "/v2/" in path
    found = []
    for name in _TEMPLATE.findall(path):
        spec = _OIP_VERSION if oip and name == "version" else _PARAMETERS[name]
        found.append({"name": name, "in": "path", "required": True, **spec})
    return found


# --------------------------------------------------------------------------- TF Serving's routes

_STATUS: Schema = {
    "type": "object",
    "properties": {
        "model_version_status": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "version": {"type": "string"},
                    "state": {"type": "string"},
                    "status": {"type": "object"},
                },
                "required": ["version", "state"],
            },
        }
    },
    "required": ["model_version_status"],
}
_METADATA: Schema = {
    "type": "object",
    "properties": {
        "model_spec": {"type": "object"},
        "metadata": {"type": "object", "properties": {"signature_def": {"type": "object"}}},
    },
    "required": ["model_spec", "metadata"],
}
_TAGS: dict[Family, str] = {"v1": "TF Serving REST (v1)", "deployment": "Deployments"}


def _add_generic_tfs(paths: dict[str, dict[str, Any]], family: Family, auth: bool) -> None:
    root = "/v1/models/{model}" if family == "v1" else "/model-serving/{deployment}"
    for prefix in (root, f"{root}/versions/{{version}}", f"{root}/labels/{{label}}"):
        _add_tfs(paths, prefix, _TAGS[family], auth, None)


def _add_tfs(
    paths: dict[str, dict[str, Any]],
    prefix: str,
    tag: str,
    protected: bool,
    signatures: Mapping[str, SignatureSpec] | None,
) -> None:
    """Status, metadata, predict, classify and regress under one prefix."""
    status = _read(_ok("The model's versions", _STATUS), protected)
    paths[prefix] = {"get": _operation("get", prefix, "Model status", tag, status, protected)}
    metadata = f"{prefix}/metadata"
    ok = _ok("The model's SignatureDefs", _METADATA, versioned=True)
    paths[metadata] = {"get": _operation("get", metadata, "Model metadata", tag, _read(ok, protected), protected)}
    for verb, (body, answer) in _verbs(signatures).items():
        path = f"{prefix}:{verb}"
        responses = {"200": answer, **_errors(_WRITE, protected)}
        paths[path] = {"post": _operation("post", path, verb.capitalize(), tag, responses, protected, body)}


_CLASSIFY, _REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"


def _verbs(signatures: Mapping[str, SignatureSpec] | None) -> dict[str, tuple[Schema, dict[str, Any]]]:
    """Request body and 200 answer of each POST verb; classify and regress only where a signature has them."""
    if signatures is None:
        request, reply = schemas.generic_predict_request(), schemas.generic_predict_response()
    else:
        request, reply = schemas.predict_request(signatures), schemas.predict_response(signatures)
    verbs = {"predict": (request, _ok("Predictions", reply, versioned=True))}
    methods = None if signatures is None else {sig.method_name for sig in signatures.values()}
    if methods is None or _CLASSIFY in methods:
        classes = _ok("Classes and scores", schemas.classify_response(), versioned=True)
        verbs["classify"] = (schemas.examples_request(), classes)
    if methods is None or _REGRESS in methods:
        results = _ok("Regression results", schemas.regress_response(), versioned=True)
        verbs["regress"] = (schemas.examples_request(), results)
    return verbs


def _read(ok: dict[str, Any], protected: bool) -> dict[str, Any]:
    return {"200": ok, **_errors(_READ, protected)}


def _add_servable(paths: dict[str, dict[str, Any]], servable: Servable) -> None:
    tag = f"{'model' if servable.family == 'v1' else 'deployment'}: {servable.name}"
    _add_tfs(paths, servable.prefix, tag, servable.protected, servable.signatures)
    _add_oip_model(paths, servable.oip_model, tag, servable.protected, servable.signatures)
    if servable.note:
        for operations in (paths[servable.prefix], paths[f"{servable.prefix}:predict"]):
            for operation in operations.values():
                operation["description"] = servable.note


# --------------------------------------------------------------------------- the Open Inference Protocol

_OIP_TENSOR: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
    "required": ["name", "datatype", "shape"],
}
_OIP_INFER_REQUEST: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _OIP_TENSOR},
        "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
    },
    "required": ["inputs"],
}
_OIP_INFER_RESPONSE: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "outputs": {"type": "array", "items": _OIP_TENSOR},
    },
    "required": ["model_name", "outputs"],
}
_OIP_TENSOR_META: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["name", "datatype", "shape"],
}
_OIP_MODEL_METADATA: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"},
        "inputs": {"type": "array", "items": _OIP_TENSOR_META},
        "outputs": {"type": "array", "items": _OIP_TENSOR_META},
        "properties": {"type": "object"},
    },
    "required": ["name", "platform", "inputs", "outputs"],
}
_OIP_SERVER_METADATA: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "extensions": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "version", "extensions"],
}
_OIP_TAG = "Open Inference Protocol (v2)"


def _flag(key: str) -> Schema:
    return {"type": "object", "properties": {key: {"const": True}}, "required": [key]}


def _add_oip(paths: dict[str, dict[str, Any]], root: str, auth: bool, *, deployment: bool) -> None:
    """``root`` is ``/v2`` or a deployment's ``/model-serving/{deployment}/v2`` (OIP §2, §9)."""
    server_errors = (400, 404) if deployment else ()  # an unknown deployment; a bad X-Request-Timeout
    gets = {
        root: ("Server metadata", _OIP_SERVER_METADATA, server_errors),
        f"{root}/health/live": ("Server live", _flag("live"), (*server_errors, 503)),
        f"{root}/health/ready": ("Server ready", _flag("ready"), (*server_errors, 503)),
    }
    # The server's own routes follow the global policy, health routes auth.protect_health: both under `auth`.
    for path, (summary, schema, statuses) in gets.items():
        responses = {"200": _ok(summary, schema), **_errors(statuses, auth)}
        paths[path] = {"get": _operation("get", path, summary, _OIP_TAG, responses, auth)}
    for model in (f"{root}/models/{{model}}", f"{root}/models/{{model}}/versions/{{version}}"):
        _add_oip_model(paths, model, _OIP_TAG, auth, None)


_OIP_READY: Schema = {"type": "object", "properties": {"name": {"type": "string"}, "ready": {"const": True}}}


def _add_oip_model(
    paths: dict[str, dict[str, Any]],
    model: str,
    tag: str,
    protected: bool,
    signatures: Mapping[str, SignatureSpec] | None,
) -> None:
    """Model metadata, ready and infer under one OIP model path; infer's bodies from ``signatures``."""
    for path, summary, schema in (
        (model, "Model metadata", _OIP_MODEL_METADATA),
        (f"{model}/ready", "Model ready", _OIP_READY),
    ):
        responses = {"200": _ok(summary, schema), **_errors(_READ, protected)}
        paths[path] = {"get": _operation("get", path, summary, tag, responses, protected)}
    infer = f"{model}/infer"
    request, reply = _OIP_INFER_REQUEST, _OIP_INFER_RESPONSE
    if signatures is not None:
        request, reply = schemas.oip_infer_request(signatures), schemas.oip_infer_response(signatures)
    responses = {"200": _ok("Inference outputs", reply), **_errors(_WRITE, protected)}
    paths[infer] = {"post": _operation("post", infer, "Infer", tag, responses, protected, request)}


# --------------------------------------------------------------------------- the gateway's own pages

_PAGES: dict[str, tuple[str, str, Schema | None]] = {
    # endpoint: (summary, content type, JSON schema or None for a non-JSON body)
    "healthz": (
        "Liveness: 200 while the process serves",
        "application/json",
        {
            "type": "object",
            "properties": {"status": {"const": "ok"}},
            "required": ["status"],
        },
    ),
    "readyz": (
        "Readiness: every check, 503 when one fails",
        "application/json",
        {
            "type": "object",
            "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
            "required": ["status", "checks"],
        },
    ),
    "metrics": ("Prometheus metrics", "text/plain", None),
    "openapi": ("This document (OpenAPI 3.1)", "application/json", {"type": "object", "required": ["openapi"]}),
    "docs": ("Interactive documentation (Swagger UI)", "text/html", None),
    "status_page": ("The status page: deployments, backends, model versions, live rates", "text/html", None),
    "status_json": ("The status page's data", "application/json", {"type": "object"}),
}


def _add_specials(paths: dict[str, dict[str, Any]], surface: Surface) -> None:
    for path, endpoint in sorted(surface.specials.items()):
        summary, media, schema = _PAGES.get(endpoint, (f"The gateway's {endpoint} page", "*/*", None))
        if path in surface.assets:
            summary, media = "A static file of a page, served from the gateway's own copy", surface.assets[path]
        content = {media: {"schema": schema if schema is not None else {"type": "string"}}}
        ok = {"description": summary, "headers": dict(_REQUEST_ID), "content": content}
        protected = endpoint in surface.protected
        responses = {"200": ok, **_errors((), protected)}
        if endpoint == "readyz":
            responses["503"] = {"description": "Not ready: the failing checks say why", "content": content}
        paths[path] = {"get": _operation("get", path, summary, "Gateway", responses, protected)}
