"""The bench's models and cases: request bodies, backend replies and the expected answers.

Everything is deterministic (a fixed seed), so the backend, the transport floor and the
correctness checks agree without talking to each other. Pure: no sockets.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from gateway._pb.tensorflow.core.example import example_pb2
from gateway._pb.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
)

IMAGE = (224, 224, 3)
CLASSES = 3
EXAMPLES = 32
B64_ROWS = 16


@dataclass(frozen=True, slots=True)
class Model:
    """A bench model: one input, one output, both batch-major."""

    name: str
    in_dtype: int
    in_shape: tuple[int, ...]  # without the batch dim
    out_shape: tuple[int, ...]

    def signature(self) -> meta_graph_pb2.SignatureDef:
        sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
        sig.inputs["x"].CopyFrom(_info("x:0", self.in_dtype, self.in_shape))
        sig.outputs["y"].CopyFrom(_info("y:0", types_pb2.DT_FLOAT, self.out_shape))
        return sig


MODELS = {
    m.name: m
    for m in (
        Model("small", types_pb2.DT_FLOAT, (3,), (3,)),
        Model("batch", types_pb2.DT_FLOAT, (100,), (10,)),
        Model("image", types_pb2.DT_FLOAT, IMAGE, IMAGE),
        Model("strings", types_pb2.DT_STRING, (), (5,)),
    )
}


def _info(name: str, dtype: Any, shape: tuple[int, ...]) -> meta_graph_pb2.TensorInfo:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=-1)]
    dims += [tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
    return meta_graph_pb2.TensorInfo(name=name, dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims))


@functools.cache
def output_rows(model: str, batch: int) -> npt.NDArray[np.float32]:
    """The backend's answer for ``batch`` rows: row i depends only on i, so merged batches split cleanly."""
    shape = MODELS[model].out_shape
    per_row = int(np.prod(shape))
    base = np.random.default_rng(7).standard_normal(per_row).astype(np.float32)
    rows = np.stack([base + np.float32(i) for i in range(batch)])
    return rows.reshape((batch, *shape))


@functools.cache
def predict_reply(model: str, batch: int) -> bytes:
    """A PredictResponse with typed ``float_val``, as ModelServer answers by default."""
    out = output_rows(model, batch)
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=out.ravel().tolist())
    tensor.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in out.shape)
    reply = predict_pb2.PredictResponse(model_spec=model_pb2.ModelSpec(name=model, signature_name="serving_default"))
    reply.outputs["y"].CopyFrom(tensor)
    reply.model_spec.version.value = 1
    return reply.SerializeToString()


@functools.cache
def metadata_reply(model: str) -> bytes:
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    sig_map.signature_def["serving_default"].CopyFrom(MODELS[model].signature())
    reply = get_model_metadata_pb2.GetModelMetadataResponse()
    reply.model_spec.name = model
    reply.model_spec.version.value = 1
    reply.metadata["signature_def"].Pack(sig_map)
    return reply.SerializeToString()


