"""Model status and metadata: protobuf responses -> TF Serving's JSON. Pure.

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

from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway._pb.tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2
from gateway.codec.messages import SIGNATURE_DEF_FIELD
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
