"""The URL grammar: a raw request path -> a ``Target``. Pure; no aiohttp.

TF Serving matches its regexes case-insensitively on the raw, still %-encoded path and
decodes name and label afterwards with plain ``%XX`` unescaping (spec §2.1-§2.2). The
verb and ``metadata`` are then compared case-sensitively, so ``:PREDICT`` is malformed
and ``/METADATA`` is served as status. We reproduce that, and differ only where the
README's "Differences from TF Serving" says so: query strings are ignored, an int64
overflow in the version gets a JSON error, methods other than GET/POST get 405.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gateway.errors import MalformedRequest, MethodNotAllowed, NotFound

Family = Literal["v1", "deployment"]
Kind = Literal["status", "metadata", "predict", "classify", "regress"]
Endpoint = Literal["healthz", "readyz", "metrics"]

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

_VERBS: dict[str, Kind] = {"predict": "predict", "classify": "classify", "regress": "regress"}


@dataclass(frozen=True, slots=True)
class Target:
    """What a request asks for. ``name`` is a model name (v1) or a deployment id."""

    family: Family
    kind: Kind
    name: str
    version: int | None = None
    label: str | None = None

    @property
    def route(self) -> str:
        return f"{self.family}_{self.kind}"


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
