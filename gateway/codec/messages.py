"""The protobuf messages sent to ModelServer, built in one place, and the names of the message types
the rest of the gateway passes around without looking inside.

Only ``codec/`` and ``backend/`` import the generated stubs (tests/test_architecture.py checks it).
``pipeline/``, ``routing/`` and the fronts hold a ``SignatureDef`` or a ``ModelSpec`` as an opaque
value and hand it back to functions here or in the other codec modules.
"""

from __future__ import annotations

from collections.abc import Mapping

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
