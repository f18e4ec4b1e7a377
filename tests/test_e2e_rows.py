"""End-to-end rows, one per behaviour, derived from the spec (docs/spec/tfserving-rest.md).

Each row goes through a real gateway (aiohttp on 127.0.0.1:0) and a real fake ModelServer
(grpc.aio on 127.0.0.1:0): HTTP in -> gRPC seen -> gRPC out -> HTTP out. Section numbers
in comments point at the spec. Where the policy lets the wording differ, rows assert the
facts (input name, element index, types, sizes), not the text.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
import pytest
from fake_backend import (
    HANG,
    MALFORMED,
    Abort,
    Delay,
    FakeModelServer,
    example,
    make_tensor,
)
from harness import (
    F32,
    HALF_PLUS_TWO,
    HALF_PLUS_TWO_SIGNATURES,
    MODEL,
    MULTI,
    ODD_NAME,
    Floats32,
    MakeGatewayClient,
    NoCall,
    Row,
    dtype_signatures,
    envelope,
    error,
    error_facts,
    grpc_problems,
    run_row,
)

from gateway._pb.tensorflow.core.framework import types_pb2
from gateway._pb.tensorflow.core.protobuf import error_codes_pb2
from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

V1 = f"/v1/models/{MODEL}"
ODD_ENCODED = "modelname%21%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D"
NOT_PREDICTED = NoCall("Predict")


# --------------------------------------------------------------------------- builders


def f32(*values: float) -> np.ndarray[Any, Any]:
    return np.array(values, dtype=np.float32)


def spec(
    name: str = MODEL, version: int | None = None, label: str | None = None, signature: str | None = ""
) -> dict[str, Any]:
    """A partial ModelSpec: ``None`` version/label = must be unset; ``signature=None`` = unchecked."""
    wanted: dict[str, Any] = {"name": name, "version": version, "version_label": label}
    if signature is not None:
        wanted["signature_name"] = signature
    return wanted


def predict_call(inputs: Mapping[str, Any] | None = None, **spec_args: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"method": "Predict", "model_spec": spec(**spec_args)}
    if inputs is not None:
        call["inputs"] = dict(inputs)
    return call


def status_call(**spec_args: Any) -> dict[str, Any]:
    return {"method": "GetModelStatus", "model_spec": spec(signature=None, **spec_args)}


def metadata_call(**spec_args: Any) -> dict[str, Any]:
    return {
        "method": "GetModelMetadata",
        "model_spec": spec(signature=None, **spec_args),
        "metadata_field": ["signature_def"],
    }


def status_json(*versions: int) -> dict[str, Any]:
    """Section 8: int64 version as a string, enum names, every field printed."""
    return {
        "model_version_status": [
            {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for v in versions
        ]
    }


def tensor_info_json(info: Any) -> dict[str, Any]:
    """Section 9: TensorInfo with preserve_proto_field_names and no-presence fields printed."""
    shape = info.tensor_shape
    printed: dict[str, Any] = {"name": info.name} if info.name else {}
    printed["dtype"] = types_pb2.DataType.Name(info.dtype)
    printed["tensor_shape"] = {
        "dim": [{"size": str(dim.size), "name": dim.name} for dim in shape.dim],
        "unknown_rank": shape.unknown_rank,
    }
    return printed


def signature_json(sig: Any) -> dict[str, Any]:
    return {
        "inputs": {alias: tensor_info_json(info) for alias, info in sig.inputs.items()},
        "outputs": {alias: tensor_info_json(info) for alias, info in sig.outputs.items()},
        "method_name": sig.method_name,
        "defaults": {},
    }


def metadata_json(name: str, version: int, sigs: Mapping[str, Any]) -> dict[str, Any]:
    """Section 9: model_spec (resolved version, empty signature_name) + the SignatureDefMap."""
    return {
        "model_spec": {"name": name, "version": str(version), "signature_name": ""},
        "metadata": {"signature_def": {"signature_def": {k: signature_json(s) for k, s in sigs.items()}}},
    }


def predict_reply(content: bool = False, **outputs: tuple[Any, str]) -> predict_pb2.PredictResponse:
    reply = predict_pb2.PredictResponse()
    for alias, (values, dtype) in outputs.items():
        reply.outputs[alias].CopyFrom(make_tensor(values, dtype, content=content))
    return reply


def bare_tokens(text: str) -> bool:
    """NaN and Infinity are written as bare tokens, never as strings."""
    return "NaN" in text and "Infinity" in text and '"NaN"' not in text and '"Infinity"' not in text


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# --------------------------------------------------------------------------- routes (2.1)

STATUS_2_1 = status_json(2, 1)
META_V2 = metadata_json(MODEL, 2, HALF_PLUS_TWO_SIGNATURES)
META_V1 = metadata_json(MODEL, 1, HALF_PLUS_TWO_SIGNATURES)
PREDICT_BODY = {"instances": [1.0, 2.0, 5.0]}
PREDICT_SENT = {"x": f32(1.0, 2.0, 5.0)}
PREDICT_JSON = {"predictions": [2.5, 3.0, 4.5]}
CLASSIFY_BODY = {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}]}
CLASSIFY_JSON = {"results": [[["neg", 0.25], ["pos", 0.75]]]}
REGRESS_BODY = {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}, {"x": 3.0}]}
REGRESS_JSON = {"results": [2.5, 3.5]}


# (verb, gRPC method, body, signature the gRPC call names, expected JSON)
VERBS: list[tuple[str, str, Any, str, Any]] = [
    ("predict", "Predict", PREDICT_BODY, "", PREDICT_JSON),
    ("classify", "Classify", CLASSIFY_BODY, "classify_x_to_y", CLASSIFY_JSON),
    ("regress", "Regress", REGRESS_BODY, "regress_x_to_y", REGRESS_JSON),
]
# (id suffix, URL part, ModelSpec version and label the backend must see)
SELECTORS: list[tuple[str, str, dict[str, Any]]] = [
    ("", "", {}),
    ("-version", "/versions/1", {"version": 1}),
    ("-label", "/labels/canary", {"label": "canary"}),
]


def inference_rows(prefix: str, family: str) -> list[Row]:
    """Every POST form: each verb, with no selector, a version, and a label."""
    return [
        Row(
            f"{family}-{verb}{suffix}",
            "POST",
            f"{prefix}{part}:{verb}",
            body,
            expect_grpc={"method": rpc, "model_spec": spec(signature=sig, **selector)},
            expect_json=out,
        )
        for verb, rpc, body, sig, out in VERBS
        for suffix, part, selector in SELECTORS
    ]


def get_rows(prefix: str, family: str) -> list[Row]:
    """Every GET form: status and metadata, with no selector, a version, and a label."""
    return [
        Row(f"{family}-status", "GET", prefix, expect_grpc=status_call(), expect_json=STATUS_2_1),
        Row(
            f"{family}-status-version",
            "GET",
            f"{prefix}/versions/1",
            expect_grpc=status_call(version=1),
            expect_json=status_json(1),
        ),
        # Our improvement: a label on the status endpoint is honoured (ModelServer itself ignores it).
        Row(f"{family}-status-label", "GET", f"{prefix}/labels/stable", expect_json=status_json(1)),
        Row(f"{family}-metadata", "GET", f"{prefix}/metadata", expect_grpc=metadata_call(), expect_json=META_V2),
        Row(
            f"{family}-metadata-version",
            "GET",
            f"{prefix}/versions/1/metadata",
            expect_grpc=metadata_call(version=1),
            expect_json=META_V1,
        ),
        Row(
            f"{family}-metadata-label",
            "GET",
            f"{prefix}/labels/canary/metadata",
            expect_grpc=metadata_call(label="canary"),
            expect_json=META_V2,
        ),
    ]


def route_rows(prefix: str, family: str) -> list[Row]:
    """Every route form under one prefix that resolves to half_plus_two."""
    return get_rows(prefix, family) + inference_rows(prefix, family)


SERVABLE_ROWS = [
    # 7.3 / 2.4: ModelServer's servable errors pass through with their status.
    Row(
        "v1-status-unknown-model",
        "GET",
        "/v1/models/nope",
        expect_status=404,
        expect_json=error("Could not find any versions of model nope"),
    ),
    Row(
        "v1-status-unknown-version",
        "GET",
        f"{V1}/versions/7",
        expect_status=404,
        expect_json=error("Could not find version 7 of model half_plus_two"),
    ),
    Row(
        "v1-status-unknown-label",
        "GET",
        f"{V1}/labels/nope",
        expect_status=400,
        expect_json=error_facts(contains=["nope"]),
    ),
    Row(
        "v1-metadata-unknown-model",
        "GET",
        "/v1/models/nope/metadata",
        expect_status=404,
        expect_json=error("Servable not found for request: Latest(nope)"),
    ),
    Row(
        "v1-metadata-unknown-version",
        "GET",
        f"{V1}/versions/7/metadata",
        expect_status=404,
        expect_json=error("Servable not found for request: Specific(half_plus_two, 7)"),
    ),
    Row(
        "v1-metadata-unknown-label",
        "GET",
        f"{V1}/labels/nope/metadata",
        expect_status=400,
        expect_json=error("Unrecognized servable version label: nope"),
    ),
    Row(
        "v1-predict-unknown-model",
        "POST",
        "/v1/models/nope:predict",
        PREDICT_BODY,
        expect_status=404,
        expect_json=error("Servable not found for request: Latest(nope)"),
    ),
    Row(
        "v1-predict-unknown-version",
        "POST",
        f"{V1}/versions/7:predict",
        PREDICT_BODY,
        expect_status=404,
        expect_json=error("Servable not found for request: Specific(half_plus_two, 7)"),
    ),
    Row(
        "v1-predict-unknown-label",
        "POST",
        f"{V1}/labels/nope:predict",
        PREDICT_BODY,
        expect_status=400,
        expect_json=error("Unrecognized servable version label: nope"),
    ),
    Row(
        "v1-classify-unknown-model",
        "POST",
        "/v1/models/nope:classify",
        CLASSIFY_BODY,
        expect_status=404,
        expect_json=error("Servable not found for request: Latest(nope)"),
    ),
    Row(
        "v1-regress-unknown-version",
        "POST",
        f"{V1}/versions/9:regress",
        REGRESS_BODY,
        expect_status=404,
        expect_json=error("Servable not found for request: Specific(half_plus_two, 9)"),
    ),
]

DEPLOYMENT_ROWS = [
    # The deployment id maps to a model and may pin a version or a label; a URL version or label,
    # being the more specific request, replaces the pin.
    Row(
        "dep-pinned-predict",
        "POST",
        "/model-serving/pinned-dep:predict",
        PREDICT_BODY,
        expect_grpc=predict_call(PREDICT_SENT, version=2),
        expect_json=PREDICT_JSON,
    ),
    Row(
        "dep-pinned-status",
        "GET",
        "/model-serving/pinned-dep",
        expect_grpc=status_call(version=2),
        expect_json=status_json(2),
    ),
    Row(
        "dep-pinned-metadata",
        "GET",
        "/model-serving/pinned-dep/metadata",
        expect_grpc=metadata_call(version=2),
        expect_json=META_V2,
    ),
    Row(
        "dep-pinned-classify",
        "POST",
        "/model-serving/pinned-dep:classify",
        CLASSIFY_BODY,
        expect_grpc={"method": "Classify", "model_spec": spec(version=2, signature="classify_x_to_y")},
        expect_json=CLASSIFY_JSON,
    ),
    Row(
        "dep-label-predict",
        "POST",
        "/model-serving/stable-dep:predict",
        PREDICT_BODY,
        expect_grpc=predict_call(PREDICT_SENT, label="stable"),
        expect_json=PREDICT_JSON,
    ),
    Row(
        "dep-label-metadata",
        "GET",
        "/model-serving/stable-dep/metadata",
        expect_grpc=metadata_call(label="stable"),
        expect_json=META_V1,
    ),
    Row(
        "dep-label-regress",
        "POST",
        "/model-serving/stable-dep:regress",
        REGRESS_BODY,
        expect_grpc={"method": "Regress", "model_spec": spec(label="stable", signature="regress_x_to_y")},
        expect_json=REGRESS_JSON,
    ),
    Row(
        "dep-pinned-url-version-overrides",
        "POST",
        "/model-serving/pinned-dep/versions/1:predict",
        PREDICT_BODY,
        expect_grpc=predict_call(PREDICT_SENT, version=1),
        expect_json=PREDICT_JSON,
    ),
    Row(
        "dep-pinned-url-label-overrides",
        "POST",
        "/model-serving/pinned-dep/labels/stable:predict",
        PREDICT_BODY,
        expect_grpc=predict_call(PREDICT_SENT, label="stable"),
        expect_json=PREDICT_JSON,
    ),
    Row(
        "dep-label-url-version-overrides",
        "POST",
        "/model-serving/stable-dep/versions/2:predict",
        PREDICT_BODY,
        expect_grpc=predict_call(PREDICT_SENT, version=2),
        expect_json=PREDICT_JSON,
    ),
    Row(
        "dep-multi-columnar",
        "POST",
        "/model-serving/multi-dep:predict",
        {"inputs": {"alpha": [1.0], "beta": [[2.0, 4.0]]}},
        expect_grpc=predict_call({"alpha": f32(1.0), "beta": np.array([[2.0, 4.0]], np.float32)}, name="multi"),
        expect_json={"outputs": {"y_alpha": [2.5], "y_beta": [[3.0, 4.0]]}},
    ),
    Row(
        "dep-unknown-status",
        "GET",
        "/model-serving/nope-dep",
        expect_status=404,
        expect_grpc=NoCall("GetModelStatus"),
        expect_json=error_facts(contains=["nope-dep"]),
    ),
    Row(
        "dep-unknown-predict",
        "POST",
        "/model-serving/nope-dep:predict",
        PREDICT_BODY,
        expect_status=404,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["nope-dep"]),
    ),
    Row(
        "dep-unknown-metadata",
        "GET",
        "/model-serving/nope-dep/versions/1/metadata",
        expect_status=404,
        expect_grpc=NoCall("GetModelMetadata"),
        expect_json=error_facts(contains=["nope-dep"]),
    ),
    Row(
        "dep-model-missing-on-backend",
        "POST",
        "/model-serving/ghost-dep:predict",
        PREDICT_BODY,
        settings={"deployments": {"ghost-dep": {"model": "ghost"}}},
        expect_status=404,
        expect_json=error("Servable not found for request: Latest(ghost)"),
    ),
    Row("dep-wrong-method", "DELETE", "/model-serving/my-dep", expect_status=405, expect_json=envelope),
    Row(
        "dep-query-ignored",
        "GET",
        "/model-serving/my-dep/metadata?foo=bar",
        expect_grpc=metadata_call(),
        expect_json=META_V2,
    ),
]

# --------------------------------------------------------------------------- URL grammar (2.2, 2.3)


def malformed(path: str) -> Any:
    return error_facts(contains=["Malformed request", path])


GRAMMAR_ROWS = [
    Row(
        "pct-decoded-name",
        "GET",
        f"/v1/models/{ODD_ENCODED}/metadata",
        expect_grpc=metadata_call(name=ODD_NAME),
        expect_json=metadata_json(ODD_NAME, 1, {"serving_default": HALF_PLUS_TWO}),
    ),
    Row(
        "pct-decoded-label",
        "POST",
        f"/v1/models/{ODD_ENCODED}/labels/my%2Flabel:predict",
        {"inputs": [0.0]},
        expect_grpc=predict_call({"x": f32(0.0)}, name=ODD_NAME, label="my/label"),
        expect_json={"outputs": [2.0]},
    ),
    Row(
        "pct-decoded-status",
        "GET",
        f"/v1/models/{ODD_ENCODED}/versions/1",
        expect_grpc=status_call(name=ODD_NAME, version=1),
        expect_json=status_json(1),
    ),
    Row(
        "plus-is-not-space",
        "GET",
        "/v1/models/a+b",
        expect_grpc=status_call(name="a+b"),
        expect_status=404,
        expect_json=error("Could not find any versions of model a+b"),
    ),
    Row(
        "version-zero",
        "POST",
        f"{V1}/versions/0:predict",
        PREDICT_BODY,
        expect_status=404,
        expect_json=error("Servable not found for request: Specific(half_plus_two, 0)"),
    ),
    Row(
        "version-leading-zeros",
        "POST",
        f"{V1}/versions/002:predict",
        PREDICT_BODY,
        expect_grpc=predict_call(PREDICT_SENT, version=2),
        expect_json=PREDICT_JSON,
    ),
    Row(
        "version-leading-zeros-missing",
        "GET",
        f"{V1}/versions/007/metadata",
        expect_status=404,
        expect_grpc=metadata_call(version=7),
        expect_json=error("Servable not found for request: Specific(half_plus_two, 7)"),
    ),
    Row(
        "version-int64-max",
        "GET",
        f"{V1}/versions/9223372036854775807",
        expect_status=404,
        expect_grpc=status_call(version=2**63 - 1),
        expect_json=error("Could not find version 9223372036854775807 of model half_plus_two"),
    ),
    # Our improvement: an int64 overflow is a 400 *with* a JSON body.
    Row(
        "version-int64-overflow-predict",
        "POST",
        f"{V1}/versions/9223372036854775808:predict",
        PREDICT_BODY,
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["9223372036854775808"]),
    ),
    Row(
        "version-uint64-overflow-status",
        "GET",
        f"{V1}/versions/18446744073709551615",
        expect_status=400,
        expect_grpc=NoCall("GetModelStatus"),
        expect_json=error_facts(contains=["18446744073709551615"]),
    ),
    Row(
        "case-insensitive-path",
        "POST",
        "/V1/MODELS/half_plus_two/VERSIONS/2:predict",
        PREDICT_BODY,
        expect_grpc=predict_call(PREDICT_SENT, version=2),
        expect_json=PREDICT_JSON,
    ),
    Row(
        "upper-case-verb",
        "POST",
        f"{V1}:PREDICT",
        PREDICT_BODY,
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=malformed(f"{V1}:PREDICT"),
    ),
    Row("upper-case-metadata-is-status", "GET", f"{V1}/METADATA", expect_grpc=status_call(), expect_json=STATUS_2_1),
    Row(
        "models-without-name", "GET", "/v1/models", expect_status=400, expect_json=error_facts(icontains=["model name"])
    ),
    Row(
        "model-named-metadata",
        "GET",
        "/v1/models/metadata",
        expect_grpc=status_call(name="metadata"),
        expect_status=404,
        expect_json=error("Could not find any versions of model metadata"),
    ),
    Row("unknown-v1-get", "GET", "/v1/foo", expect_status=400, expect_json=malformed("/v1/foo")),
    Row("unknown-v1-post", "POST", "/v1/foo", PREDICT_BODY, expect_status=400, expect_json=malformed("/v1/foo")),
    Row(
        "v1-post-without-name",
        "POST",
        "/v1/models",
        PREDICT_BODY,
        expect_status=400,
        expect_json=malformed("/v1/models"),
    ),
    Row("v1-get-on-verb", "GET", f"{V1}:predict", expect_status=400, expect_json=malformed(f"{V1}:predict")),
    Row(
        "v1-singular-version",
        "POST",
        f"{V1}/version/1:predict",
        PREDICT_BODY,
        expect_status=400,
        expect_json=malformed(f"{V1}/version/1:predict"),
    ),
    Row(
        "v1-non-numeric-version",
        "POST",
        f"{V1}/versions/HELLO:regress",
        REGRESS_BODY,
        expect_status=400,
        expect_json=malformed(f"{V1}/versions/HELLO:regress"),
    ),
    Row(
        "v1-post-metadata",
        "POST",
        f"{V1}/metadata",
        PREDICT_BODY,
        expect_status=400,
        expect_json=malformed(f"{V1}/metadata"),
    ),
    Row(
        "v1-version-and-label",
        "GET",
        f"{V1}/versions/1/labels/stable",
        expect_status=400,
        expect_json=malformed(f"{V1}/versions/1/labels/stable"),
    ),
    # Our improvement: paths outside /v1/ and /model-serving/ get a JSON 404, not libevent's HTML.
    Row("outside-root", "GET", "/", expect_status=404, expect_json=envelope),
    Row("outside-v3", "GET", "/v3/models/half_plus_two", expect_status=404, expect_json=envelope),
    Row("outside-bare-v1", "GET", "/v1", expect_status=404, expect_json=envelope),
    Row("outside-post", "POST", "/predict", PREDICT_BODY, expect_status=404, expect_json=envelope),
    Row("wrong-method-put", "PUT", V1, PREDICT_BODY, expect_status=405, expect_json=envelope),
    Row("wrong-method-delete-verb", "DELETE", f"{V1}:predict", expect_status=405, expect_json=envelope),
    # Our improvement: a query string is ignored.
    Row(
        "query-ignored-post",
        "POST",
        f"{V1}:predict?x=1",
        PREDICT_BODY,
        expect_grpc=predict_call(PREDICT_SENT),
        expect_json=PREDICT_JSON,
    ),
    Row("query-ignored-get", "GET", f"{V1}?x=1", expect_grpc=status_call(), expect_json=STATUS_2_1),
]

# --------------------------------------------------------------------------- predict requests (4)

TYPES = "/v1/models/types:predict"


def typed(sig: str, key: str, values: Any) -> dict[str, Any]:
    return {"signature_name": sig, key: values}


def typed_call(sig: str, tensor: np.ndarray[Any, Any]) -> dict[str, Any]:
    return predict_call({"x": tensor}, name="types", signature=sig)


def strings(*values: bytes) -> np.ndarray[Any, Any]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


# (signature, JSON values, tensor the backend must see, JSON values that come back)
DTYPE_CASES: list[tuple[str, list[Any], np.ndarray[Any, Any], list[Any]]] = [
    # float32(1435774380) is 1435774336 (spec 4.5); half of it plus two is float32 717887168, whose
    # shortest text is 717887170.
    ("float", [1.5, -2, 1435774380], f32(1.5, -2.0, 1435774380.0), [2.75, 1.0, 717887170.0]),
    ("double", [0.1, 3], np.array([0.1, 3.0]), [0.1 * 0.5 + 2, 3.5]),
    ("int32", [1, -(2**31), 2**31 - 1], np.array([1, -(2**31), 2**31 - 1], np.int32), [1, -(2**31), 2**31 - 1]),
    ("int16", [-(2**15), 2**15 - 1], np.array([-(2**15), 2**15 - 1], np.int16), [-(2**15), 2**15 - 1]),
    ("int8", [-128, 127], np.array([-128, 127], np.int8), [-128, 127]),
    ("uint8", [0, 255], np.array([0, 255], np.uint8), [0, 255]),
    ("int64", [2**63 - 1, -(2**63)], np.array([2**63 - 1, -(2**63)], np.int64), [2**63 - 1, -(2**63)]),
    ("uint32", [0, 2**32 - 1], np.array([0, 2**32 - 1], np.uint32), [0, 2**32 - 1]),
    ("uint64", [0, 2**64 - 1], np.array([0, 2**64 - 1], np.uint64), [0, 2**64 - 1]),
    ("bool", [True, False], np.array([True, False]), [True, False]),
    ("string", ["foo", "bär", ""], strings(b"foo", "bär".encode(), b""), ["foo", "bär", ""]),
    ("string", [{"b64": b64(b"hello")}], strings(b"hello"), ["hello"]),
    (
        "string_bytes",
        ["hi", {"b64": b64(b"\x00\xff")}],
        strings(b"hi", b"\x00\xff"),
        [{"b64": b64(b"hi")}, {"b64": b64(b"\x00\xff")}],
    ),
]


def dtype_rows() -> list[Row]:
    rows = []
    for index, (sig, values, tensor, out) in enumerate(DTYPE_CASES):
        rows.append(
            Row(
                f"dtype-{sig}-{index}-row",
                "POST",
                TYPES,
                typed(sig, "instances", values),
                expect_grpc=typed_call(sig, tensor),
                expect_json={"predictions": out},
            )
        )
        rows.append(
            Row(
                f"dtype-{sig}-{index}-columnar",
                "POST",
                TYPES,
                typed(sig, "inputs", values),
                expect_grpc=typed_call(sig, tensor),
                expect_json={"outputs": out},
            )
        )
    return rows


# (signature, bad JSON list, index of the bad element, facts the message must carry)
BAD_VALUES: list[tuple[str, list[Any], int, list[str]]] = [
    ("int32", [1, 2**31], 1, ["int32"]),
    ("int32", [1, 1.5], 1, ["int32"]),
    ("int16", [0, 2**15], 1, ["int16"]),  # our improvement: range errors instead of a silent wrap
    ("int8", [128], 0, ["int8"]),
    ("int8", [0, -129], 1, ["int8"]),
    ("uint8", [1, 2, 300], 2, ["uint8"]),
    ("uint8", [-1], 0, ["uint8"]),
    ("int64", [2**63], 0, ["int64"]),
    ("uint32", [-1], 0, ["uint32"]),
    ("uint32", [2**32], 0, ["uint32"]),
    ("uint64", [-1], 0, ["uint64"]),
    ("bool", [True, 1], 1, ["bool"]),
    ("float", [1.0, "a"], 1, ["float", "string"]),
    ("float", [None], 0, ["float", "null"]),
    ("double", [1.0, "x"], 1, ["double", "string"]),
    ("string", ["a", 5], 1, ["string", "number"]),
]


def bad_value_rows() -> list[Row]:
    rows = []
    for sig, values, index, facts in BAD_VALUES:
        name = f"bad-{sig}-{values[index]!r}"
        rows.append(
            Row(
                f"{name}-row",
                "POST",
                TYPES,
                typed(sig, "instances", values),
                expect_status=400,
                expect_grpc=NOT_PREDICTED,
                expect_json=error_facts(icontains=facts, numbers=[index]),
            )
        )
        rows.append(
            Row(
                f"{name}-columnar",
                "POST",
                TYPES,
                typed(sig, "inputs", values),
                expect_status=400,
                expect_grpc=NOT_PREDICTED,
                expect_json=error_facts(icontains=facts),
            )
        )
    return rows


UNSUPPORTED_ROWS = [
    # 4.3/4.5: unsupported dtypes are UNIMPLEMENTED (501) in columnar, wrapped into 400 in row format.
    row
    for sig in ("half", "bfloat16", "uint16")
    for row in (
        Row(
            f"unsupported-{sig}-columnar",
            "POST",
            TYPES,
            typed(sig, "inputs", [1.0]),
            expect_status=501,
            expect_grpc=NOT_PREDICTED,
            expect_json=error_facts(icontains=[sig]),
        ),
        Row(
            f"unsupported-{sig}-row",
            "POST",
            TYPES,
            typed(sig, "instances", [1.0]),
            expect_status=400,
            expect_grpc=NOT_PREDICTED,
            expect_json=error_facts(icontains=[sig]),
        ),
    )
]

MULTI_PATH = "/v1/models/multi:predict"
NAN_BODY = b'{"signature_name": "float", "instances": [NaN, Infinity, -Infinity, 1.0]}'

PREDICT_ROWS = [
    Row(
        "columnar-single",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0, 2.0]},
        expect_grpc=predict_call({"x": f32(1.0, 2.0)}),
        expect_json={"outputs": [2.5, 3.0]},
    ),
    Row(
        "columnar-named-single",
        "POST",
        f"{V1}:predict",
        {"inputs": {"x": [1.0]}},
        expect_grpc=predict_call({"x": f32(1.0)}),
        expect_json={"outputs": [2.5]},
    ),
    Row(
        "row-named-single",
        "POST",
        f"{V1}:predict",
        {"instances": [{"x": 1.0}, {"x": 2.0}]},
        expect_grpc=predict_call({"x": f32(1.0, 2.0)}),
        expect_json={"predictions": [2.5, 3.0]},
    ),
    Row(
        "row-nested",
        "POST",
        TYPES,
        typed("float", "instances", [[[1, 2]], [[3, 4]]]),
        expect_grpc=typed_call("float", np.array([[[1, 2]], [[3, 4]]], np.float32)),
        expect_json={"predictions": [[[2.5, 3.0]], [[3.5, 4.0]]]},
    ),
    Row(
        "row-named-multi",
        "POST",
        MULTI_PATH,
        {"instances": [{"alpha": 1.0, "beta": [1.0, 2.0]}, {"alpha": 2.0, "beta": [3.0, 4.0]}]},
        expect_grpc=predict_call(
            {"alpha": f32(1.0, 2.0), "beta": np.array([[1, 2], [3, 4]], np.float32)}, name="multi"
        ),
        expect_json={"predictions": [{"y_alpha": 2.5, "y_beta": [2.5, 3.0]}, {"y_alpha": 3.0, "y_beta": [3.5, 4.0]}]},
    ),
    Row(
        "columnar-multi-different-batch",
        "POST",
        MULTI_PATH,
        {"inputs": {"alpha": [1.0], "beta": [[1.0], [2.0]]}},
        expect_grpc=predict_call({"alpha": f32(1.0), "beta": np.array([[1.0], [2.0]], np.float32)}, name="multi"),
        expect_json={"outputs": {"y_alpha": [2.5], "y_beta": [[2.5], [3.0]]}},
    ),
    Row(
        "columnar-extra-keys-ignored",
        "POST",
        MULTI_PATH,
        {"inputs": {"alpha": [1.0], "beta": [[1.0]], "zzz": 5}},
        expect_grpc=predict_call({"alpha": f32(1.0), "beta": np.array([[1.0]], np.float32)}, name="multi"),
        expect_json={"outputs": {"y_alpha": [2.5], "y_beta": [[2.5]]}},
    ),
    Row(
        "other-top-level-keys-ignored",
        "POST",
        f"{V1}:predict",
        {"instances": [1.0], "meta": {"a": 1}},
        expect_grpc=predict_call({"x": f32(1.0)}),
        expect_json={"predictions": [2.5]},
    ),
    Row(
        "signature-name-empty-is-default",
        "POST",
        f"{V1}:predict",
        {"signature_name": "", "instances": [1.0]},
        expect_grpc=predict_call({"x": f32(1.0)}, signature=""),
        expect_json={"predictions": [2.5]},
    ),
    Row(
        "signature-name-sent",
        "POST",
        TYPES,
        typed("double", "instances", [1.0]),
        expect_grpc=typed_call("double", np.array([1.0])),
        expect_json={"predictions": [2.5]},
    ),
    Row(
        "nan-infinity-inputs-row",
        "POST",
        TYPES,
        NAN_BODY,
        expect_grpc=typed_call("float", f32(math.nan, math.inf, -math.inf, 1.0)),
        expect_json={"predictions": [math.nan, math.inf, -math.inf, 2.5]},
        expect_text=bare_tokens,
    ),
    Row(
        "nan-infinity-inputs-columnar",
        "POST",
        TYPES,
        b'{"signature_name": "double", "inputs": [NaN, -Infinity, Infinity]}',
        expect_grpc=typed_call("double", np.array([math.nan, -math.inf, math.inf])),
        expect_json={"outputs": [math.nan, -math.inf, math.inf]},
        expect_text=bare_tokens,
    ),
    Row(
        "scalar-columnar",
        "POST",
        TYPES,
        typed("float", "inputs", 3.0),
        expect_grpc=typed_call("float", np.array(3.0, np.float32)),
        expect_json={"outputs": 3.5},
    ),
    Row(
        "scalar-b64-columnar",
        "POST",
        TYPES,
        typed("string", "inputs", {"b64": b64(b"hi")}),
        expect_grpc=typed_call("string", np.array(b"hi", dtype=object)),
        expect_json={"outputs": "hi"},
    ),
    Row(
        "scalars-row",
        "POST",
        TYPES,
        typed("int64", "instances", [7, 8]),
        expect_grpc=typed_call("int64", np.array([7, 8], np.int64)),
        expect_json={"predictions": [7, 8]},
    ),
    Row(
        "empty-list-columnar",
        "POST",
        TYPES,
        typed("float", "inputs", []),
        expect_grpc=typed_call("float", np.zeros([0], np.float32)),
        expect_json={"outputs": []},
    ),
    Row(
        "empty-lists-columnar",
        "POST",
        TYPES,
        typed("float", "inputs", [[], []]),
        expect_grpc=typed_call("float", np.zeros([2, 0], np.float32)),
        expect_json={"outputs": [[], []]},
    ),
    Row(
        "empty-lists-row",
        "POST",
        TYPES,
        typed("float", "instances", [[], []]),
        expect_grpc=typed_call("float", np.zeros([2, 0], np.float32)),
        expect_json={"predictions": [[], []]},
    ),
    Row(
        "empty-instances",
        "POST",
        f"{V1}:predict",
        {"instances": []},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["instances"]),
    ),
    Row(
        "instances-not-a-list",
        "POST",
        f"{V1}:predict",
        {"instances": 1.0},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["instances"]),
    ),
    # 4.2/4.3: ragged lists and batch mismatches name the element index and both sizes.
    Row(
        "ragged-row",
        "POST",
        f"{V1}:predict",
        {"instances": [[1.0, 2.0], [3.0]]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(numbers=[1, 2]),
    ),
    Row(
        "ragged-within-element",
        "POST",
        TYPES,
        typed("float", "instances", [[[1.0], [2.0, 3.0]]]),
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(numbers=[0, 1, 2]),
    ),
    Row(
        "ragged-columnar",
        "POST",
        f"{V1}:predict",
        {"inputs": [[1.0, 2.0], [3.0]]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(numbers=[1, 2]),
    ),
    Row(
        "ragged-scalar-at-list-level",
        "POST",
        f"{V1}:predict",
        {"inputs": [[1.0, 2.0], 3.0]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "ragged-list-at-scalar-level",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0, [2.0]]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "batch-mismatch-named",
        "POST",
        MULTI_PATH,
        {"instances": [{"alpha": 1.0, "beta": [1.0, 2.0]}, {"alpha": 2.0, "beta": [3.0]}]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["beta"], numbers=[1, 2]),
    ),
    Row(
        "named-missing-key",
        "POST",
        MULTI_PATH,
        {"instances": [{"alpha": 1.0}]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["beta"]),
    ),
    Row(
        "named-unknown-key",
        "POST",
        MULTI_PATH,
        {"instances": [{"alpha": 1.0, "beta": [1.0], "gamma": 1}]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["gamma"]),
    ),
    Row(
        "named-then-list",
        "POST",
        MULTI_PATH,
        {"instances": [{"alpha": 1.0, "beta": [1.0]}, [1.0]]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(numbers=[1]),
    ),
    Row(
        "named-type-error",
        "POST",
        MULTI_PATH,
        {"instances": [{"alpha": "x", "beta": [1.0]}]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["alpha"], icontains=["float", "string"]),
    ),
    Row(
        "plain-list-for-multi",
        "POST",
        MULTI_PATH,
        {"instances": [1.0, 2.0]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "columnar-missing-named",
        "POST",
        MULTI_PATH,
        {"inputs": {"alpha": [1.0]}},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["beta"]),
    ),
    Row(
        "columnar-plain-for-multi",
        "POST",
        MULTI_PATH,
        {"inputs": [1.0]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "both-instances-and-inputs",
        "POST",
        f"{V1}:predict",
        {"instances": [1.0], "inputs": [1.0]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["instances", "inputs"]),
    ),
    Row(
        "neither-instances-nor-inputs",
        "POST",
        f"{V1}:predict",
        {"signature_name": ""},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["instances", "inputs"]),
    ),
    Row(
        "signature-name-not-string",
        "POST",
        f"{V1}:predict",
        {"signature_name": 5, "instances": [1.0]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["signature_name"]),
    ),
    Row(
        "unknown-signature",
        "POST",
        f"{V1}:predict",
        {"signature_name": "nope", "instances": [1.0]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error('Serving signature name: "nope" not found in signature def'),
    ),
    Row(
        "unknown-signature-columnar-deployment",
        "POST",
        "/model-serving/my-dep:predict",
        {"signature_name": "nope", "inputs": [1.0]},
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error('Serving signature name: "nope" not found in signature def'),
    ),
    Row(
        "bad-b64",
        "POST",
        TYPES,
        typed("string", "instances", [{"b64": "!!!"}]),
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(icontains=["base64"]),
    ),
    Row(
        "object-for-string-not-b64",
        "POST",
        TYPES,
        typed("string", "inputs", [{"b64": "aGk=", "x": 1}]),
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    # 4.1: the JSON is parsed before the model is looked up; the instances are checked after.
    Row(
        "order-malformed-json-on-missing-model",
        "POST",
        "/v1/models/nope:predict",
        b"{",
        expect_status=400,
        expect_json=envelope,
    ),
    Row(
        "order-bad-instances-on-missing-model",
        "POST",
        "/v1/models/nope:predict",
        {"instances": 5},
        expect_status=404,
        expect_json=error("Servable not found for request: Latest(nope)"),
    ),
    Row(
        "order-signature-name-type-before-model",
        "POST",
        "/v1/models/nope:predict",
        {"signature_name": 1, "instances": [1.0]},
        expect_status=400,
        expect_json=error_facts(contains=["signature_name"]),
    ),
]

# --------------------------------------------------------------------------- predict responses (5)

F32_TEXT = [0.1, 1 / 3, 1e-7, 3.4e38, 16777217.0, 999999.0, 9000000.0, -0.0]


def shortest_f32(values: list[float]) -> list[float]:
    """The value a client reads from the shortest float32 text of each value."""
    return [float(np.format_float_positional(np.float32(v), unique=True, trim="-")) for v in values]


def no_long_float(text: str) -> bool:
    return "0.10000000149" not in text and "0.333333343" not in text


RESPONSE_ROWS = [
    Row(
        "response-single-output-row",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(y=([[1, 2], [3, 4]], "DT_FLOAT")),
        expect_json={"predictions": [[1.0, 2.0], [3.0, 4.0]]},
    ),
    Row(
        "response-multi-output-row",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(a=([1.5, 2.5], "DT_FLOAT"), b=([[1, 2], [3, 4]], "DT_INT64")),
        expect_json={"predictions": [{"a": 1.5, "b": [1, 2]}, {"a": 2.5, "b": [3, 4]}]},
    ),
    Row(
        "response-single-output-columnar",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0]},
        grpc_reply=predict_reply(y=([[1, 2]], "DT_FLOAT")),
        expect_json={"outputs": [[1.0, 2.0]]},
    ),
    Row(
        "response-multi-output-columnar",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0]},
        grpc_reply=predict_reply(a=([1.5], "DT_FLOAT"), b=([b"x", b"y"], "DT_STRING"), c=(7, "DT_INT32")),
        expect_json={"outputs": {"a": [1.5], "b": ["x", "y"], "c": 7}},
    ),
    Row(
        "response-scalar-columnar",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0]},
        grpc_reply=predict_reply(y=(2.5, "DT_FLOAT")),
        expect_json={"outputs": 2.5},
    ),
    Row(
        "response-bytes-row",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(img_bytes=([b"\x00\xffhi", b""], "DT_STRING")),
        expect_json={"predictions": [{"b64": b64(b"\x00\xffhi")}, {"b64": ""}]},
    ),
    Row(
        "response-bytes-columnar-multi",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0]},
        grpc_reply=predict_reply(img_bytes=([b"\x89PNG"], "DT_STRING"), name=([b"png"], "DT_STRING")),
        expect_json={"outputs": {"img_bytes": [{"b64": b64(b"\x89PNG")}], "name": ["png"]}},
    ),
    Row(
        "response-float32-shortest",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0]},
        grpc_reply=predict_reply(y=(F32_TEXT, "DT_FLOAT")),
        expect_json={"outputs": shortest_f32(F32_TEXT)},
        expect_text=no_long_float,
    ),
    Row(
        "response-float64",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0]},
        grpc_reply=predict_reply(y=([0.1, 1 / 3, 1e300, 5.0], "DT_DOUBLE")),
        expect_json={"outputs": [0.1, 1 / 3, 1e300, 5.0]},
    ),
    Row(
        "response-nonfinite",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(y=([math.nan, math.inf, -math.inf], "DT_FLOAT")),
        expect_json={"predictions": [math.nan, math.inf, -math.inf]},
        expect_text=bare_tokens,
    ),
    Row(
        "response-tensor-content-float",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(content=True, y=([[1.5, 2.5], [0.1, -4]], "DT_FLOAT")),
        expect_json={"predictions": [[1.5, 2.5], [0.1, -4.0]]},
    ),
    Row(
        "response-tensor-content-mixed",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0]},
        grpc_reply=predict_reply(
            content=True,
            i=([2**62 + 1, -5], "DT_INT64"),
            d=([1 / 3], "DT_DOUBLE"),
            b=([True, False], "DT_BOOL"),
            u=([255], "DT_UINT8"),
            s=([-7], "DT_INT16"),
        ),
        expect_json={"outputs": {"i": [2**62 + 1, -5], "d": [1 / 3], "b": [True, False], "u": [255], "s": [-7]}},
    ),
    Row(
        "response-int64-bare",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0]},
        grpc_reply=predict_reply(
            y=([2**62 + 1, -(2**63)], "DT_INT64"), z=([2**64 - 1], "DT_UINT64"), w=([2**32 - 1], "DT_UINT32")
        ),
        expect_json={"outputs": {"y": [2**62 + 1, -(2**63)], "z": [2**64 - 1], "w": [2**32 - 1]}},
        expect_text=lambda text: '"4611686018427387905"' not in text and "4611686018427387905" in text,
    ),
    Row(
        "response-bool-and-small-ints",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(b=([True, False], "DT_BOOL"), i=([-128, 127], "DT_INT8")),
        expect_json={"predictions": [{"b": True, "i": -128}, {"b": False, "i": 127}]},
    ),
    Row(
        "response-batch-zero-row",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(y=(np.zeros([0, 3], np.float32), "DT_FLOAT")),
        expect_json={"predictions": []},
    ),
    Row(
        "response-rank0-in-row",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(lonely=(1.0, "DT_FLOAT")),
        expect_status=400,
        expect_json=error_facts(contains=["lonely"]),
    ),
    Row(
        "response-inconsistent-batch-row",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(a=([1.0, 2.0], "DT_FLOAT"), b=([1.0], "DT_FLOAT")),
        expect_status=400,
        expect_json=error_facts(numbers=[1, 2]),
    ),
    Row(
        "response-empty-outputs",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=predict_reply(),
        expect_status=400,
        expect_json=envelope,
    ),
    Row(
        "response-unsupported-dtype",
        "POST",
        f"{V1}:predict",
        {"inputs": [1.0]},
        grpc_reply=predict_reply(y=([1.0], "DT_HALF")),
        expect_status=400,
        expect_json=error_facts(icontains=["half"]),
    ),
]

# --------------------------------------------------------------------------- classify / regress (6)

CLASSIFY = f"{V1}:classify"
REGRESS = f"{V1}:regress"
TYPED_EXAMPLE = {
    "s": "abc",
    "i": 3,
    "f": 1.5,
    "l": [1, 2],
    "b": True,
    "bools": [True, False, 1],
    "bin": {"b64": b64(b"hi")},
    "e": [],
    "fs": [1.0, 2.5],
    "exp": 1e2,
    "neg": -0.5,
    "big": 2**63 - 1,
    "u": "ü",
}
TYPED_PROTO = example(
    {
        "s": ("bytes", [b"abc"]),
        "i": ("int64", [3]),
        "f": ("float", [1.5]),
        "l": ("int64", [1, 2]),
        "b": ("int64", [1]),
        "bools": ("int64", [1, 0, 1]),
        "bin": ("bytes", [b"hi"]),
        "e": None,
        "fs": ("float", [1.0, 2.5]),
        "exp": ("float", [100.0]),
        "neg": ("float", [-0.5]),
        "big": ("int64", [2**63 - 1]),
        "u": ("bytes", ["ü".encode()]),
    }
)


def nan_feature(request: Any) -> bool:
    values = request.input.example_list.examples[0].features.feature["f"].float_list.value
    return len(values) == 2 and math.isnan(values[0]) and values[1] == math.inf


def classify_reply(*per_example: list[tuple[str, float]]) -> classification_pb2.ClassificationResponse:
    reply = classification_pb2.ClassificationResponse()
    for classes in per_example:
        added = reply.result.classifications.add().classes
        for label, score in classes:
            added.add(label=label, score=score)
    return reply


def regress_reply(*values: float) -> regression_pb2.RegressionResponse:
    reply = regression_pb2.RegressionResponse()
    for value in values:
        reply.result.regressions.add(value=value)
    return reply


def feature_error(feature: str, *facts: str) -> Any:
    return error_facts(contains=[feature], icontains=list(facts))


def example_error_rows(path: str, verb: str) -> list[Row]:
    """6.1's errors, for one verb."""
    not_called = NoCall(verb)
    bad = [
        ("missing-examples", {"context": {"a": 1}}, error_facts(contains=["examples"])),
        ("examples-not-list", {"examples": {"a": 1}}, error_facts(contains=["examples"])),
        ("examples-empty", {"examples": []}, error_facts(contains=["examples"])),
        ("example-not-object", {"examples": ["x"]}, error_facts(icontains=["object"])),
        ("context-not-object", {"context": [1], "examples": [{"a": 1}]}, error_facts(icontains=["object"])),
        ("int-then-decimal", {"examples": [{"mixed_feat": [10, 10.0]}]}, feature_error("mixed_feat", "int64")),
        ("decimal-then-int", {"examples": [{"mixed_feat": [1.5, 2]}]}, feature_error("mixed_feat", "float")),
        ("string-then-number", {"examples": [{"mixed_feat": ["a", 1]}]}, feature_error("mixed_feat", "bytes")),
        ("null-element", {"examples": [{"null_feat": None}]}, feature_error("null_feat")),
        ("nested-list", {"examples": [{"nested_feat": [[1]]}]}, feature_error("nested_feat")),
        ("object-element", {"examples": [{"obj_feat": {"x": 1}}]}, feature_error("obj_feat")),
        ("uint64-element", {"examples": [{"huge_feat": 2**63}]}, feature_error("huge_feat", "int64")),
    ]
    return [
        Row(f"{verb.lower()}-{name}", "POST", path, body, expect_status=400, expect_grpc=not_called, expect_json=check)
        for name, body, check in bad
    ]


