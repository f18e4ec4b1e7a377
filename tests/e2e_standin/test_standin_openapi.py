"""/openapi.json in front of the ModelServer stand-in: the example models' schemas against TensorFlow's
own signatures, a version change seen by the document, and schemathesis against the live gateway.

TensorFlow is the oracle for shapes and dtypes: each SavedModel is loaded here and its serving
signature's TensorSpecs are compared with what the document says. Predict bodies the other
tests send (``CASES``) and the answers the gateway gives must validate against the document's
schemas, and schemathesis generates requests from the document and checks every answer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import schemathesis
import tensorflow as tf
from gateway_process import GatewayProcess
from hypothesis import HealthCheck, Phase, given, seed, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from prometheus_client import CollectorRegistry
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devserver.testing import DevServer
from gateway.config import Settings
from gateway.web.app import create_app

from .conftest import (
    CASES,
    DEPLOYMENTS,
    FORMATS,
    LATEST,
    SERVING_DEFAULT,
    AiohttpClient,
    Client,
    Format,
    PredictCase,
    failed,
    ok,
    version_dir,
)
from .test_standin_runtime_version import (  # noqa: F401  (fixtures, used by name)
    GENEROUS_WAIT,
    add_version,
    base_path,
    lone_standin,
    wait_for_available,
)

EXAMPLES_PER_OPERATION = 25
SCHEMATHESIS_SEED = 20261130
SHORT_DEADLINE_SECONDS = 1.0


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis's ``not_a_server_error``, except the 504 a client's own tiny deadline earns: the
    document lets ``X-Request-Timeout`` be any positive number, and 1e-300 seconds does run out."""
    deadline = float((case.headers or {}).get("X-Request-Timeout", "inf"))
    if response.status_code == 504 and deadline < SHORT_DEADLINE_SECONDS:
        return None
    result: bool | None = not_a_server_error(ctx, response, case)
    return result


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


async def document(client: Client) -> dict[str, Any]:
    result: dict[str, Any] = await ok(client, "GET", "/openapi.json")
    return result


UNKNOWN_SIGNATURE = {"signature_name": "no-such-signature", "instances": [0]}


async def warm(client: Client) -> None:
    """One predict per example model, so the signature cache (and the document) knows them all: an
    unknown signature name is refused only after the model's signatures were looked up."""
    for model in LATEST:
        error = await failed(client, "POST", f"/v1/models/{model}:predict", UNKNOWN_SIGNATURE, 400)
        assert "not found in signature def" in error, error


