"""Declarative end-to-end rows, in the style of Envoy's ``testTranscoding``.

A :class:`Row` says: this HTTP request goes in; the fake ModelServer must see this gRPC
call; it answers with this reply; this HTTP response must come out. :func:`run_row`
plays one row through a real gateway and a real fake backend, and fails with a report
that lists every mismatch, the response and the gRPC calls seen::

    Row("predict-row", "POST", "/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0]},
        expect_grpc={"method": "Predict", "model_spec": {"name": "half_plus_two"},
                     "inputs": {"x": np.array([1.0, 2.0], np.float32)}},
        expect_json={"predictions": [2.5, 3.0]})

``expect_grpc`` is a partial message (nested dicts over field names) of the *latest*
call of ``"method"``; in it, an ``np.ndarray`` matches a TensorProto (dtype, shape,
values, NaN-aware), an int matches an ``Int64Value``, ``None`` means "not set", a str
matches an enum by name, a message matches by equality, a callable is a predicate,
``"metadata"`` checks invocation metadata, and map fields must have exactly the keys
given. :class:`NoCall` says a method must not have been called. ``expect_json`` is the
exact parsed body (type-strict: ``3`` is not ``3.0``; NaN equals NaN) with predicates
allowed anywhere inside, or one predicate for the whole body (:func:`error`,
:func:`error_facts`).
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from fake_backend import (
    CLASSIFY_METHOD,
    METHODS,
    REGRESS_METHOD,
    FakeModelServer,
    Reply,
    dtype_enum,
    signature,
    tensor_shape,
    to_ndarray,
)
from google.protobuf import text_format
from google.protobuf.message import Message
from multidict import CIMultiDictProxy
from prometheus_client import CollectorRegistry
from yarl import URL

GatewayClient: TypeAlias = TestClient[Any, Any]
MakeGatewayClient: TypeAlias = Callable[..., Awaitable[GatewayClient]]
Problems: TypeAlias = list[str]
LARGE_BODY_BYTES = 1 << 20  # aiohttp wants bigger bodies as a stream
Check: TypeAlias = Callable[[Any], "bool | Problems"]
Prepare: TypeAlias = Callable[[FakeModelServer], Awaitable[None]]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class NoCall:
    """The fake must not have received any call of ``method``."""

    method: str


GrpcExpectation: TypeAlias = Mapping[str, Any] | NoCall | Callable[[FakeModelServer], "bool | Problems"]


@dataclass(frozen=True)
class Row:
    """One end-to-end behaviour: HTTP in -> gRPC seen -> gRPC out -> HTTP out."""

    id: str
    method: str
    path: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    expect_grpc: GrpcExpectation | None = None
    grpc_reply: Reply | Mapping[str, Reply] | None = None
    expect_status: int | frozenset[int] = 200
    expect_json: Any = UNSET
    expect_headers: Mapping[str, str] = field(default_factory=dict)
    expect_text: Check | None = None
    settings: Mapping[str, Any] | None = None
    prepare: Prepare | None = None

    def __repr__(self) -> str:
        return f"Row({self.id}: {self.method} {self.path})"


# --------------------------------------------------------------------------- JSON


def parse_json(text: str) -> Any:
    """Parse a response body; bare NaN/Infinity are accepted, duplicate keys are not."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicated = sorted({key for key in keys if keys.count(key) > 1})
    if duplicated:
        raise ValueError(f"duplicate keys in response object: {duplicated}")
    return dict(pairs)


def dump_json(value: Any) -> bytes:
    """Request bodies: Python's encoder writes NaN/Infinity tokens as TF Serving reads them."""
    return json.dumps(value, allow_nan=True).encode()


def _run_check(check: Check, actual: Any, path: str) -> Problems:
    result = check(actual)
    if isinstance(result, bool | np.bool_):
        return [] if result else [f"{path}: {check!r} rejected {_short(actual)}"]
    return [f"{path}: {problem}" for problem in result]


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def json_diff(expected: Any, actual: Any, path: str = "$") -> Problems:
    """Type-strict, NaN-aware differences between an expected and a parsed JSON value."""
    if callable(expected):
        return _run_check(expected, actual, path)
    if type(expected) is not type(actual):
        return [
            f"{path}: expected {_short(expected)} ({type(expected).__name__}), "
            f"got {_short(actual)} ({type(actual).__name__})"
        ]
    if isinstance(expected, dict):
        return _dict_diff(expected, actual, path)
    if isinstance(expected, list):
        return _list_diff(expected, actual, path)
    if _is_nan(expected) and _is_nan(actual):
        return []
    return [] if expected == actual else [f"{path}: expected {_short(expected)}, got {_short(actual)}"]


