"""Fixtures and helpers for the end-to-end tests against the ModelServer stand-in.

Every request here goes through real HTTP into the gateway (aiohttp on 127.0.0.1:0), over
real gRPC into a ``python -m devserver`` subprocess, which runs the example SavedModels with
TensorFlow. TensorFlow in the test process is the oracle: the same SavedModel, loaded here
and called on the same inputs, must give exactly the numbers the gateway prints.

- ``standin_models``: the example models, built once per session into a temp dir.
- ``standin_config``: ``examples/models.config`` pointing at them.
- ``standin``: one stand-in serving that config for the whole session.
- ``make_standin_gateway(address)``: a gateway in front of any stand-in, with ``DEPLOYMENTS``.
- ``standin_gateway``: ``make_standin_gateway(standin.address)``.

Helpers (imported by the tests): ``call``/``ok``/``failed`` send one request and check the
JSON envelope; ``PredictCase`` and ``CASES`` are predict requests on every model;
``tf_outputs`` is the oracle; ``assert_predict_matches`` compares a predict answer to it;
``examples_body``/``example_oracle``/``assert_classified``/``assert_f32_results`` do the same
for classify and regress; ``versions_and_states`` reads a status answer.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import pytest
import tensorflow as tf
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from tensorflow.core.example import example_pb2, feature_pb2

from devserver.testing import DevServer, running_devserver
from gateway.config import Settings
from gateway.web.app import create_app

Client: TypeAlias = TestClient[Any, Any]
AiohttpClient: TypeAlias = Callable[..., Awaitable[Client]]
MakeGateway: TypeAlias = Callable[[str], Awaitable[Client]]
Format = Literal["row", "columnar"]
FORMATS: tuple[Format, ...] = ("row", "columnar")

POLL_WAIT_SECONDS = 0.5
JSON_CONTENT_TYPE = "application/json"
HALF_PLUS_TWO = "half_plus_two"
DEPLOYMENTS: dict[str, dict[str, Any]] = {
    "hp2": {"model": HALF_PLUS_TWO},
    "hp2-v1": {"model": HALF_PLUS_TWO, "version": 1},
    "hp2-canary": {"model": HALF_PLUS_TWO, "label": "canary"},
    "digits": {"model": "mnist"},
}
HP2 = "/v1/models/half_plus_two"
# URL prefix -> the half_plus_two version that must answer a request sent there
HP2_ROUTES = {
    HP2: 2,
    f"{HP2}/versions/1": 1,
    f"{HP2}/labels/stable": 1,
    f"{HP2}/labels/canary": 2,
    "/model-serving/hp2": 2,
    "/model-serving/hp2-v1": 1,
    "/model-serving/hp2-canary": 2,
    "/model-serving/hp2/versions/1": 1,
}
LATEST = {HALF_PLUS_TWO: 2, "multi_io": 1, "string_bytes": 1, "mnist": 1, "dtypes": 1}
SERVING_DEFAULT = "serving_default"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def standin_models(example_models: Path) -> Path:
    return example_models


@pytest.fixture(scope="session")
def standin_config(example_models_config: Path) -> Path:
    return example_models_config


@pytest.fixture(scope="session")
def standin(standin_config: Path) -> Iterator[DevServer]:
    with running_devserver(standin_config, poll_wait_seconds=POLL_WAIT_SECONDS) as server:
        yield server


def gateway_app(address: str) -> web.Application:
    """The gateway with every model routed to the stand-in at address, plus DEPLOYMENTS."""
    settings = Settings.from_mapping(
        {
            "backends": {"default": {"targets": [address]}},
            "deployments": {name: dict(spec) for name, spec in DEPLOYMENTS.items()},
        }
    )
    app: web.Application = create_app(settings, registry=CollectorRegistry())
    return app


@pytest.fixture
def make_standin_gateway(aiohttp_client: AiohttpClient) -> MakeGateway:
    async def make(address: str) -> Client:
        return await aiohttp_client(gateway_app(address))

    return make


@pytest.fixture
async def standin_gateway(make_standin_gateway: MakeGateway, standin: DevServer) -> AsyncIterator[Client]:
    yield await make_standin_gateway(standin.address)


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    text: str


async def call(client: Client, method: str, path: str, body: Any = None) -> Reply:
    """One request; the reply must be JSON (bare NaN/Infinity allowed) with TF Serving's Content-Type."""
    data = None if body is None else json.dumps(body, allow_nan=True)
    async with client.request(method, path, data=data) as response:
        text = await response.text()
        assert response.headers.get("Content-Type") == JSON_CONTENT_TYPE, (method, path, response.headers, text)
        return Reply(response.status, json.loads(text), text)


