"""The protobuf messages sent to ModelServer, built in one place, and the names of the message types
the rest of the gateway passes around without looking inside.

Only ``codec/`` and ``backend/`` import the generated stubs (tests/test_architecture.py checks it).
``pipeline/``, ``routing/`` and the fronts hold a ``SignatureDef`` or a ``ModelSpec`` as an opaque
value and hand it back to functions here or in the other codec modules.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import DecodeError

from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)
from gateway.errors import MalformedRequest

ModelSpec = model_pb2.ModelSpec
SignatureDef = meta_graph_pb2.SignatureDef
Signatures = Mapping[str, meta_graph_pb2.SignatureDef]
Examples = input_pb2.Input
StatusReply = get_model_status_pb2.GetModelStatusResponse
MetadataReply = get_model_metadata_pb2.GetModelMetadataResponse
ClassifyReply = classification_pb2.ClassificationResponse
RegressReply = regression_pb2.RegressionResponse

SIGNATURE_DEF_FIELD = "signature_def"


def model_spec(
    name: str, version: int | None = None, label: str | None = None, signature_name: str = ""
) -> model_pb2.ModelSpec:
    """The one ModelSpec builder: a version wins over a label; neither means the latest."""
    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    if version is not None:
        spec.version.value = version
    elif label is not None:
        spec.version_label = label
    return spec


def status_request(spec: model_pb2.ModelSpec) -> get_model_status_pb2.GetModelStatusRequest:
    return get_model_status_pb2.GetModelStatusRequest(model_spec=spec)


def metadata_request(spec: model_pb2.ModelSpec) -> get_model_metadata_pb2.GetModelMetadataRequest:
    return get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=[SIGNATURE_DEF_FIELD])


def classify_request(spec: model_pb2.ModelSpec, examples: input_pb2.Input) -> classification_pb2.ClassificationRequest:
    return classification_pb2.ClassificationRequest(model_spec=spec, input=examples)


def regress_request(spec: model_pb2.ModelSpec, examples: input_pb2.Input) -> regression_pb2.RegressionRequest:
    return regression_pb2.RegressionRequest(model_spec=spec, input=examples)


def resolved_version(reply: get_model_metadata_pb2.GetModelMetadataResponse) -> int:
    """The version a metadata reply answered for (what a label resolved to)."""
    return int(reply.model_spec.version.value)


def replied_version(
    reply: predict_pb2.PredictResponse
    | classification_pb2.ClassificationResponse
    | regression_pb2.RegressionResponse
    | get_model_metadata_pb2.GetModelMetadataResponse,
) -> int | None:
    """The version ModelServer says answered, from the reply's ``model_spec``; None if it did not say."""
    if not reply.HasField("model_spec") or not reply.model_spec.HasField("version"):
        return None
    return int(reply.model_spec.version.value)


def batch_major(infos: Mapping[str, meta_graph_pb2.TensorInfo]) -> bool:
    """Every tensor has a known rank and a dim 0 of unknown size (-1): a batch dimension."""
    return bool(infos) and all(
        not info.tensor_shape.unknown_rank and info.tensor_shape.dim and info.tensor_shape.dim[0].size == -1
        for info in infos.values()
    )


def batchable(sig: meta_graph_pb2.SignatureDef) -> bool:
    """Whether requests to ``sig`` may be merged along dim 0 and their outputs sliced back."""
    return batch_major(sig.inputs) and batch_major(sig.outputs)


# --------------------------------------------------------------------------- pass-through requests

# ``model_spec`` is field 1 of every request TF Serving's gRPC services take (Predict, Classify,
# Regress, GetModelMetadata, GetModelStatus), so one walker serves them all.
_MODEL_SPEC_FIELD = 1
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10
_MAX_TAG_BYTES = 5  # a tag is a uint32: protobuf refuses a longer encoding


def request_model_spec(payload: bytes) -> ModelSpec:
    """The ``model_spec`` of a serialised TF Serving request, without parsing anything else.

    Walks the top-level fields only, so a large tensor is skipped, not copied. Several
    occurrences of the field merge, as protobuf's parser merges them. Malformed bytes (a
    truncated field, an unknown wire type, a spec that does not parse) raise MalformedRequest.
    """
    spec = model_pb2.ModelSpec()
    for field_number, _, start, end in _fields(payload):
        if field_number == _MODEL_SPEC_FIELD:
            try:
                spec.MergeFromString(payload[start:end])
            except DecodeError as exc:
                raise MalformedRequest("The request's model_spec does not parse") from exc
    return spec


def with_model_spec(payload: bytes, spec: ModelSpec) -> bytes:
    """``payload`` with its ``model_spec`` replaced by ``spec``; every other field byte for byte."""
    view = memoryview(payload)
    head = spec.SerializeToString()
    parts: list[bytes | memoryview] = [_varint(_MODEL_SPEC_FIELD << 3 | _LEN), _varint(len(head)), head]
    kept = 0  # where the run of bytes still to copy starts
    for field_number, record, _, end in _fields(payload):
        if field_number == _MODEL_SPEC_FIELD:
            parts.append(view[kept:record])
            kept = end
    parts.append(view[kept:])
    return b"".join(parts)


def field_spans(payload: bytes, number: int) -> list[tuple[int, int]]:
    """(value start, value end) of each top-level length-delimited record of field ``number``."""
    return [(start, end) for field_number, _, start, end in _fields(payload) if field_number == number]


def _fields(payload: bytes) -> list[tuple[int, int, int, int]]:
    """(field number, record start, value start, value end) of each top-level length-delimited
    field; fields of other wire types are checked and skipped."""
    found: list[tuple[int, int, int, int]] = []
    pos, size = 0, len(payload)
    while pos < size:
        record = pos
        tag, pos = _read_varint(payload, pos, _MAX_TAG_BYTES)
        wire_type, field_number = tag & 7, tag >> 3
        if field_number == 0 or tag >> 32:  # reserved, or not a uint32: protobuf refuses both
            raise MalformedRequest("The request is not a valid protobuf message")
        if wire_type == _VARINT:
            _, pos = _read_varint(payload, pos)
            continue
        if wire_type == _LEN:
            length, pos = _read_varint(payload, pos)
            end = pos + length
            if end > size:
                raise MalformedRequest("The request is truncated")
            found.append((field_number, record, pos, end))
            pos = end
            continue
        width = {_FIXED64: 8, _FIXED32: 4}.get(wire_type)
        if width is None or pos + width > size:
            raise MalformedRequest("The request is not a valid protobuf message")
        pos += width
    return found


def _read_varint(payload: bytes, pos: int, max_bytes: int = _MAX_VARINT_BYTES) -> tuple[int, int]:
    value = shift = 0
    for index in range(pos, min(pos + max_bytes, len(payload))):
        byte = payload[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise MalformedRequest("The request is not a valid protobuf message")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
