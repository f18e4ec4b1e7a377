"""gateway/describe: predict schemas from signatures, and the OpenAPI document, without sockets.

Bodies are checked with jsonschema's 2020-12 validator (the dialect OpenAPI 3.1 uses), and whole
documents with openapi-spec-validator, so a schema that says the wrong thing fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from gateway.codec.meta import SignatureSpec, TensorSpec
from gateway.codec.tensors import SUPPORTED
from gateway.describe import openapi, schemas

_BY_NAME = {dtype.name: dtype for dtype in SUPPORTED.values()}


def spec(dtype: str, *dims: int) -> TensorSpec:
    return TensorSpec(_BY_NAME.get(dtype), dtype, tuple(dims))


def valid(schema: dict[str, Any], body: Any) -> bool:
    return Draft202012Validator(schema).is_valid(body)


ONE_IN = {
    "serving_default": SignatureSpec("tensorflow/serving/predict", {"x": spec("float", -1)}, {"y": spec("float", -1)})
}
MULTI = {
    "serving_default": SignatureSpec(
        "tensorflow/serving/predict",
        {"a": spec("float", -1, 3), "b": spec("int8", -1), "s_bytes": spec("string", -1)},
        {"out_bytes": spec("string", -1), "text": spec("string", -1), "n": spec("int64", -1, 2)},
    )
}


# --------------------------------------------------------------------------- tensors


@pytest.mark.parametrize(
    ("dtype", "good", "bad"),
    [
        ("float", [1.5, -2, 1e30], ["1", True, None]),
        ("int8", [-128, 0, 127], [128, -129, 1.5, "1"]),
        ("uint8", [0, 255], [-1, 256]),
        ("int64", [-(2**63), 2**63 - 1], [2**63]),
        ("uint64", [0, 2**64 - 1], [-1, 2**64]),
        ("bool", [True, False], [1, "true"]),
        ("string", ["text", {"b64": "aGk="}], [1, {"b64": "not base64!"}, {"b64": "aGk=", "x": 1}]),
    ],
)
def test_leaves_follow_the_dtype(dtype: str, good: list[Any], bad: list[Any]) -> None:
    leaf = schemas.leaf(spec(dtype), "x", output=False)
    assert all(valid(leaf, value) for value in good), good
    assert not any(valid(leaf, value) for value in bad), bad


def test_string_outputs_are_b64_only_when_the_alias_ends_in_bytes() -> None:
    assert valid(schemas.leaf(spec("string"), "raw_bytes", output=True), {"b64": "AP8="})
    assert not valid(schemas.leaf(spec("string"), "raw_bytes", output=True), "text")
    assert valid(schemas.leaf(spec("string"), "echo", output=True), "text")
    assert not valid(schemas.leaf(spec("string"), "echo", output=True), {"b64": "AP8="})


def test_bytes_inputs_offer_b64_first_and_still_take_text() -> None:
    forms = schemas.leaf(spec("string"), "image_bytes", output=False)["anyOf"]
    assert forms[0]["required"] == ["b64"] and forms[1] == {"type": "string"}


def test_fixed_dims_bound_their_arrays_and_unknown_ones_do_not() -> None:
    schema = schemas.tensor(spec("float", 2, -1, 3), "x", output=False)
    assert valid(schema, [[[1, 2, 3]], [[4, 5, 6], [7, 8, 9]]])
    assert not valid(schema, [[[1, 2, 3]]]), "dim 0 is 2"
    assert not valid(schema, [[[1, 2]], [[1, 2, 3]]]), "dim 2 is 3"
    assert not valid(schema, [[], [[1, 2, 3]]]), "an empty middle dim would lose the inner ones"
    assert valid(schemas.tensor(spec("float", -1), "x", output=False), [])
    assert valid(schemas.tensor(spec("float"), "x", output=False), 1.0), "rank 0 is a scalar"
    unknown = TensorSpec(_BY_NAME["float"], "float", None)
    assert valid(schemas.tensor(unknown, "x", output=False), [[["any"]]])


def test_unconvertible_dtypes_name_the_501() -> None:
    leaf = schemas.leaf(TensorSpec(None, "half", (-1,)), "x", output=False)
    assert "half" in leaf["description"] and "501" in leaf["description"]


# --------------------------------------------------------------------------- predict bodies


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [1.0, 2.0]},
        {"instances": [{"x": 1.0}, {"x": 2.0}]},
        {"inputs": [1.0, 2.0]},
        {"inputs": {"x": [1.0]}},
        {"signature_name": "serving_default", "instances": [1]},
    ],
)
def test_single_input_bodies_are_accepted(body: Any) -> None:
    assert valid(schemas.predict_request(ONE_IN), body)


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [1.0, {"x": 2.0}]},  # rows must all be plain or all named (spec §4.2)
        {"instances": [1.0], "inputs": [1.0]},  # both forms: a 400
        {"instances": []},  # no rows: a 400
        {"instances": ["1.0"]},
        {"signature_name": "other", "instances": [1.0]},
        {},
    ],
)
def test_single_input_bodies_the_gateway_refuses_are_invalid(body: Any) -> None:
    assert not valid(schemas.predict_request(ONE_IN), body)


def test_several_inputs_are_named_in_both_forms() -> None:
    request = schemas.predict_request(MULTI)
    row = {"a": [1, 2, 3], "b": -5, "s_bytes": {"b64": "aGk="}}
    assert valid(request, {"instances": [row, row]})
    assert valid(request, {"inputs": {"a": [[1, 2, 3]], "b": [1], "s_bytes": ["text"]}})
    assert not valid(request, {"instances": [{**row, "b": 300}]}), "int8 range"
    assert not valid(request, {"instances": [{"a": [1, 2, 3], "b": 1}]}), "s_bytes missing"
    assert not valid(request, {"instances": [{**row, "a": [1, 2]}]}), "a's dim 1 is 3"


def test_answers_follow_the_outputs() -> None:
    response = schemas.predict_response(MULTI)
    row = {"out_bytes": {"b64": "AP8="}, "text": "hi", "n": [1, 2]}
    assert valid(response, {"predictions": [row]})
    assert valid(response, {"outputs": {"out_bytes": [{"b64": "AP8="}], "text": ["hi"], "n": [[1, 2]]}})
    assert not valid(response, {"predictions": [{**row, "out_bytes": "AP8="}]}), "_bytes outputs are b64"
    assert not valid(response, {"predictions": [row], "outputs": {}})
    single = schemas.predict_response(ONE_IN)
    assert valid(single, {"predictions": [2.5, 3.0]}) and valid(single, {"outputs": [2.5]})
    assert not valid(single, {"predictions": [{"y": 2.5}]}), "one output stands alone"


def test_signatures_rest_cannot_call_are_left_out_of_requests() -> None:
    sigs = {
        "serving_default": SignatureSpec("tensorflow/serving/predict", {"h": TensorSpec(None, "half", (-1,))}, {}),
        "ok": ONE_IN["serving_default"],
    }
    request = schemas.predict_request(sigs)
    assert valid(request, {"signature_name": "ok", "instances": [1.0]})
    assert not valid(request, {"instances": [1.0]}), "the default signature answers 501"
    assert not valid(schemas.predict_request({"serving_default": sigs["serving_default"]}), {"instances": [1.0]})


# --------------------------------------------------------------------------- the document

SPECIALS = {"/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics", "/openapi.json": "openapi"}


def document(**changes: Any) -> dict[str, Any]:
    surface = openapi.Surface(version="9.9", specials=SPECIALS, **changes)
    built = openapi.build(surface)
    validate(built)  # raises with the reason when the document is not valid OpenAPI 3.1
    return built


def test_the_bare_document_covers_every_route_family() -> None:
    paths = document()["paths"]
    for path in (
        "/v1/models/{model}",
        "/v1/models/{model}/versions/{version}/metadata",
        "/v1/models/{model}/labels/{label}:predict",
        "/model-serving/{deployment}:classify",
        "/v2/models/{model}/versions/{version}/infer",
        "/model-serving/{deployment}/v2/health/ready",
        *SPECIALS,
    ):
        assert path in paths, path
    assert document()["openapi"].startswith("3.1")


def test_concrete_paths_are_quoted_and_carry_their_signatures() -> None:
    odd = openapi.Servable("v1", "m/odd:name", label="my/label", signatures=ONE_IN)
    paths = document(servables=[odd])["paths"]
    prefix = "/v1/models/m%2Fodd%3Aname/labels/my%2Flabel"
    body = paths[f"{prefix}:predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == schemas.predict_request(ONE_IN)
    assert f"{prefix}:classify" not in paths, "no classify signature"


def test_error_statuses_and_auth() -> None:
    open_paths = document()["paths"]
    predict = open_paths["/v1/models/{model}:predict"]["post"]
    assert {"400", "404", "413", "415", "429", "503", "504"} <= set(predict["responses"])
    assert "401" not in predict["responses"] and "security" not in predict
    error = predict["responses"]["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}

    locked = document(auth=True, protected=frozenset({"openapi"}))
    predict = locked["paths"]["/v1/models/{model}:predict"]["post"]
    assert {"401", "403"} <= set(predict["responses"]) and predict["security"]
    assert "401" in locked["paths"]["/openapi.json"]["get"]["responses"]
    assert "401" not in locked["paths"]["/metrics"]["get"]["responses"], "metrics not in protected"
    assert set(locked["components"]["securitySchemes"]) == {"basicAuth", "bearerAuth", "apiKey"}


def test_the_client_deadline_header_is_documented_where_routes_bind() -> None:
    paths = document()["paths"]

    def headers(path: str, method: str) -> list[str]:
        return [p["name"] for p in paths[path][method].get("parameters", []) if p["in"] == "header"]

    for path, method in (("/v1/models/{model}", "get"), ("/v2/models/{model}/infer", "post")):
        assert headers(path, method) == ["X-Request-Timeout"], path
    deployment_health = paths["/model-serving/{deployment}/v2/health/live"]["get"]
    assert "X-Request-Timeout" in str(deployment_health["parameters"]) and "400" in deployment_health["responses"]
    for path in ("/v2/health/live", "/healthz", "/openapi.json"):
        assert headers(path, "get") == [], path