def _dict_diff(expected: dict[str, Any], actual: dict[str, Any], path: str) -> Problems:
    problems = [f"{path}: missing key {key!r}" for key in expected if key not in actual]
    problems += [f"{path}: unexpected key {key!r}" for key in actual if key not in expected]
    for key in expected.keys() & actual.keys():
        problems += json_diff(expected[key], actual[key], f"{path}.{key}")
    return problems


def _sequence_diff(
    diff: Callable[[Any, Any, str], Problems], expected: Sequence[Any], actual: Sequence[Any], path: str
) -> Problems:
    if len(expected) != len(actual):
        return [f"{path}: expected {len(expected)} items, got {len(actual)}: {_short([_text(a) for a in actual])}"]
    problems: Problems = []
    for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
        problems += diff(want, got, f"{path}[{index}]")
    return problems


def _list_diff(expected: list[Any], actual: list[Any], path: str) -> Problems:
    return _sequence_diff(json_diff, expected, actual, path)


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


# --------------------------------------------------------------------------- predicates


@dataclass(frozen=True)
class F32:
    """A JSON float that must equal ``value`` once both are rounded to float32."""

    value: float

    def __call__(self, actual: Any) -> bool:
        return isinstance(actual, float) and bool(np.float32(actual) == np.float32(self.value))


@dataclass(frozen=True)
class Floats32:
    """A (nested) JSON list of floats equal, in float32, to ``values``."""

    values: Any

    def __call__(self, actual: Any) -> bool:
        expected = np.asarray(self.values, dtype=np.float32)
        try:
            got = np.asarray(actual, dtype=np.float32)
        except (TypeError, ValueError):
            return False
        return got.shape == expected.shape and bool(np.array_equal(got, expected, equal_nan=True))


def _envelope_problems(body: Any) -> tuple[str | None, Problems]:
    if not isinstance(body, dict) or not body:
        return None, [f"not an error envelope: {_short(body)}"]
    first = next(iter(body))
    if first != "error":
        return None, [f"first key must be 'error', got {first!r} in {_short(body)}"]
    message = body["error"]
    if not isinstance(message, str) or not message:
        return None, [f"'error' must be a non-empty string, got {_short(message)}"]
    return message, []


@dataclass(frozen=True)
class error:
    """An ``{"error": msg, ...}`` envelope (error first) whose message is exactly ``message``."""

    message: str

    def __call__(self, body: Any) -> Problems:
        found, problems = _envelope_problems(body)
        if found is not None and found != self.message:
            problems.append(f"error message: expected {self.message!r}, got {found!r}")
        return problems


@dataclass(frozen=True)
class error_facts:
    """An envelope whose message carries facts, not a fixed wording.

    ``contains``: substrings that must appear verbatim (names, quoted texts);
    ``icontains``: substrings matched case-insensitively (type names like ``float``);
    ``numbers``: integers that must appear as whole numbers (element index, sizes);
    ``any_of``: groups of alternatives, one of each group must appear (case-insensitive).
    """

    contains: Sequence[str] = ()
    icontains: Sequence[str] = ()
    numbers: Sequence[int] = ()
    any_of: Sequence[Sequence[str]] = ()

    def __call__(self, body: Any) -> Problems:
        message, problems = _envelope_problems(body)
        if message is None:
            return problems
        lower = message.lower()
        problems += [f"error {message!r} lacks {text!r}" for text in self.contains if text not in message]
        problems += [
            f"error {message!r} lacks {text!r} (any case)" for text in self.icontains if text.lower() not in lower
        ]
        problems += [
            f"error {message!r} lacks the number {number}"
            for number in self.numbers
            if not re.search(rf"(?<![\d.]){number}(?![\d.])", message)
        ]
        problems += [
            f"error {message!r} lacks one of {list(group)}"
            for group in self.any_of
            if not any(text.lower() in lower for text in group)
        ]
        return problems


def envelope(body: Any) -> Problems:
    """Any well-formed error envelope."""
    return _envelope_problems(body)[1]


# --------------------------------------------------------------------------- gRPC matching


def match_message(expected: Any, actual: Any, path: str) -> Problems:
    """Differences between a partial-message expectation and a received message or value."""
    if callable(expected) and not isinstance(expected, type):
        return _run_check(expected, actual, path)
    if isinstance(expected, Message):
        return [] if expected == actual else [f"{path}: expected\n{_text(expected)}\ngot\n{_text(actual)}"]
    if isinstance(expected, np.ndarray):
        return _tensor_diff(expected, actual, path)
    if isinstance(expected, Mapping):
        return _fields_diff(expected, actual, path)
    if isinstance(expected, list):
        return _repeated_diff(expected, list(actual), path)
    return [] if expected == actual else [f"{path}: expected {_short(expected)}, got {_short(actual)}"]