EXAMPLE_ROWS = [
    Row(
        "classify-feature-typing",
        "POST",
        CLASSIFY,
        {"examples": [TYPED_EXAMPLE]},
        expect_grpc={
            "method": "Classify",
            "model_spec": spec(),
            "input": {"example_list": {"examples": [TYPED_PROTO]}},
        },
        expect_json={"results": [[["neg", 0.25], ["pos", 0.75]]]},
    ),
    Row(
        "classify-with-context",
        "POST",
        CLASSIFY,
        {"context": {"c": "ctx", "w": [0.5]}, "examples": [{"a": 1}, {"a": 2}]},
        expect_grpc={
            "method": "Classify",
            "input": {
                "example_list_with_context": {
                    "context": example({"c": ("bytes", [b"ctx"]), "w": ("float", [0.5])}),
                    "examples": [example({"a": ("int64", [1])}), example({"a": ("int64", [2])})],
                }
            },
        },
        expect_json={"results": [[["neg", 0.25], ["pos", 0.75]], [["neg", 0.25], ["pos", 0.75]]]},
    ),
    Row(
        "classify-nan-feature",
        "POST",
        CLASSIFY,
        b'{"examples": [{"f": [NaN, Infinity]}]}',
        expect_grpc={
            "method": "Classify",
            "input": {
                "example_list": {"examples": [lambda ex: math.isnan(ex.features.feature["f"].float_list.value[0])]}
            },
        },
        expect_json={"results": [[["neg", 0.25], ["pos", 0.75]]]},
    ),
    Row(
        "classify-scripted-results",
        "POST",
        CLASSIFY,
        {"examples": [{"a": 1}, {"a": 2}]},
        grpc_reply=classify_reply([("", 0.2), ("bike", 0.7)], [("car", 0.426006019)]),
        expect_json={"results": [[["", 0.2], ["bike", 0.7]], [["car", F32(0.426006019)]]]},
    ),
    Row(
        "classify-empty-results",
        "POST",
        CLASSIFY,
        {"examples": [{"a": 1}]},
        grpc_reply=classify_reply(),
        expect_status=400,
        expect_json=error_facts(icontains=["empty"]),
    ),
    Row(
        "regress-typed",
        "POST",
        REGRESS,
        {"examples": [{"a": 1.0, "b": 2}, {"a": 3.0}]},
        expect_grpc={
            "method": "Regress",
            "model_spec": spec(),
            "input": {
                "example_list": {
                    "examples": [
                        example({"a": ("float", [1.0]), "b": ("int64", [2])}),
                        example({"a": ("float", [3.0])}),
                    ]
                }
            },
        },
        expect_json={"results": [3.5, 3.5]},
    ),
    Row(
        "regress-nonfinite",
        "POST",
        REGRESS,
        {"examples": [{"a": 1}, {"a": 2}, {"a": 3}]},
        grpc_reply=regress_reply(math.nan, math.inf, 0.1),
        expect_json={"results": [math.nan, math.inf, 0.1]},
        expect_text=bare_tokens,
    ),
    Row(
        "regress-empty-results",
        "POST",
        REGRESS,
        {"examples": [{"a": 1}]},
        grpc_reply=regress_reply(),
        expect_status=400,
        expect_json=error_facts(icontains=["empty"]),
    ),
    Row(
        "regress-signature-name-not-string",
        "POST",
        REGRESS,
        {"signature_name": [], "examples": [{"a": 1}]},
        expect_status=400,
        expect_grpc=NoCall("Regress"),
        expect_json=error_facts(contains=["signature_name"]),
    ),
    *example_error_rows(CLASSIFY, "Classify"),
    *example_error_rows(REGRESS, "Regress"),
]

