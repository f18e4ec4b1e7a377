"""The Open Inference Protocol's gRPC messages <-> the OIP codec's requests and arrays. Pure.

``docs/spec/open-inference-protocol.md`` §8 is the contract. A ``ModelInferRequest`` becomes the
same ``oip.InferRequest`` a REST body does, so signature checks, datatypes, shapes and output
selection are ``codec/oip.py``'s, and the gRPC front differs from REST only in framing:

* inputs are either all raw (``raw_input_contents``, one entry per input, in order: the REST
  binary segment's encoding) or all typed (``contents``, the one field the datatype names:
  BOOL ``bool_contents``, INT8/16/32 ``int_contents``, INT64 ``int64_contents``, UINT8/16/32
  ``uint_contents``, UINT64 ``uint64_contents``, FP32/FP64 ``fp32_/fp64_contents``, BYTES
  ``bytes_contents``; FP16 and BF16 only raw). Typed values are range-checked and packed into
  that same raw encoding, so both forms reach one decoder;
* replies always carry ``raw_output_contents``, one per output in order (tritonclient.grpc
  reads nothing else for numbers).

Anything malformed is an ``InvalidArgument`` (gRPC INVALID_ARGUMENT) naming the input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError, Message

from gateway._pb._pool import POOL
from gateway._pb.inference import open_inference_grpc_pb2 as pb
from gateway._pb.tensorflow_serving.apis import (  # noqa: F401  (the services' files join the pool)
    get_model_status_pb2,
    model_service_pb2,
    prediction_service_pb2,
)
from gateway.codec import oip
from gateway.codec.messages import SignatureDef
from gateway.codec.tensors import DType
from gateway.errors import InvalidArgument, MalformedRequest, Unimplemented

SERVICE = "inference.GRPCInferenceService"
# Where reflection finds the descriptors of every service the gRPC port serves: importing a
# generated module adds its file, so TF Serving's two services are imported above.
DESCRIPTOR_POOL = POOL


def describe_too(*serialized_files: bytes) -> None:
    """Add other services' proto files (grpc.health.v1's, reflection's own) to ``DESCRIPTOR_POOL``, so
    reflection can describe every service the port lists. A file already there is left as it is."""
    for raw in serialized_files:
        name = descriptor_pb2.FileDescriptorProto.FromString(raw).name
        try:
            DESCRIPTOR_POOL.FindFileByName(name)
        except KeyError:
            DESCRIPTOR_POOL.AddSerializedFile(raw)


INT64_MAX = 2**63 - 1

# datatype -> the one InferTensorContents field that may carry it (OIP §8)
CONTENTS_FIELD: Mapping[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

ModelInferRequest = pb.ModelInferRequest
ModelReadyRequest = pb.ModelReadyRequest
ModelMetadataRequest = pb.ModelMetadataRequest


def parse(message_type: type[Message], raw: bytes) -> Any:
    """The request message, or INVALID_ARGUMENT when the bytes do not parse as one."""
    try:
        return message_type.FromString(raw)
    except DecodeError:
        raise InvalidArgument(f"The request is not a valid {message_type.DESCRIPTOR.full_name}") from None


def version_of(text: str) -> tuple[int | None, str | None]:
    """A request's ``version`` string: "" any, digits a version (int64), other text a label (OIP §2)."""
    if not text:
        return None, None
    if text.isascii() and text.isdigit():
        version = int(text)
        if version > INT64_MAX:
            raise MalformedRequest(f"Failed to convert version: {text} to numeric.")
        return version, None
    return None, text


# --------------------------------------------------------------------------- infer


def infer_request(message: pb.ModelInferRequest) -> oip.InferRequest:
    """The codec's request for a ``ModelInferRequest``; framing and structure checked, tensors later."""
    signature_name = _string_parameter(message.parameters, "signature_name", "parameters")
    if not message.inputs:
        raise InvalidArgument("'inputs' must hold at least one input tensor")
    raw = list(message.raw_input_contents)
    typed = [bool(item.contents.ListFields()) for item in message.inputs]
    if raw and any(typed):
        named = message.inputs[typed.index(True)].name
        raise InvalidArgument(
            f"input '{named}' has typed contents, but the request also has raw_input_contents: "
            "give every input raw or every input typed",
            details={"input": named},
        )
    if raw and len(raw) != len(message.inputs):
        raise InvalidArgument(
            f"raw_input_contents holds {len(raw)} entries for {len(message.inputs)} inputs",
            details={"raw_input_contents": len(raw), "inputs": len(message.inputs)},
        )
    inputs = [_input(item, raw[index] if raw else None) for index, item in enumerate(message.inputs)]
    return oip.InferRequest(message.id or None, signature_name, True, inputs, _outputs(message.outputs))


def _string_parameter(params: Mapping[str, pb.InferParameter], key: str, where: str) -> str:
    if key not in params:
        return ""
    param = params[key]
    if param.WhichOneof("parameter_choice") != "string_param":
        raise InvalidArgument(f"{where}.{key} must be a string_param")
    return str(param.string_param)


