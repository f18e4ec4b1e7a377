"""The URL grammar: a raw request path -> a ``Target``. Pure; no aiohttp.

TF Serving matches its regexes case-insensitively on the raw, still %-encoded path and
decodes name and label afterwards with plain ``%XX`` unescaping (spec §2.1-§2.2). The
verb and ``metadata`` are then compared case-sensitively, so ``:PREDICT`` is malformed
and ``/METADATA`` is served as status. We reproduce that, and differ only where the
README's "Differences from TF Serving" says so: query strings are ignored, an int64
overflow in the version gets a JSON error, methods other than GET/POST get 405.

The Open Inference Protocol's tree (``docs/spec/open-inference-protocol.md`` §2, §9) lives under
``/v2`` and under each deployment's ``/model-serving/{id}/v2``. It is matched case-sensitively, as
Triton and KServe do; its targets have ``protocol == "v2"`` and the route names ``v2_<kind>`` and
``deployment_v2_<kind>``. Routes it knows but declines (repository, shared memory, statistics...)
are 501, other ``/v2`` paths 404, and a method a route does not take 405.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gateway.errors import MalformedRequest, MethodNotAllowed, NotFound, Unimplemented

Family = Literal["v1", "deployment", "v2"]
Protocol = Literal["tfs", "v2"]
Kind = Literal[
    "status",
    "metadata",
    "predict",
    "classify",
    "regress",
    # the Open Inference Protocol's
    "live",
    "ready",
    "server_metadata",
    "model_ready",
    "model_metadata",
    "infer",
]
V2_KINDS: tuple[Kind, ...] = ("live", "ready", "server_metadata", "model_ready", "model_metadata", "infer")
V2_SERVER_KINDS: frozenset[Kind] = frozenset({"live", "ready", "server_metadata"})
V2_HEALTH_KINDS: frozenset[Kind] = frozenset({"live", "ready"})
Endpoint = Literal["healthz", "readyz", "metrics", "openapi", "docs", "status_page", "status_json", "status_asset"]

INT64_MAX = 2**63 - 1

_SEGMENT = r"[^/:]+"
_VERSION_OR_LABEL = rf"(?:/versions/(?P<version>\d+)|/labels/(?P<label>{_SEGMENT}))?"
_GET_TAIL = rf"{_VERSION_OR_LABEL}(?:/(?P<sub>metadata))?"
_POST_TAIL = rf"{_VERSION_OR_LABEL}:(?P<verb>classify|regress|predict)"

_V1_GET = re.compile(rf"/v1/models(?:/(?P<name>{_SEGMENT}))?{_GET_TAIL}", re.IGNORECASE)
_V1_POST = re.compile(rf"/v1/models/(?P<name>{_SEGMENT}){_POST_TAIL}", re.IGNORECASE)
_DEP_GET = re.compile(rf"/model-serving/(?P<name>{_SEGMENT}){_GET_TAIL}", re.IGNORECASE)
_DEP_POST = re.compile(rf"/model-serving/(?P<name>{_SEGMENT}){_POST_TAIL}", re.IGNORECASE)
_V1_PREFIX = re.compile(r"/v1/", re.IGNORECASE)
_DEP_PREFIX = re.compile(r"/model-serving/", re.IGNORECASE)
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")

_V2_ROOT = re.compile(r"/v2(?P<rest>/.*)?")
_V2_DEP_ROOT = re.compile(r"/model-serving/(?P<dep>[^/]+)/v2(?P<rest>/.*)?")
_V2_MODEL = re.compile(r"/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<tail>/.*)?")
_V2_SERVER: dict[str, Kind] = {
    "": "server_metadata",
    "/": "server_metadata",
    "/health/live": "live",
    "/health/ready": "ready",
}
_V2_MODEL_TAILS: dict[str | None, Kind] = {None: "model_metadata", "/ready": "model_ready", "/infer": "infer"}
# Known to Triton or KServe and declined: 501, not 404 (OIP §1).
_V2_DECLINED_SERVER = re.compile(r"/(?:repository|systemsharedmemory|cudasharedmemory|logging|trace/setting)(?:/.*)?")
_V2_DECLINED_MODEL = frozenset({"/stats", "/config", "/trace/setting", "/generate", "/generate_stream"})
_DIGITS = re.compile(r"\d+")

_VERBS: dict[str, Kind] = {"predict": "predict", "classify": "classify", "regress": "regress"}


@dataclass(frozen=True, slots=True)
class Target:
    """What a request asks for. ``name`` is a model name (v1) or a deployment id."""

    family: Family
    kind: Kind
    name: str
    version: int | None = None
    label: str | None = None
    protocol: Protocol = "tfs"
    model: str | None = None  # OIP deployment form: the {model} segment, as addressed

    @property
    def route(self) -> str:
        if self.protocol == "v2" and self.family == "deployment":
            return f"deployment_v2_{self.kind}"
        return f"{self.family}_{self.kind}"

    @property
    def server_level(self) -> bool:
        """An OIP route of the whole server (``/v2``, ``/v2/health/*``): no model, no binding."""
        return self.family == "v2" and self.kind in V2_SERVER_KINDS


@dataclass(frozen=True, slots=True)
class Special:
    """A gateway endpoint outside TF Serving's API."""

    endpoint: Endpoint


def unescape(raw: str) -> str:
    """%XX-decode like curl_easy_unescape: no '+' -> space, bad escapes kept as they are."""
    if "%" not in raw:
        return raw
    decoded = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw.encode("latin-1", "replace"))
    return decoded.decode("utf-8", "replace")


def resolve(method: str, raw_path: str, specials: dict[str, Endpoint]) -> Target | Special:
    """Map a request to its target, or raise the error TF Serving's grammar implies."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    special = specials.get(path)
    if special is not None:
        return Special(special)
    v2 = _V2_ROOT.fullmatch(path) or _V2_DEP_ROOT.fullmatch(path)
    if v2 is not None:
        return _resolve_v2(method, path, v2)
    if _V1_PREFIX.match(path):
        return _resolve_api("v1", method, path, _V1_GET, _V1_POST)
    if _DEP_PREFIX.match(path):
        return _resolve_api("deployment", method, path, _DEP_GET, _DEP_POST)
    raise NotFound(f"Not found: {path}")


def _resolve_api(family: Family, method: str, path: str, get_re: re.Pattern[str], post_re: re.Pattern[str]) -> Target:
    if method not in ("GET", "POST"):
        raise MethodNotAllowed(f"Method {method} is not allowed on {path}", headers={"Allow": "GET, POST"})
    match = (get_re if method == "GET" else post_re).fullmatch(path)
    if match is None:
        raise MalformedRequest(f"Malformed request: {method} {path}")
    groups = match.groupdict()
    if groups["name"] is None:
        raise MalformedRequest("Missing model name in request.")
    kind = _kind(groups)
    if kind is None:
        raise MalformedRequest(f"Malformed request: {method} {path}")
    label = groups["label"]
    return Target(
        family=family,
        kind=kind,
        name=unescape(groups["name"]),
        version=_version(groups["version"]),
        label=unescape(label) if label is not None else None,
    )


def _kind(groups: dict[str, str | None]) -> Kind | None:
    verb = groups.get("verb")
    if verb is not None:
        return _VERBS.get(verb)
    return "metadata" if groups.get("sub") == "metadata" else "status"


def _version(digits: str | None) -> int | None:
    if digits is None:
        return None
    version = int(digits)
    if version > INT64_MAX:
        raise MalformedRequest(f"Failed to convert version: {digits} to numeric.")
    return version


def _resolve_v2(method: str, path: str, match: re.Match[str]) -> Target:
    """The OIP tree (OIP §2, §9), after ``/v2`` or ``/model-serving/{id}/v2``."""
    groups = match.groupdict()
    deployment = groups.get("dep")
    family: Family = "v2" if deployment is None else "deployment"
    name = "" if deployment is None else unescape(deployment)
    rest = groups["rest"] or ""
    kind = _V2_SERVER.get(rest)
    if kind is not None:
        _v2_method(method, path, kind)
        return Target(family, kind, name, protocol="v2")
    model = _V2_MODEL.fullmatch(rest)
    if model is None:
        if _V2_DECLINED_SERVER.fullmatch(rest):
            raise _declined(path)
        raise NotFound(f"Not found: {path}")
    tail = model.group("tail")
    kind = _V2_MODEL_TAILS.get(tail)
    if kind is None:
        if tail in _V2_DECLINED_MODEL:
            raise _declined(path)
        raise NotFound(f"Not found: {path}")
    _v2_method(method, path, kind)
    addressed = unescape(model.group("name"))
    version, label = _v2_version(model.group("version"))
    if deployment is None:
        return Target(family, kind, addressed, version, label, protocol="v2")
    return Target(family, kind, name, version, label, protocol="v2", model=addressed)


def _v2_method(method: str, path: str, kind: Kind) -> None:
    allowed = "POST" if kind == "infer" else "GET"
    if method != allowed:
        raise MethodNotAllowed(f"Method {method} is not allowed on {path}", headers={"Allow": allowed})


def _v2_version(raw: str | None) -> tuple[int | None, str | None]:
    """Digits are a version (int64, else 400); any other text is a version label (OIP §2)."""
    if raw is None:
        return None, None
    if _DIGITS.fullmatch(raw):
        version = int(raw)
        if version > INT64_MAX:
            raise MalformedRequest(f"Failed to convert version: {raw} to numeric.")
        return version, None
    return None, unescape(raw)


def _declined(path: str) -> Unimplemented:
    return Unimplemented(f"Not supported by this server: {path}", details={"path": path})