# --------------------------------------------------------------------------- status and metadata (8, 9)


def status_reply() -> get_model_status_pb2.GetModelStatusResponse:
    reply = get_model_status_pb2.GetModelStatusResponse()
    loading = reply.model_version_status.add(version=2**53 + 1, state=get_model_status_pb2.ModelVersionStatus.LOADING)
    loading.status.SetInParent()
    ended = reply.model_version_status.add(version=3, state=get_model_status_pb2.ModelVersionStatus.END)
    ended.status.error_code = error_codes_pb2.UNKNOWN
    ended.status.error_message = "could not load"
    return reply


def multi_sigs() -> dict[str, Any]:
    return {"serving_default": MULTI}


SHAPE_ROWS = [
    Row(
        "status-all-fields",
        "GET",
        V1,
        grpc_reply=status_reply(),
        expect_json={
            "model_version_status": [
                {"version": str(2**53 + 1), "state": "LOADING", "status": {"error_code": "OK", "error_message": ""}},
                {
                    "version": "3",
                    "state": "END",
                    "status": {"error_code": "UNKNOWN", "error_message": "could not load"},
                },
            ]
        },
    ),
    Row(
        "metadata-unknown-rank",
        "GET",
        "/v1/models/types/metadata",
        expect_grpc=metadata_call(name="types"),
        expect_json=metadata_json("types", 1, dtype_signatures()),
    ),
    Row(
        "metadata-multi",
        "GET",
        "/v1/models/multi/versions/1/metadata",
        expect_json=metadata_json("multi", 1, multi_sigs()),
    ),
]

