"""gRPC glue: PredictionService and ModelService on top of the registry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from devserver import inference
from devserver.errors import ServingError, invalid_argument, not_found
from devserver.models import ModelRegistry, VersionRecord

log = logging.getLogger("devserver.servicer")

Response = TypeVar("Response")
SIGNATURE_DEF_FIELD = "signature_def"


class HasModelSpec(Protocol):
    def HasField(self, field_name: str) -> bool: ...


def _require_model_spec(request: HasModelSpec) -> None:
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")


def _serve(context: grpc.ServicerContext, handler: Callable[[], Response]) -> Response:
    """Run a handler; ServingErrors become the gRPC status ModelServer would send."""
    try:
        return handler()
    except ServingError as exc:
        context.abort(exc.code, exc.message)
    except Exception as exc:  # a bug here must reach the client as INTERNAL, not hang it
        log.exception("Unexpected error while serving a request")
        context.abort(grpc.StatusCode.INTERNAL, f"devserver internal error: {exc}")
    raise AssertionError("context.abort returned")  # abort always raises


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry: ModelRegistry, tensor_content: bool) -> None:
        self._registry = registry
        self._tensor_content = tensor_content

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        def handle() -> predict_pb2.PredictResponse:
            _require_model_spec(request)
            servable = self._registry.resolve(request.model_spec)
            return inference.predict(servable, request, self._tensor_content)

        return _serve(context, handle)

    def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        def handle() -> classification_pb2.ClassificationResponse:
            _require_model_spec(request)
            return inference.classify(self._registry.resolve(request.model_spec), request)

        return _serve(context, handle)

    def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        def handle() -> regression_pb2.RegressionResponse:
            _require_model_spec(request)
            return inference.regress(self._registry.resolve(request.model_spec), request)

        return _serve(context, handle)

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return _serve(context, lambda: model_metadata(self._registry, request))


def model_metadata(
    registry: ModelRegistry, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """ModelServer validates the fields asked for before it looks the servable up."""
    _require_model_spec(request)
    if not request.metadata_field:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise invalid_argument(f"Metadata field {field} is not supported")
    servable = registry.resolve(request.model_spec)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    # The label is not echoed, nor the signature name: only name and resolved version.
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def _version_status(version: int, record: VersionRecord) -> get_model_status_pb2.ModelVersionStatus:
    status = get_model_status_pb2.ModelVersionStatus(version=version, state=record.state)
    # ModelServer always sets the status message (mutable_status()); healthy versions
    # carry error_code OK and an empty message, which clients see printed.
    status.status.SetInParent()
    if record.error is not None:
        status.status.error_code = record.error.code.value[0]
        status.status.error_message = record.error.message
    return status


def model_status(
    registry: ModelRegistry, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    """ModelServer's status ignores labels: only an explicit version narrows the answer."""
    _require_model_spec(request)
    name = request.model_spec.name
    records = registry.version_states(name)
    if request.model_spec.HasField("version"):
        wanted = request.model_spec.version.value
        records = [(v, r) for v, r in records if v == wanted]
        if not records:
            raise not_found(f"Could not find version {wanted} of model {name}")
    elif not records:
        raise not_found(f"Could not find any versions of model {name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    response.model_version_status.extend(_version_status(v, r) for v, r in records)
    return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        return _serve(context, lambda: model_status(self._registry, request))