def _input(item: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> oip.Input:
    name, datatype, shape = item.name, item.datatype, tuple(int(d) for d in item.shape)
    if datatype not in oip.KNOWN_DATATYPES:
        raise InvalidArgument(f"input '{name}': unknown datatype {datatype[:32]!r}", details={"input": name})
    if any(d < 0 for d in shape):
        raise InvalidArgument(
            f"input '{name}' needs a shape of integers >= 0, got {list(shape)}", details={"input": name}
        )
    oip.check_span(name, list(shape))  # REST's header check: numpy must be able to lay the shape out
    if raw is not None:
        return oip.Input(name, datatype, shape, raw=memoryview(raw))
    return oip.Input(name, datatype, shape, raw=memoryview(_packed(item.contents, name, datatype, math.prod(shape))))


def _packed(contents: pb.InferTensorContents, name: str, datatype: str, count: int) -> bytes:
    """Typed contents in the raw encoding, after checking field, count and range."""
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidArgument(
            f"input '{name}': {datatype} data travels only in raw_input_contents", details={"input": name}
        )
    used = [descriptor.name for descriptor, _ in contents.ListFields()]
    if any(other != field for other in used):
        raise InvalidArgument(
            f"input '{name}': {datatype} data goes in contents.{field}, the request uses {', '.join(used)}",
            details={"input": name, "expected": field},
        )
    values: Sequence[Any] = getattr(contents, field)
    if len(values) != count:
        raise InvalidArgument(
            f"input '{name}': {len(values)} elements in contents.{field}, but its shape holds {count}",
            details={"input": name, "expected": count, "actual": len(values)},
        )
    dtype = oip.DATATYPES[datatype]
    if dtype.is_string:
        return oip.length_prefixed(values)
    assert dtype.numpy is not None
    if dtype.is_int:
        return _integers(values, dtype, name).tobytes()
    return np.asarray(values, dtype=dtype.numpy).tobytes()  # BOOL as bytes 0/1; floats exact


def _integers(values: Sequence[int], dtype: DType, name: str) -> npt.NDArray[Any]:
    wide = np.asarray(values, dtype=np.uint64 if dtype.name == "uint64" else np.int64)
    assert dtype.lo is not None and dtype.hi is not None and dtype.numpy is not None
    outside = (wide < dtype.lo) | (wide > dtype.hi) if wide.dtype.kind == "i" else wide > dtype.hi
    if outside.any():
        index = int(np.argmax(outside))
        raise InvalidArgument(
            f"input '{name}' element {index}: {int(wide[index])} is not a valid {dtype.name.upper()} value",
            details={"input": name, "index": index},
        )
    return wide.astype(dtype.numpy)


def _outputs(requested: Sequence[pb.ModelInferRequest.InferRequestedOutputTensor]) -> list[oip.Output] | None:
    for item in requested:
        if "classification" in item.parameters:
            raise Unimplemented("The classification output parameter is not supported", details={"output": item.name})
    return [oip.Output(item.name, True) for item in requested] or None


def infer_response(
    request: oip.InferRequest, model_name: str, model_version: int | None, arrays: Mapping[str, npt.NDArray[Any]]
) -> bytes:
    """The ``ModelInferResponse``: every output in ``raw_output_contents``, in the requested order."""
    reply = pb.ModelInferResponse(
        model_name=model_name,
        model_version="" if model_version is None else str(model_version),
        id=request.id or "",
    )
    for name, datatype, shape, segment in oip.raw_outputs(request, arrays):
        reply.outputs.add(name=name, datatype=datatype, shape=shape)
        reply.raw_output_contents.append(bytes(segment))
    return reply.SerializeToString()


# --------------------------------------------------------------------------- health and metadata


def live_response(live: bool) -> bytes:
    return pb.ServerLiveResponse(live=live).SerializeToString()


def ready_response(ready: bool) -> bytes:
    return pb.ServerReadyResponse(ready=ready).SerializeToString()


def model_ready_response(ready: bool) -> bytes:
    return pb.ModelReadyResponse(ready=ready).SerializeToString()


def server_metadata_response(version: str) -> bytes:
    """REST's ``GET /v2`` document as a message (one source, ``oip.encode_server_metadata``)."""
    doc = orjson.loads(oip.encode_server_metadata(version))
    return pb.ServerMetadataResponse(
        name=doc["name"], version=doc["version"], extensions=doc["extensions"]
    ).SerializeToString()


def model_metadata_response(
    name: str,
    signature_name: str,
    sigs: Mapping[str, SignatureDef],
    status: get_model_status_pb2.GetModelStatusResponse,
) -> bytes:
    """REST's model metadata for ``signature_name`` ("" = serving_default) as a message; the message
    has no ``properties``, so the signature names stay REST's (OIP §2, §8)."""
    doc = orjson.loads(oip.encode_model_metadata(name, signature_name, sigs, status))
    reply = pb.ModelMetadataResponse(name=doc["name"], versions=doc["versions"], platform=doc["platform"])
    for tensors, entries in ((reply.inputs, doc["inputs"]), (reply.outputs, doc["outputs"])):
        for entry in entries:
            tensors.add(name=entry["name"], datatype=entry["datatype"], shape=entry["shape"])
    return reply.SerializeToString()