# --------------------------------------------------------------------------- gRPC errors (7.2)

GRPC_TABLE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def grpc_error_rows() -> list[Row]:
    rows = [
        Row(
            f"grpc-{code.name.lower()}",
            "POST",
            f"{V1}:predict",
            PREDICT_BODY,
            grpc_reply=Abort(code, f"backend says {code.name}: input size does not match"),
            expect_grpc=predict_call(PREDICT_SENT),
            expect_status=status,
            expect_json=error(f"backend says {code.name}: input size does not match"),
        )
        for code, status in GRPC_TABLE.items()
    ]
    long_message = "x" * 5000
    return [
        *rows,
        Row(
            "grpc-error-on-status",
            "GET",
            V1,
            grpc_reply=Abort(grpc.StatusCode.PERMISSION_DENIED, "no status"),
            expect_status=403,
            expect_json=error("no status"),
        ),
        Row(
            "grpc-error-on-metadata",
            "GET",
            f"{V1}/metadata",
            grpc_reply=Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down"),
            expect_status=429,
            expect_json=error("slow down"),
        ),
        Row(
            "grpc-error-on-classify",
            "POST",
            CLASSIFY,
            {"examples": [{"a": 1}]},
            grpc_reply=Abort(grpc.StatusCode.INVALID_ARGUMENT, "Expected classification signature method_name"),
            expect_status=400,
            expect_json=error("Expected classification signature method_name"),
        ),
        Row(
            "grpc-error-long-message-passes",
            "POST",
            REGRESS,
            {"examples": [{"a": 1}]},
            grpc_reply=Abort(grpc.StatusCode.INTERNAL, long_message),
            expect_status=500,
            expect_json=error(long_message),
        ),
    ]