def _json_body(operation: Mapping[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = operation["requestBody"]["content"]["application/json"]["schema"]
    return schema


def _answer(operation: Mapping[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = operation["responses"]["200"]["content"]["application/json"]["schema"]
    return schema


def _variant(schema: dict[str, Any], signature: str) -> dict[str, Any]:
    """One signature's part of a request or answer schema (``anyOf`` when the model has several)."""
    variants = schema.get("anyOf", [schema])
    (found,) = [variant for variant in variants if variant.get("title") == signature]
    return found


# --------------------------------------------------------------------------- TensorFlow as the oracle


def _shape_and_leaf(schema: dict[str, Any]) -> tuple[list[int], dict[str, Any]]:
    """The dims nested arrays describe (-1 unbounded), and the element schema inside them."""
    dims = []
    while schema.get("type") == "array":
        fixed = schema.get("minItems") == schema.get("maxItems") and "maxItems" in schema
        dims.append(schema["maxItems"] if fixed else -1)
        schema = schema["items"]
    return dims, schema


NOT_JSON = (tf.float16, tf.bfloat16, tf.uint16, tf.complex64, tf.complex128)  # TF Serving's JSON carries none


def _expected_leaf(dtype: tf.DType, alias: str, output: bool) -> Any:
    if dtype in NOT_JSON:
        return "not carried"
    if dtype == tf.string:
        if output:
            return "b64" if alias.endswith("_bytes") else "string"
        return "b64-first" if alias.endswith("_bytes") else "string-first"
    if dtype.is_floating:
        return ("number", dtype.name.replace("float32", "float").replace("float64", "double"))
    if dtype.is_integer:
        info = np.iinfo(dtype.as_numpy_dtype)
        return ("integer", int(info.min), int(info.max))
    assert dtype == tf.bool
    return "boolean"


def _leaf_kind(leaf: dict[str, Any]) -> Any:
    if "type" not in leaf and "anyOf" not in leaf and "not convertible" in leaf.get("description", ""):
        return "not carried"
    if "anyOf" in leaf:
        return "b64-first" if "b64" in leaf["anyOf"][0].get("properties", {}) else "string-first"
    if leaf.get("type") == "object":
        return "b64"
    if leaf["type"] == "number":
        return ("number", leaf["format"])
    if leaf["type"] == "integer":
        return ("integer", leaf["minimum"], leaf["maximum"])
    return leaf["type"]


def _tensors(columnar: dict[str, Any], aliases: list[str], output: bool) -> dict[str, dict[str, Any]]:
    """Each alias's whole-tensor schema from a columnar schema (one tensor stands alone)."""
    if len(aliases) == 1:
        return {aliases[0]: columnar if output else columnar["anyOf"][0]}
    return {alias: columnar["properties"][alias] for alias in aliases}


def _check_specs(specs: Mapping[str, tf.TensorSpec], columnar: dict[str, Any], output: bool) -> None:
    aliases = sorted(specs)
    for alias, schema in _tensors(columnar, aliases, output).items():
        dims, leaf = _shape_and_leaf(schema)
        spec = specs[alias]
        assert dims == [-1 if size is None else size for size in spec.shape.as_list()], alias
        assert _leaf_kind(leaf) == _expected_leaf(spec.dtype, alias, output), alias


@pytest.mark.parametrize("model", sorted(LATEST))
async def test_example_schemas_match_their_signatures(
    standin_gateway: Client, standin_models: Path, model: str
) -> None:
    await warm(standin_gateway)
    predict = (await document(standin_gateway))["paths"][f"/v1/models/{model}:predict"]["post"]
    signatures = tf.saved_model.load(str(version_dir(standin_models, model))).signatures
    described = 0
    for name, function in signatures.items():
        inputs = function.structured_input_signature[1]
        if any(spec.dtype in (tf.float16, tf.bfloat16, tf.complex64, tf.complex128) for spec in inputs.values()):
            with pytest.raises(ValueError):  # REST cannot call it: left out of the request schema
                _variant(_json_body(predict), name)
            continue
        request = _variant(_json_body(predict), name)
        _check_specs(inputs, request["oneOf"][1]["properties"]["inputs"], output=False)
        answer = _variant(_answer(predict), name)
        _check_specs(function.structured_outputs, answer["oneOf"][1]["properties"]["outputs"], output=True)
        described += 1
    assert described, f"{model}: no signature described"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_real_bodies_and_answers_conform(standin_gateway: Client, case: PredictCase, fmt: Format) -> None:
    body = case.body(fmt)
    answer = await ok(standin_gateway, "POST", f"/v1/models/{case.model}:predict", body)
    predict = (await document(standin_gateway))["paths"][f"/v1/models/{case.model}:predict"]["post"]
    Draft202012Validator(_json_body(predict)).validate(body)
    Draft202012Validator(_answer(predict)).validate(answer)


async def test_the_document_validates(standin_gateway: Client) -> None:
    await warm(standin_gateway)
    described = await document(standin_gateway)
    validate(described)
    for name in DEPLOYMENTS:
        assert "description" in described["paths"][f"/model-serving/{name}:predict"]["post"], name
    assert "unavailable" not in json.dumps(described), "every deployment's signatures were fetched"


# --------------------------------------------------------------------------- a version changes


@pytest.fixture
def fresh_client(aiohttp_client: AiohttpClient, lone_standin: DevServer) -> Iterator[Any]:  # noqa: F811
    """A gateway in front of the lone stand-in whose signature cache keeps nothing fresh (TTL 0),
    so the document follows a new latest version at its next rebuild."""
    settings = Settings.from_mapping(
        {
            "backends": {"default": {"targets": [lone_standin.address]}},
            "deployments": {"hp2": {"model": "half_plus_two"}},
            "signature_cache": {"ttl_seconds": 0},
        }
    )

    async def make() -> Client:
        return await aiohttp_client(create_app(settings, registry=CollectorRegistry()))

    yield make


def _input_aliases(described: dict[str, Any], path: str) -> list[str]:
    request = _variant(_json_body(described["paths"][path]["post"]), SERVING_DEFAULT)
    columnar = request["oneOf"][1]["properties"]["inputs"]
    return sorted(columnar["properties"]) if "properties" in columnar else sorted(columnar["anyOf"][1]["properties"])


async def test_a_new_version_changes_the_document(
    fresh_client: Any,
    base_path: Path,  # noqa: F811  (the imported fixture, by name)
    standin_models: Path,
) -> None:
    client = await fresh_client()
    before = await document(client)
    assert _input_aliases(before, "/model-serving/hp2:predict") == ["x"]
    assert "/v1/models/half_plus_two/versions/3:predict" not in before["paths"]

    # Version 3 is multi_io's SavedModel: another signature, so the document must change.
    add_version(base_path, version_dir(standin_models, "multi_io", 1), 3)
    await wait_for_available(client, "3", time.monotonic() + GENEROUS_WAIT)
    multi_io = next(case for case in CASES if case.model == "multi_io")
    await ok(client, "POST", "/v1/models/half_plus_two/versions/3:predict", multi_io.body("row"))

    after = await document(client)
    validate(after)
    assert _input_aliases(after, "/v1/models/half_plus_two/versions/3:predict") == ["a", "b", "s"]
    assert _input_aliases(after, "/model-serving/hp2:predict") == ["a", "b", "s"], "latest is now version 3"


# --------------------------------------------------------------------------- schemathesis


@pytest.fixture
async def standin_gateway_process(standin: DevServer) -> Any:
    config = {
        "backends": {"default": {"targets": [standin.address]}},
        "deployments": {name: dict(spec) for name, spec in DEPLOYMENTS.items()},
    }
    async with GatewayProcess(config) as gateway:
        yield gateway


def _operations(url: str) -> Iterator[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    for result in schema.get_all_operations():
        yield result.ok()


def _run(operation: Any, url: str) -> None:
    @seed(SCHEMATHESIS_SEED)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=bool(os.environ.get("CI")),
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy())
    def check(case: Any) -> None:
        case.call_and_validate(base_url=url, checks=CHECKS, timeout=30)

    check()


async def test_schemathesis_finds_nothing(standin_gateway_process: GatewayProcess) -> None:
    url = standin_gateway_process.url
    for model in LATEST:  # every example model seen, so each has concrete paths to test
        reply = requests.post(f"{url}/v1/models/{model}:predict", json=UNKNOWN_SIGNATURE, timeout=30)
        assert "not found in signature def" in reply.text, reply.text
    failures: dict[str, str] = {}
    operations = list(_operations(url))
    assert len(operations) > 100, len(operations)
    for operation in operations:
        try:
            _run(operation, url)
        except Exception as exc:
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