async def ok(client: Client, method: str, path: str, body: Any = None) -> Any:
    """The parsed body of a request that must succeed."""
    reply = await call(client, method, path, body)
    assert reply.status == 200, (method, path, reply.text)
    return reply.body


async def failed(client: Client, method: str, path: str, body: Any, status: int) -> str:
    """The ``error`` text of a request that must fail with status; ``error`` must be the first key."""
    reply = await call(client, method, path, body)
    assert reply.status == status, (method, path, reply.text)
    assert isinstance(reply.body, dict) and next(iter(reply.body), None) == "error", reply.text
    error = reply.body["error"]
    assert isinstance(error, str)
    return error


# --------------------------------------------------------------------------- oracle


def version_dir(models: Path, model: str, version: int | None = None) -> Path:
    return models / model / str(LATEST[model] if version is None else version)


@functools.cache
def _signature(model_dir: Path, signature: str) -> Any:
    return tf.saved_model.load(str(model_dir)).signatures[signature]


def tf_outputs(model_dir: Path, inputs: Mapping[str, np.ndarray], signature: str = SERVING_DEFAULT) -> dict[str, Any]:
    """What TensorFlow computes for the SavedModel's signature on inputs (the oracle)."""
    outputs = _signature(model_dir, signature)(**{alias: tf.constant(value) for alias, value in inputs.items()})
    return {alias: tensor.numpy() for alias, tensor in outputs.items()}


# --------------------------------------------------------------------------- predict requests


def _map_leaves(value: Any, read: Callable[[Any], Any]) -> Any:
    return [_map_leaves(item, read) for item in value] if isinstance(value, list) else read(value)


def _json_value(value: np.ndarray | np.generic | bytes, b64: bool) -> Any:
    """A tensor (or one row of it) as JSON: numbers as they are, strings as text or {"b64": ...}."""

    def leaf(item: Any) -> Any:
        if not isinstance(item, bytes):
            return item
        return {"b64": base64.b64encode(item).decode()} if b64 else item.decode()

    return _map_leaves(value if isinstance(value, bytes) else value.tolist(), leaf)


@dataclass(frozen=True)
class PredictCase:
    """A predict request on a model, with the inputs the oracle gets too."""

    id: str
    model: str
    inputs: Mapping[str, np.ndarray]
    b64_inputs: frozenset[str] = frozenset()
    named: bool = False  # single-input models: send {"x": ...} objects anyway

    def _value(self, alias: str, array: np.ndarray | np.generic | bytes) -> Any:
        return _json_value(array, alias in self.b64_inputs)

    def body(self, fmt: Format) -> dict[str, Any]:
        named = self.named or len(self.inputs) > 1
        if fmt == "columnar":
            values = {alias: self._value(alias, array) for alias, array in self.inputs.items()}
            return {"inputs": values if named else next(iter(values.values()))}
        batch = len(next(iter(self.inputs.values())))
        rows = [{alias: self._value(alias, array[i]) for alias, array in self.inputs.items()} for i in range(batch)]
        return {"instances": rows if named else [next(iter(row.values())) for row in rows]}


def strings(*texts: str) -> np.ndarray:
    return np.array([text.encode() for text in texts], dtype=object)


_MNIST_IMAGES = np.random.default_rng(784).random((4, 784), dtype=np.float32)
_HALF_PLUS_TWO_X = np.array([1.0, 2.0, 0.1, -3.25, 1e-8, 3.4e38, np.inf, -np.inf, np.nan], dtype=np.float32)

CASES: tuple[PredictCase, ...] = (
    PredictCase("half_plus_two", HALF_PLUS_TWO, {"x": _HALF_PLUS_TWO_X}),
    PredictCase("half_plus_two-named", HALF_PLUS_TWO, {"x": _HALF_PLUS_TWO_X}, named=True),
    PredictCase(
        "multi_io",
        "multi_io",
        {
            "a": np.array([[1.0, 2.0, 3.0], [0.1, 0.2, 0.3], [-1.5, 1e10, 7.0]], dtype=np.float32),
            "b": np.array([7, -(2**40), 2**53 + 1], dtype=np.int64),
            "s": strings("héllo wörld", "abc", ""),
        },
    ),
    PredictCase("string_bytes", "string_bytes", {"text": strings("hello", "ünïcödé ✓", "")}),
    PredictCase("string_bytes-b64", "string_bytes", {"text": strings("hello", "ünïcödé ✓", "")}, frozenset({"text"})),
    PredictCase("mnist", "mnist", {"images": _MNIST_IMAGES}),
)


# --------------------------------------------------------------------------- predict answers