def _fields_diff(expected: Mapping[str, Any], actual: Message, path: str) -> Problems:
    problems: Problems = []
    for name, want in expected.items():
        descriptor = actual.DESCRIPTOR.fields_by_name.get(name)
        if descriptor is None:
            problems.append(f"{path}: {actual.DESCRIPTOR.full_name} has no field {name!r}")
        else:
            problems += _field_diff(descriptor, want, actual, f"{path}.{name}")
    return problems


def _field_diff(descriptor: Any, want: Any, message: Message, path: str) -> Problems:
    value = getattr(message, descriptor.name)
    if _is_map(descriptor):
        return _map_diff(want, value, path)
    if want is None:
        return [f"{path}: expected unset, got {_short(value)}"] if _present(descriptor, message) else []
    if descriptor.message_type is not None and descriptor.message_type.name == "Int64Value" and isinstance(want, int):
        if not message.HasField(descriptor.name):
            return [f"{path}: expected {want}, got unset"]
        return [] if value.value == want else [f"{path}: expected {want}, got {value.value}"]
    if descriptor.enum_type is not None and isinstance(want, str):
        got = _enum_name(descriptor, value)
        return [] if got == want else [f"{path}: expected {want}, got {got}"]
    return match_message(want, value, path)


def _is_map(descriptor: Any) -> bool:
    message_type = descriptor.message_type
    return message_type is not None and message_type.GetOptions().map_entry


def _present(descriptor: Any, message: Message) -> bool:
    if descriptor.is_repeated:
        return len(getattr(message, descriptor.name)) > 0
    if descriptor.has_presence:
        return message.HasField(descriptor.name)
    return bool(getattr(message, descriptor.name))


def _enum_name(descriptor: Any, number: int) -> str:
    assert descriptor.enum_type is not None
    value = descriptor.enum_type.values_by_number.get(number)
    return value.name if value is not None else str(number)


def _map_diff(want: Mapping[str, Any], value: Any, path: str) -> Problems:
    if set(want) != set(value):
        return [f"{path}: expected keys {sorted(want)}, got {sorted(value)}"]
    problems: Problems = []
    for key in want:
        problems += match_message(want[key], value[key], f"{path}[{key!r}]")
    return problems


def _repeated_diff(want: list[Any], got: list[Any], path: str) -> Problems:
    return _sequence_diff(match_message, want, got, path)


def _tensor_diff(expected: np.ndarray[Any, Any], proto: Any, path: str) -> Problems:
    want_dtype = dtype_enum("DT_STRING" if expected.dtype == object else expected.dtype)
    problems: Problems = []
    if proto.dtype != want_dtype:
        problems.append(f"{path}: dtype expected {want_dtype}, got {proto.dtype}")
    if tensor_shape(proto) != expected.shape:
        problems.append(f"{path}: shape expected {list(expected.shape)}, got {list(tensor_shape(proto))}")
    if problems:
        return problems
    got = to_ndarray(proto)
    nan_ok = expected.dtype.kind == "f"
    if not np.array_equal(got, expected, equal_nan=nan_ok):
        problems.append(f"{path}: values expected {_short(expected.tolist())}, got {_short(got.tolist())}")
    return problems


def _text(message: Any, limit: int = 1500) -> str:
    if not isinstance(message, Message):
        return _short(message)
    text = text_format.MessageToString(message, as_one_line=True)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def grpc_problems(expectation: GrpcExpectation | None, fake: FakeModelServer) -> Problems:
    """Check what the fake received against a row's ``expect_grpc``."""
    if expectation is None:
        return []
    if isinstance(expectation, NoCall):
        calls = fake.calls(expectation.method)
        return [f"gRPC: expected no {expectation.method} call, got {len(calls)}"] if calls else []
    if callable(expectation):
        return _run_check(expectation, fake, "gRPC")
    wanted = dict(expectation)
    method = wanted.pop("method")
    calls = fake.calls(method)
    if not calls:
        return [f"gRPC: expected a {method} call, got {fake.methods()}"]
    call = calls[-1]
    metadata = wanted.pop("metadata", {})
    problems = [
        f"gRPC metadata {key!r}: expected {value!r}, got {call.metadata.get(key)!r}"
        for key, value in metadata.items()
        if call.metadata.get(key) != value
    ]
    return problems + match_message(wanted, call.request, f"gRPC {method}")


