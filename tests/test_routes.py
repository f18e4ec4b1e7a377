"""The URL grammar, from the examples in spec section 2."""

from __future__ import annotations

import re

import pytest

from gateway.errors import MalformedRequest, MethodNotAllowed, NotFound
from gateway.routing.routes import Special, Target, resolve, unescape

SPECIALS = {"/healthz": "healthz", "/metrics": "metrics"}


def route(method: str, path: str) -> Target | Special:
    return resolve(method, path, SPECIALS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/models/m", Target("v1", "status", "m")),
        ("GET", "/v1/models/m/versions/3", Target("v1", "status", "m", version=3)),
        ("GET", "/v1/models/m/labels/canary", Target("v1", "status", "m", label="canary")),
        ("GET", "/v1/models/m/metadata", Target("v1", "metadata", "m")),
        ("GET", "/v1/models/m/versions/007/metadata", Target("v1", "metadata", "m", version=7)),
        ("GET", "/v1/models/m/versions/0", Target("v1", "status", "m", version=0)),
        ("GET", "/v1/models/m/labels/l/metadata", Target("v1", "metadata", "m", label="l")),
        ("POST", "/v1/models/m:predict", Target("v1", "predict", "m")),
        ("POST", "/v1/models/m/versions/2:classify", Target("v1", "classify", "m", version=2)),
        ("POST", "/v1/models/m/labels/x:regress", Target("v1", "regress", "m", label="x")),
        ("POST", "/V1/MODELS/m/VERSIONS/3:predict", Target("v1", "predict", "m", version=3)),
        # TF Serving compares "metadata" case-sensitively after a case-insensitive match.
        ("GET", "/v1/models/m/METADATA", Target("v1", "status", "m")),
        ("GET", "/v1/models/metadata", Target("v1", "status", "metadata")),
        # Query strings are ignored (a deliberate difference).
        ("POST", "/v1/models/m:predict?x=1", Target("v1", "predict", "m")),
        ("GET", "/v1/models/m?x=1", Target("v1", "status", "m")),
        ("GET", "/model-serving/dep", Target("deployment", "status", "dep")),
        ("GET", "/model-serving/dep/versions/4/metadata", Target("deployment", "metadata", "dep", version=4)),
        ("POST", "/model-serving/dep/labels/stable:predict", Target("deployment", "predict", "dep", label="stable")),
        ("GET", "/healthz", Special("healthz")),
        ("POST", "/metrics", Special("metrics")),
    ],
)
def test_accepted_forms(method: str, path: str, expected: Target | Special) -> None:
    assert route(method, path) == expected


def test_names_and_labels_are_percent_decoded_after_matching() -> None:
    encoded = "modelname%21%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D"
    decoded = "modelname!#$%&'()*+,/:;=?@[]"
    assert route("GET", f"/v1/models/{encoded}") == Target("v1", "status", decoded)
    assert route("POST", f"/v1/models/{encoded}/labels/{encoded}:predict") == Target(
        "v1", "predict", decoded, label=decoded
    )
    assert route("GET", f"/v1/models/{encoded}/metadata") == Target("v1", "metadata", decoded)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/foo"),
        ("POST", "/v1/foo"),
        ("GET", "/v1/models/debug/model_name"),
        ("POST", "/v1/models"),
        ("GET", "/v1/models/foo:predict"),
        ("GET", "/v1/models/foo/version/50:predict"),
        ("POST", "/v1/models/foo/version/50:predict"),
        ("POST", "/v1/models/foo/versions/HELLO:regress"),
        ("POST", "/v1/models/foo/metadata"),
        ("POST", "/v1/models/foo/label/x:regress"),
        ("POST", "/v1/models/foo/versions/some_label:regress"),
        ("POST", "/v1/models/foo/versions/50/labels/x:predict"),
        ("POST", "/v1/models/foo:PREDICT"),
        ("GET", "/v1/models/foo/"),
        ("POST", "/model-serving/dep:explain"),
    ],
)
def test_malformed_requests(method: str, path: str) -> None:
    with pytest.raises(MalformedRequest) as caught:
        route(method, path)
    assert caught.value.message == f"Malformed request: {method} {path}"


def test_missing_model_name() -> None:
    with pytest.raises(MalformedRequest, match=re.escape("Missing model name in request.")):
        route("GET", "/v1/models")


def test_version_overflowing_int64_is_a_json_400() -> None:
    message = "Failed to convert version: 18446744073709551615 to numeric."
    with pytest.raises(MalformedRequest, match=re.escape(message)):
        route("GET", "/v1/models/m/versions/18446744073709551615")
    assert route("GET", f"/v1/models/m/versions/{2**63 - 1}") == Target("v1", "status", "m", version=2**63 - 1)


@pytest.mark.parametrize("path", ["/", "/v1", "/v3/models/m", "/v2x/models/m", "/index.html", "/model-serving"])
def test_paths_outside_the_api_are_404(path: str) -> None:
    with pytest.raises(NotFound):
        route("GET", path)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_are_405(method: str) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        route(method, "/v1/models/m")
    assert caught.value.headers["Allow"] == "GET, POST"


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [("a+b", "a+b"), ("%41%42", "AB"), ("%zz", "%zz"), ("%", "%"), ("%e2%82%ac", "\u20ac"), ("%ff", "\ufffd")],
)
def test_unescape(raw: str, decoded: str) -> None:
    assert unescape(raw) == decoded