async def stop_backend(fake: FakeModelServer) -> None:
    await fake.stop(0)


TRANSPORT_ROWS = [
    Row(
        "dead-backend-predict",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        prepare=stop_backend,
        expect_status=503,
        expect_json=envelope,
    ),
    Row("dead-backend-status", "GET", V1, prepare=stop_backend, expect_status=503, expect_json=envelope),
    # grpc.aio hands the gateway None for an undecodable reply: a backend fault, never a traceback.
    Row(
        "malformed-backend-reply",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        grpc_reply=MALFORMED,
        expect_status=frozenset({500, 502}),
        expect_json=envelope,
    ),
]

# --------------------------------------------------------------------------- deadlines
#
# A backend deadline from config becomes the gRPC deadline, and running out of it is a 504.
# These rows run after one warm request (test_deadline_row), so the signature lookup never spends
# the deadline under test, and they check what the backend saw (the deadline each call carried)
# rather than how long anything took. The short deadline is 1 s, not 0.3 s: long enough that a
# busy machine still delivers the call before it runs out, and the backend's replies (a 60 s
# delay, a hang) are far on the other side of it.

SHORT_DEADLINE_SECONDS = 1.0
LONG_DEADLINE_SECONDS = 20.0
WIRE_SLACK_SECONDS = 0.1  # gRPC rounds the timeout it sends up to its own granularity
SHORT_TIMEOUT = {"backends": {"default": {"timeout_seconds": SHORT_DEADLINE_SECONDS}}}
LONG_TIMEOUT = {"backends": {"default": {"timeout_seconds": LONG_DEADLINE_SECONDS}}}


