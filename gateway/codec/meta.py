"""Model status and metadata: protobuf responses -> TF Serving's JSON; signatures as plain values. Pure.

Status (spec §8)::

    {"model_version_status": [{"version": "2", "state": "AVAILABLE",
                               "status": {"error_code": "OK", "error_message": ""}}]}

Metadata (spec §9)::

    {"model_spec": {"name": "m", "version": "2", "signature_name": ""},
     "metadata": {"signature_def": {"signature_def": {"<key>": <SignatureDef>}}}}

int64 values print as strings and enums by name, with every field printed, exactly as
protobuf's JSON printer does for TF Serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway._pb.tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2
from gateway.codec import oip
from gateway.codec.messages import SIGNATURE_DEF_FIELD
from gateway.codec.tensors import SUPPORTED, DType, dtype_name
from gateway.errors import BadGateway


def _to_dict(message: Message, *, proto_names: bool) -> dict[str, Any]:
    return json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=proto_names,
    )


def encode_status(response: get_model_status_pb2.GetModelStatusResponse) -> bytes:
    return orjson.dumps(_to_dict(response, proto_names=False))


def signature_defs(
    response: get_model_metadata_pb2.GetModelMetadataResponse,
) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefMap packed in a GetModelMetadata response."""
    packed = response.metadata.get(SIGNATURE_DEF_FIELD)
    if packed is None:
        raise BadGateway("Backend metadata has no signature_def")
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    try:
        sig_map.ParseFromString(packed.value)
    except DecodeError:
        raise BadGateway("Backend sent a signature_def that does not parse") from None
    return dict(sig_map.signature_def)


def encode_metadata(response: get_model_metadata_pb2.GetModelMetadataResponse) -> bytes:
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in signature_defs(response).items():
        sig_map.signature_def[key].CopyFrom(sig)
    return orjson.dumps(
        {
            "model_spec": _to_dict(response.model_spec, proto_names=True),
            "metadata": {SIGNATURE_DEF_FIELD: _to_dict(sig_map, proto_names=True)},
        }
    )


# --------------------------------------------------------------------------- signatures as plain values


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor of a signature, as plain values: what describing it needs, without protobuf.

    ``dtype`` is None for a dtype the REST API cannot convert (``dtype_name`` still names it);
    ``dims`` is None for an unknown rank, and a dim of -1 has an unknown size. ``datatype`` is the
    Open Inference Protocol's name (``FP32``...), ``oip_dtype`` how its JSON carries it (None: it
    cannot, e.g. BF16 or complex).
    """

    dtype: DType | None
    dtype_name: str
    dims: tuple[int, ...] | None
    datatype: str = ""
    oip_dtype: DType | None = None


@dataclass(frozen=True, slots=True)
class SignatureSpec:
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


def _tensor_spec(info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(int(dim.size) for dim in shape.dim)
    datatype = oip.datatype_of(info.dtype)
    return TensorSpec(SUPPORTED.get(info.dtype), dtype_name(info.dtype), dims, datatype, oip.DATATYPES.get(datatype))


def signature_specs(sigs: Mapping[str, meta_graph_pb2.SignatureDef]) -> dict[str, SignatureSpec]:
    """Each signature's method and its inputs and outputs by alias, sorted by key."""
    return {
        key: SignatureSpec(
            sig.method_name,
            {alias: _tensor_spec(sig.inputs[alias]) for alias in sorted(sig.inputs)},
            {alias: _tensor_spec(sig.outputs[alias]) for alias in sorted(sig.outputs)},
        )
        for key, sig in sorted(sigs.items())
    }