# --------------------------------------------------------------------------- running


def rpc_for(method: str, path: str) -> str:
    """The gRPC method a REST request implies (for bare ``grpc_reply`` values)."""
    raw = path.split("?", 1)[0]
    for verb, rpc in ((":predict", "Predict"), (":classify", "Classify"), (":regress", "Regress")):
        if raw.endswith(verb):
            return rpc
    return "GetModelMetadata" if raw.endswith("/metadata") else "GetModelStatus"


def script(fake: FakeModelServer, row: Row) -> None:
    """Install a row's replies on the fake (sticky for the whole row)."""
    if row.grpc_reply is None:
        return
    if isinstance(row.grpc_reply, Mapping) and set(row.grpc_reply) <= set(METHODS):
        for method, reply in row.grpc_reply.items():
            fake.set_reply(method, reply)
        return
    named = row.expect_grpc.get("method") if isinstance(row.expect_grpc, Mapping) else None
    fake.set_reply(str(named or rpc_for(row.method, row.path)), row.grpc_reply)  # type: ignore[arg-type]


def request_bytes(body: Any) -> bytes | None:
    """A row body as bytes: bytes as they are, None as no body, anything else as JSON."""
    if body is None or isinstance(body, bytes):
        return body
    return dump_json(body)


def raw_url(client: TestClient[Any, Any], path: str) -> URL:
    """The gateway URL for ``path`` exactly as written (no normalisation or re-encoding)."""
    server = client.server
    return URL(f"{server.scheme}://{server.host}:{server.port}{path}", encoded=True)


async def send(client: TestClient[Any, Any], row: Row) -> tuple[ClientResponse, str]:
    """Play a row's HTTP request; the response and its body text."""
    data = request_bytes(row.body)
    headers = dict(row.headers)
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    payload = io.BytesIO(data) if data is not None and len(data) > LARGE_BODY_BYTES else data
    async with client.session.request(row.method, raw_url(client, row.path), data=payload, headers=headers) as resp:
        return resp, await resp.text(encoding="utf-8", errors="surrogateescape")


def http_problems(row: Row, status: int, headers: CIMultiDictProxy[str], text: str) -> Problems:
    """Check the HTTP response against a row."""
    problems: Problems = []
    allowed = row.expect_status if isinstance(row.expect_status, frozenset) else frozenset({row.expect_status})
    if status not in allowed:
        problems.append(f"status: expected {sorted(allowed)}, got {status}")
    mime = headers.get("Content-Type", "").split(";", 1)[0].strip()
    if mime != "application/json":
        problems.append(f"Content-Type: expected application/json, got {headers.get('Content-Type')!r}")
    problems += [
        f"header {name}: expected {value!r}, got {headers.get(name)!r}"
        for name, value in row.expect_headers.items()
        if headers.get(name) != value
    ]
    if row.expect_text is not None:
        problems += _run_check(row.expect_text, text, "body text")
    return problems + _body_problems(row, text)


def _body_problems(row: Row, text: str) -> Problems:
    try:
        body = parse_json(text)
    except ValueError as exc:
        return [f"body is not JSON: {exc}"]
    if row.expect_json is UNSET:
        return []
    return json_diff(row.expect_json, body, "$")


def report(row: Row, problems: Problems, status: int | None, text: str, fake: FakeModelServer) -> str:
    """A readable account of a failed row."""
    body = request_bytes(row.body) or b""
    calls = "\n".join(f"    {call.method}: {_text(call.request)}" for call in fake.received) or "    (none)"
    lines = [
        f"row {row.id!r}: {row.method} {row.path}",
        f"  request body: {body[:500]!r}{'...' if len(body) > 500 else ''}",
        "  problems:",
        *(f"    - {problem}" for problem in problems),
        f"  response: {status} {text[:2000]!r}",
        "  gRPC calls seen:",
        calls,
    ]
    return "\n".join(lines)


async def run_row(client: TestClient[Any, Any], fake: FakeModelServer, row: Row) -> None:
    """HTTP in -> gRPC seen -> gRPC out -> HTTP out; fail with a full report on any mismatch."""
    script(fake, row)
    if row.prepare is not None:
        await row.prepare(fake)
    resp, text = await send(client, row)
    problems = grpc_problems(row.expect_grpc, fake) + http_problems(row, resp.status, resp.headers, text)
    if problems:
        raise AssertionError(report(row, problems, resp.status, text, fake))


# --------------------------------------------------------------------------- model zoo