class SeenDeadlines:
    """A reply that records the deadline each call carried, then answers with ``then``."""

    def __init__(self, then: Any = None) -> None:
        self.then = then
        self.remaining: list[float] = []

    def __call__(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        remaining = context.time_remaining()
        self.remaining.append(math.inf if remaining is None else remaining)
        return self.then

    async def reset(self, fake: FakeModelServer) -> None:
        self.remaining.clear()

    def within(self, seconds: float, *, expect: Mapping[str, Any] | None = None) -> Any:
        """A gRPC check: every call carried a deadline of at most ``seconds`` (and matched ``expect``)."""

        def check(fake: FakeModelServer) -> list[str]:
            problems = grpc_problems(expect, fake) if expect is not None else []
            if not self.remaining:
                return [*problems, "the backend saw no call"]
            if any(not 0 < left <= seconds + WIRE_SLACK_SECONDS for left in self.remaining):
                problems.append(f"deadlines seen {self.remaining}, expected within {seconds}s")
            return problems

        return check


def deadline_rows() -> list[Row]:
    delayed, hung, timely = SeenDeadlines(Delay(60.0)), SeenDeadlines(HANG), SeenDeadlines(Delay(0.05))
    return [
        Row(
            "deadline-delay",
            "POST",
            f"{V1}:predict",
            PREDICT_BODY,
            settings=SHORT_TIMEOUT,
            prepare=delayed.reset,
            grpc_reply=delayed,
            expect_grpc=delayed.within(SHORT_DEADLINE_SECONDS, expect=predict_call(PREDICT_SENT)),
            expect_status=504,
            expect_json=envelope,
        ),
        Row(
            "deadline-hang",
            "POST",
            f"{V1}:regress",
            REGRESS_BODY,
            settings=SHORT_TIMEOUT,
            prepare=hung.reset,
            grpc_reply={"Regress": hung},
            expect_grpc=hung.within(SHORT_DEADLINE_SECONDS),
            expect_status=504,
            expect_json=envelope,
        ),
        Row(
            "deadline-then-answer-in-time",
            "POST",
            f"{V1}:predict",
            PREDICT_BODY,
            settings=LONG_TIMEOUT,
            prepare=timely.reset,
            grpc_reply=timely,
            expect_grpc=timely.within(LONG_DEADLINE_SECONDS),
            expect_json=PREDICT_JSON,
        ),
    ]


DEADLINE_ROWS = deadline_rows()


async def warm_signatures(client: Any, fake: FakeModelServer) -> None:
    """One predict with a generous deadline of its own, so the rows' calls find the signature cached."""
    headers = {"X-Request-Timeout": "30"}
    async with client.post(f"{V1}:predict", json=PREDICT_BODY, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    fake.clear_calls()


# --------------------------------------------------------------------------- request bodies (3, 1.4)

DEEP = b'{"ignored": ' + b"[" * 100_000 + b"]" * 100_000 + b', "instances": [1.0]}'
LIMITED = {"server": {"max_request_bytes": 1024}}
BIG_VALUES = [(i % 4096) / 8 for i in range(1_400_000)]


def big_body() -> bytes:
    body = b'{"instances": [' + ", ".join(repr(v) for v in BIG_VALUES).encode() + b"]}"
    assert len(body) >= 10 * 1024 * 1024
    return body


BODY_ROWS = [
    Row(
        "json-trailing-garbage",
        "POST",
        f"{V1}:predict",
        b'{"instances": [1.0]} junk',
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "json-duplicate-keys",
        "POST",
        f"{V1}:predict",
        b'{"instances": [1.0], "instances": [2.0]}',
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(contains=["instances"]),
    ),
    Row(
        "json-too-deep",
        "POST",
        f"{V1}:predict",
        DEEP,
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "json-empty-body",
        "POST",
        f"{V1}:predict",
        b"",
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=error_facts(icontains=["empty"]),
    ),
    Row(
        "json-whitespace-body",
        "POST",
        f"{V1}:predict",
        b"  \n",
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "json-invalid",
        "POST",
        f"{V1}:predict",
        b'{"instances": [1, 2',
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "json-not-json",
        "POST",
        f"{V1}:predict",
        b"instances = [1, 2]",
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "json-root-not-object",
        "POST",
        f"{V1}:predict",
        b"[1.0]",
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "json-number-too-big",
        "POST",
        f"{V1}:predict",
        b'{"instances": [1e309]}',
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "json-lowercase-nan",
        "POST",
        f"{V1}:predict",
        b'{"instances": [nan]}',
        expect_status=400,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "json-invalid-classify",
        "POST",
        CLASSIFY,
        b'{"examples": [',
        expect_status=400,
        expect_grpc=NoCall("Classify"),
        expect_json=envelope,
    ),
    Row(
        "content-type-not-checked",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        headers={"Content-Type": "text/plain"},
        expect_grpc=predict_call(PREDICT_SENT),
        expect_json=PREDICT_JSON,
    ),
    Row(
        "body-over-limit",
        "POST",
        f"{V1}:predict",
        {"instances": [1.0] * 1000},
        settings=LIMITED,
        expect_status=413,
        expect_grpc=NOT_PREDICTED,
        expect_json=envelope,
    ),
    Row(
        "body-under-limit",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        settings=LIMITED,
        expect_grpc=predict_call(PREDICT_SENT),
        expect_json=PREDICT_JSON,
    ),
]

ALL_ROWS: list[Row] = [
    *route_rows(V1, "v1"),
    *route_rows("/model-serving/my-dep", "dep"),
    *SERVABLE_ROWS,
    *DEPLOYMENT_ROWS,
    *GRAMMAR_ROWS,
    *dtype_rows(),
    *bad_value_rows(),
    *UNSUPPORTED_ROWS,
    *PREDICT_ROWS,
    *RESPONSE_ROWS,
    *EXAMPLE_ROWS,
    *SHAPE_ROWS,
    *grpc_error_rows(),
    *TRANSPORT_ROWS,
    *BODY_ROWS,
]


def test_row_ids_are_unique() -> None:
    ids = [row.id for row in ALL_ROWS + DEADLINE_ROWS]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("row", ALL_ROWS, ids=lambda row: row.id)
async def test_row(row: Row, fake_backend: FakeModelServer, make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client(row.settings)
    await run_row(client, fake_backend, row)


@pytest.mark.parametrize("row", DEADLINE_ROWS, ids=lambda row: row.id)
async def test_deadline_row(row: Row, fake_backend: FakeModelServer, make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client(row.settings)
    await warm_signatures(client, fake_backend)
    await run_row(client, fake_backend, row)


async def test_large_predict_body(fake_backend: FakeModelServer, make_gateway_client: MakeGatewayClient) -> None:
    """A >= 10 MB predict body goes through (no 1 MiB body trap, no 4 MiB gRPC trap)."""
    sent = np.asarray(BIG_VALUES, np.float32)
    row = Row(
        "large-body",
        "POST",
        f"{V1}:predict",
        big_body(),
        expect_grpc=predict_call({"x": sent}),
        expect_json={"predictions": Floats32(sent * np.float32(0.5) + np.float32(2))},
    )
    await run_row(await make_gateway_client(), fake_backend, row)


async def test_deadline_cancels_the_backend_call(
    fake_backend: FakeModelServer, make_gateway_client: MakeGatewayClient
) -> None:
    """When the deadline runs out the gateway cancels the call, and the backend notices."""
    client = await make_gateway_client(SHORT_TIMEOUT)
    await warm_signatures(client, fake_backend)
    row = Row(
        "deadline-cancels",
        "POST",
        f"{V1}:predict",
        PREDICT_BODY,
        settings=SHORT_TIMEOUT,
        grpc_reply=HANG,
        expect_status=504,
        expect_json=envelope,
    )
    await run_row(client, fake_backend, row)
    for _ in range(1500):  # up to 30 s: only a cancellation that never comes gets that far
        if "Predict" in fake_backend.cancelled:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"backend never saw the cancellation; calls: {fake_backend.methods()}")


async def test_backend_comes_back(fake_backend: FakeModelServer, make_gateway_client: MakeGatewayClient) -> None:
    """After a dead backend restarts on the same port, requests succeed again (503 meanwhile)."""
    client = await make_gateway_client()
    down = Row("down", "GET", V1, prepare=stop_backend, expect_status=503, expect_json=envelope)
    await run_row(client, fake_backend, down)
    await fake_backend.restart()
    up = Row("up", "GET", V1, expect_json=STATUS_2_1)
    for _ in range(50):
        resp = await client.get(V1)
        if resp.status == 200:
            break
        await asyncio.sleep(0.2)
    await run_row(client, fake_backend, up)