@functools.cache
def status_reply() -> bytes:
    reply = get_model_status_pb2.GetModelStatusResponse()
    reply.model_version_status.add(version=1, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    return reply.SerializeToString()


def _scores() -> npt.NDArray[np.float32]:
    return np.random.default_rng(11).random((EXAMPLES, CLASSES)).astype(np.float32)


@functools.cache
def classify_reply() -> bytes:
    reply = classification_pb2.ClassificationResponse()
    reply.model_spec.name = "cls"
    for row in _scores():
        item = reply.result.classifications.add()
        for k, score in enumerate(row.tolist()):
            item.classes.add(label=f"class{k}", score=score)
    return reply.SerializeToString()


# --------------------------------------------------------------------------- client side


@functools.cache
def _image() -> npt.NDArray[np.float32]:
    return np.random.default_rng(3).random(IMAGE).astype(np.float32)


def _floats(shape: tuple[int, ...], seed: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _b64_rows() -> list[dict[str, str]]:
    rng = np.random.default_rng(5)
    return [{"b64": base64.b64encode(rng.bytes(2048)).decode()} for _ in range(B64_ROWS)]


def _examples() -> list[dict[str, Any]]:
    rng = np.random.default_rng(9)
    return [{"f": rng.random(8).astype(np.float32).tolist(), "g": f"token{i}", "n": i} for i in range(EXAMPLES)]


@dataclass(frozen=True, slots=True)
class Case:
    """One request the bench repeats, and how to recognise a right answer."""

    name: str
    method: str
    path: str
    body: bytes
    rpc: str  # backend method the request becomes
    grpc_request: bytes  # what the floor and the direct client send
    check: Callable[[Any], bool]  # given what ``reply`` made of the answer
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)

    def reply(self, body: bytes, headers: Mapping[str, str]) -> Any:
        """What ``check`` is given: the JSON document, or for V2 infer the JSON header and the bytes after it."""
        return v2_reply(body, headers) if self.protocol == "v2" else json.loads(body)

    @property
    def cpu_bound(self) -> bool:
        return len(self.body) > 100_000

    @property
    def protocol(self) -> str:
        """``v2`` for the Open Inference Protocol, which the TensorFlow baseline does not speak; else ``v1``."""
        return "v2" if self.path.startswith("/v2/") else "v1"


def _predict_request(model: str, values: Any, dtype: Any) -> bytes:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model))
    tensor = request.inputs["x"]
    tensor.dtype = dtype
    array = np.asarray(values)
    if dtype == types_pb2.DT_STRING:
        tensor.string_val.extend(values)
        array = np.empty(len(values))
    else:
        tensor.tensor_content = array.astype(np.float32).tobytes()
    tensor.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape)
    return request.SerializeToString()


def _predict_check(model: str, batch: int, key: str) -> Callable[[Any], bool]:
    def check(doc: Any) -> bool:
        got = np.asarray(doc[key], dtype=np.float32)
        want = output_rows(model, batch)
        return bool(got.shape == want.shape and np.array_equal(got, want))

    return check


def _classify_check(doc: Any) -> bool:
    scores = np.asarray([[c[1] for c in item] for item in doc["results"]], dtype=np.float32)
    labels = [[c[0] for c in item] for item in doc["results"]]
    return np.array_equal(scores, _scores()) and labels == [[f"class{k}" for k in range(CLASSES)]] * EXAMPLES


def _status_check(doc: Any) -> bool:
    return bool(doc["model_version_status"][0]["state"] == "AVAILABLE")


def _metadata_check(doc: Any) -> bool:
    return "serving_default" in doc["metadata"]["signature_def"]["signature_def"]


def _predict_case(name: str, model: str, doc_key: str, values: Any, batch: int, prefix: str = "/v1/models/") -> Case:
    body = orjson.dumps({doc_key: values}, option=orjson.OPT_SERIALIZE_NUMPY)
    out_key = "predictions" if doc_key == "instances" else "outputs"
    dtype = MODELS[model].in_dtype
    raw = [base64.b64decode(v["b64"]) for v in values] if dtype == types_pb2.DT_STRING else values
    return Case(
        name,
        "POST",
        f"{prefix}{model}:predict",
        body,
        "Predict",
        _predict_request(model, raw, dtype),
        _predict_check(model, batch, out_key),
    )


def _classify_case() -> Case:
    examples = _examples()
    request = classification_pb2.ClassificationRequest(model_spec=model_pb2.ModelSpec(name="cls"))
    request.input.CopyFrom(input_pb2.Input())
    for ex in examples:
        proto = example_pb2.Example()
        proto.features.feature["f"].float_list.value.extend(ex["f"])
        proto.features.feature["g"].bytes_list.value.append(ex["g"].encode())
        proto.features.feature["n"].int64_list.value.append(ex["n"])
        request.input.example_list.examples.append(proto)
    body = orjson.dumps({"examples": examples})
    return Case(
        "classify_32", "POST", "/v1/models/cls:classify", body, "Classify", request.SerializeToString(), _classify_check
    )


def _get_case(name: str, path: str, rpc: str, request: bytes, check: Callable[[Any], bool]) -> Case:
    return Case(name, "GET", path, b"", rpc, request, check)