def _leaf_reader(dtype: np.dtype[Any], alias: str) -> Callable[[Any], Any]:
    """Check one JSON leaf has the type TF Serving writes for dtype, and return its value."""

    def number(kind: type) -> Callable[[Any], Any]:
        def read(value: Any) -> Any:
            assert type(value) is kind, f"{alias}: {value!r} is not a JSON {kind.__name__}"
            return value

        return read

    def text(value: Any) -> bytes:
        assert type(value) is str, f"{alias}: {value!r} is not a JSON string"
        return value.encode()

    def b64(value: Any) -> bytes:
        assert isinstance(value, dict) and list(value) == ["b64"], f"{alias}: {value!r} is not a b64 object"
        return base64.b64decode(value["b64"], validate=True)

    if dtype.kind == "O":
        return b64 if alias.endswith("_bytes") else text
    if dtype.kind == "b":
        return number(bool)
    return number(float if np.issubdtype(dtype, np.floating) else int)


def assert_tensor(value: Any, expected: np.ndarray, alias: str) -> None:
    """A JSON tensor equals expected exactly: shape, dtype, every value (NaN equals NaN)."""
    actual = np.array(_map_leaves(value, _leaf_reader(expected.dtype, alias)), dtype=expected.dtype)
    np.testing.assert_array_equal(actual, expected, err_msg=alias, strict=True)


def output_columns(body: Any, fmt: Format, aliases: Sequence[str]) -> dict[str, Any]:
    """Each output's whole tensor as JSON lists, from a row or columnar predict answer."""
    key = "predictions" if fmt == "row" else "outputs"
    assert isinstance(body, dict) and list(body) == [key], body
    answer = body[key]
    if len(aliases) == 1:
        return {aliases[0]: answer}
    if fmt == "columnar":
        assert isinstance(answer, dict) and sorted(answer) == sorted(aliases), answer
        return dict(answer)
    assert isinstance(answer, list), answer
    for row in answer:
        assert isinstance(row, dict) and sorted(row) == sorted(aliases), row
    return {alias: [row[alias] for row in answer] for alias in aliases}


def assert_predict_matches(body: Any, fmt: Format, expected: Mapping[str, np.ndarray]) -> None:
    columns = output_columns(body, fmt, sorted(expected))
    for alias, tensor in expected.items():
        assert_tensor(columns[alias], tensor, alias)


def versions_and_states(body: Any) -> list[tuple[str, str]]:
    """(version, state) of each entry of a status answer, in the order printed."""
    assert isinstance(body, dict) and list(body) == ["model_version_status"], body
    return [(entry["version"], entry["state"]) for entry in body["model_version_status"]]


# --------------------------------------------------------------------------- classify and regress

EXAMPLE_XS = (1.0, 2.5, -4.0, 0.1, 1e-7, 3e38)
CLASSIFY = "classify_x_to_y"
REGRESS = "regress_x_to_y"


def serialized_examples(xs: Sequence[float]) -> np.ndarray:
    """What {"x": x} examples must become: serialized tf.Examples with one float feature."""
    examples = [
        example_pb2.Example(
            features=feature_pb2.Features(
                feature={"x": feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[x]))}
            )
        )
        for x in xs
    ]
    return np.array([example.SerializeToString() for example in examples], dtype=object)


def examples_body(signature: str, xs: Sequence[float] = EXAMPLE_XS) -> dict[str, Any]:
    return {"signature_name": signature, "examples": [{"x": x} for x in xs]}


def example_oracle(model_dir: Path, signature: str, xs: Sequence[float] = EXAMPLE_XS) -> np.ndarray:
    """The signature's only output on the serialized examples, as TensorFlow computes it."""
    (output,) = tf_outputs(model_dir, {"inputs": serialized_examples(xs)}, signature).values()
    result: np.ndarray = output
    return result


def assert_f32_results(values: Any, expected: np.ndarray) -> None:
    """JSON floats that read back as float32 are exactly expected."""
    assert isinstance(values, list) and all(type(value) is float for value in values), values
    np.testing.assert_array_equal(np.array(values, dtype=np.float32), expected, strict=True)


def assert_classified(answer: Any, scores: np.ndarray) -> None:
    """One [label, score] pair per example; the signature has no classes, so labels are ""."""
    assert isinstance(answer, dict) and list(answer) == ["results"], answer
    results = answer["results"]
    assert isinstance(results, list) and len(results) == len(scores), results
    assert all(len(classes) == 1 and classes[0][0] == "" for classes in results), results
    assert_f32_results([classes[0][1] for classes in results], scores[:, 0])


def assert_regressed(answer: Any, values: np.ndarray) -> None:
    assert isinstance(answer, dict) and list(answer) == ["results"], answer
    assert_f32_results(answer["results"], values)