MODEL = "half_plus_two"
ODD_NAME = "modelname!#$%&'()*+,/:;=?@[]"
UNSUPPORTED_DTYPES = ("DT_HALF", "DT_BFLOAT16", "DT_UINT16")
SUPPORTED_DTYPES = (
    "DT_FLOAT",
    "DT_DOUBLE",
    "DT_INT32",
    "DT_INT16",
    "DT_INT8",
    "DT_UINT8",
    "DT_INT64",
    "DT_UINT32",
    "DT_UINT64",
    "DT_BOOL",
    "DT_STRING",
)

HALF_PLUS_TWO = signature(inputs={"x": ("DT_FLOAT", [-1])}, outputs={"y": ("DT_FLOAT", [-1])})
HALF_PLUS_TWO_SIGNATURES = {
    "serving_default": HALF_PLUS_TWO,
    "classify_x_to_y": signature({"inputs": ("DT_STRING", [-1])}, {"scores": ("DT_FLOAT", [-1, 2])}, CLASSIFY_METHOD),
    "regress_x_to_y": signature({"inputs": ("DT_STRING", [-1])}, {"outputs": ("DT_FLOAT", [-1])}, REGRESS_METHOD),
}
MULTI = signature(
    inputs={"alpha": ("DT_FLOAT", [-1]), "beta": ("DT_FLOAT", [-1, -1])},
    outputs={"y_alpha": ("DT_FLOAT", [-1]), "y_beta": ("DT_FLOAT", [-1, -1])},
)


def _dtype_signature(dtype: str, output: str = "y") -> Any:
    return signature(inputs={"x": (dtype, None)}, outputs={output: (dtype, None)})


def dtype_signatures() -> dict[str, Any]:
    """One signature per dtype, named like ``int32``: input ``x`` -> output ``y`` (echo)."""
    sigs = {dtype[3:].lower(): _dtype_signature(dtype) for dtype in SUPPORTED_DTYPES + UNSUPPORTED_DTYPES}
    sigs["string_bytes"] = _dtype_signature("DT_STRING", "y_bytes")
    sigs["serving_default"] = sigs["float"]
    return sigs


def install_models(fake: FakeModelServer) -> None:
    """The standard zoo the end-to-end rows are written against.

    - ``half_plus_two``: versions 1 and 2 (labels ``stable`` -> 1, ``canary`` -> 2);
      ``serving_default`` x -> y = x * 0.5 + 2, plus classify and regress signatures;
    - ``multi``: inputs ``alpha`` [-1], ``beta`` [-1, -1] -> ``y_alpha``, ``y_beta`` (each x * 0.5 + 2);
    - ``types``: version 1, one echo signature per dtype (see :func:`dtype_signatures`);
    - ``modelname!#$%&'()*+,/:;=?@[]``: half_plus_two again, version 1, label ``my/label``.
    """
    fake.add_model(
        MODEL,
        versions={1: HALF_PLUS_TWO_SIGNATURES, 2: HALF_PLUS_TWO_SIGNATURES},
        labels={"stable": 1, "canary": 2},
    )
    fake.add_model("multi", versions={1: {"serving_default": MULTI}})
    fake.add_model("types", versions={1: dtype_signatures()})
    fake.add_model(ODD_NAME, versions={1: {"serving_default": HALF_PLUS_TWO}}, labels={"my/label": 1})


DEPLOYMENTS: dict[str, dict[str, Any]] = {
    "my-dep": {"model": MODEL},
    "pinned-dep": {"model": MODEL, "version": 2},
    "stable-dep": {"model": MODEL, "label": "stable"},
    "multi-dep": {"model": "multi"},
}


def build_app(settings_mapping: Mapping[str, Any], registry: CollectorRegistry | None = None) -> web.Application:
    """The gateway app for a settings mapping (imported late: the gateway may still be landing)."""
    from gateway.config import Settings
    from gateway.web.app import create_app

    app: web.Application = create_app(
        Settings.from_mapping(dict(settings_mapping)), registry=registry or CollectorRegistry()
    )
    return app


def base_settings(fake: FakeModelServer) -> dict[str, Any]:
    """Gateway settings pointing at the fake, with the standard deployments."""
    return {
        "backends": {"default": {"targets": [fake.target]}},
        "deployments": {name: dict(spec) for name, spec in DEPLOYMENTS.items()},
    }


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge settings overrides (mappings merge, anything else replaces)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def requests_total(page: str, route: str, code: str) -> float:
    """``tfs_gateway_http_requests_total`` on a metrics page, summed over the series of ``route`` and ``code``."""
    total = 0.0
    for line in page.splitlines():
        if (
            line.startswith("tfs_gateway_http_requests_total{")
            and f'route="{route}"' in line
            and f'code="{code}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total