@functools.cache
def all_cases() -> tuple[Case, ...]:
    small = [[1.0, 2.0, 3.0]]
    spec = model_pb2.ModelSpec(name="small")
    status = get_model_status_pb2.GetModelStatusRequest(model_spec=spec).SerializeToString()
    meta = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
    return (
        _predict_case("small_predict", "small", "instances", small, 1),
        _predict_case("batch_64x100", "batch", "instances", _floats((64, 100), 1), 64),
        _predict_case("image_row", "image", "instances", _image()[None], 1),
        _predict_case("image_columnar", "image", "inputs", _image()[None], 1),
        _predict_case("b64_strings", "strings", "instances", _b64_rows(), B64_ROWS),
        _classify_case(),
        _get_case("status_get", "/v1/models/small", "GetModelStatus", status, _status_check),
        _get_case(
            "metadata_get", "/v1/models/small/metadata", "GetModelMetadata", meta.SerializeToString(), _metadata_check
        ),
        *v2_image_cases(),
    )


def batched_case() -> Case:
    """Small predicts through a deployment that has micro-batching switched on."""
    case = _predict_case("small_predict_batched", "small", "instances", [[1.0, 2.0, 3.0]], 1, "/model-serving/")
    return case


def by_name(name: str) -> Case:
    return {c.name: c for c in (*all_cases(), batched_case())}[name]


# --------------------------------------------------------------------------- Open Inference Protocol (V2)
# The image of ``image_row`` sent as V2 infer, binary and JSON, to price each wire format against v1 JSON.

V2_IMAGE_PATH = "/v2/models/image/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"
# A case measured in the same interleaved rounds as another, so their CPU ratio pairs round by round.
MEASURED_BESIDE = {"image_v2_binary": "image_row", "image_v2_json": "image_row"}


def _v2_input(**fields: Any) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "shape": [1, *IMAGE], **fields}


def _v2_binary_body() -> tuple[bytes, int]:
    """JSON header, then the image's raw little-endian FP32 bytes; the output asked for as raw bytes too."""
    raw = _image().astype("<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [_v2_input(parameters={"binary_data_size": len(raw)})],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    )
    return header + raw, len(header)


def v2_reply(body: bytes, headers: Mapping[str, str]) -> tuple[Any, bytes]:
    """A V2 infer reply split into its JSON header and the raw bytes after it (none for plain JSON)."""
    size = int(headers.get(HEADER_LENGTH.lower(), len(body)))
    return json.loads(body[:size]), body[size:]


def _v2_check(binary: bool) -> Callable[[Any], bool]:
    """The one output ``y``: FP32, the image's shape, and the backend's values decoded from its bytes or JSON."""

    def check(reply: tuple[Any, bytes]) -> bool:
        doc, tail = reply
        (out,) = doc["outputs"]
        if (doc["model_name"], out["name"], out["datatype"]) != ("image", "y", "FP32"):
            return False
        if binary:
            ok = out["parameters"]["binary_data_size"] == len(tail) and "data" not in out
            got = np.frombuffer(tail, dtype="<f4")
        else:
            ok = tail == b""
            got = np.asarray(out["data"], dtype=np.float32)
        want = output_rows("image", 1)
        return ok and out["shape"] == list(want.shape) and np.array_equal(got.reshape(want.shape), want)

    return check


@functools.cache
def v2_image_cases() -> tuple[Case, ...]:
    grpc_request = _predict_request("image", _image()[None], types_pb2.DT_FLOAT)
    binary_body, header_size = _v2_binary_body()
    binary_headers = (("Content-Type", "application/octet-stream"), (HEADER_LENGTH, str(header_size)))
    json_body = orjson.dumps({"inputs": [_v2_input(data=_image().ravel())]}, option=orjson.OPT_SERIALIZE_NUMPY)
    binary = _v2_check(True)
    return (
        Case("image_v2_binary", "POST", V2_IMAGE_PATH, binary_body, "Predict", grpc_request, binary, binary_headers),
        Case("image_v2_json", "POST", V2_IMAGE_PATH, json_body, "Predict", grpc_request, _v2_check(False)),
    )


# Deployments of the small model whose traffic management the bench prices (bench/run.py configures them).
TRAFFIC_DEPLOYMENTS = {
    "gateway+split": "small-split",  # two arms, 50/50 by a random draw
    "gateway+shadow": "small-shadow",  # pinned to one version, every request copied to another and compared
}


def traffic_case(server: str) -> Case:
    """The small predict through one of ``TRAFFIC_DEPLOYMENTS``: the same answer, another route."""
    small = all_cases()[0]
    return dataclasses.replace(
        small, name=f"small_predict_{server}", path=f"/model-serving/{TRAFFIC_DEPLOYMENTS[server]}:predict"
    )
