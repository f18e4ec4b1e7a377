"""TF Serving's ``PredictionService`` and ``ModelService``, passed through to ModelServer.

Handlers take and return bytes (no deserialisers): the request goes to the backend unchanged
and the reply comes back unchanged. The front parses only the request's ``model_spec``, to find
the model (``ModelSpec.name``), or rewrites it when the metadata ``x-deployment-id: <id>`` names
a deployment, which maps to its model, backend and pin (a version or label in the request wins,
as one in the URL does on REST).

The policies are REST's, applied by ``grpcfront/calls.py`` as for the OIP service: auth from
metadata, ``x-request-id``, the capped deadline, in-flight gauge, metrics under the bounded
routes ``grpc_tfs_<kind>``, the access log; the backend's limiter, retries and breaker
(``Backend.call_raw``). A backend's error passes its own code and message through.
"""

from __future__ import annotations

from typing import Any

import grpc

from gateway.backend.client import CLASSIFY, METADATA, PREDICT, REGRESS, STATUS, Rpc
from gateway.codec import messages
from gateway.grpcfront import calls
from gateway.grpcfront.calls import Call
from gateway.pipeline.services import ServicesRef
from gateway.routing import routes
from gateway.routing.binding import Binding

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
SERVICES = (PREDICTION_SERVICE, MODEL_SERVICE)

# service -> method name -> (backend RPC, kind)
METHODS: dict[str, dict[str, tuple[Rpc[Any], routes.Kind]]] = {
    PREDICTION_SERVICE: {
        "Predict": (PREDICT, "predict"),
        "Classify": (CLASSIFY, "classify"),
        "Regress": (REGRESS, "regress"),
        "GetModelMetadata": (METADATA, "metadata"),
    },
    MODEL_SERVICE: {"GetModelStatus": (STATUS, "status")},
}


class TfsFront:
    """The handlers of both services, serving whatever generation ``ref`` currently holds."""

    def __init__(self, ref: ServicesRef) -> None:
        self.ref = ref

    def handlers(self) -> list[grpc.GenericRpcHandler[bytes, bytes]]:
        return [
            grpc.method_handlers_generic_handler(
                service,
                {
                    name: calls.unary(
                        self.ref, calls.Method(service, name, f"grpc_tfs_{kind}", kind), _passer(rpc, kind)
                    )
                    for name, (rpc, kind) in methods.items()
                },
            )
            for service, methods in METHODS.items()
        ]


def _passer(rpc: Rpc[Any], kind: routes.Kind) -> calls.Handler:
    async def handle(call: Call, request: bytes) -> bytes:
        return await _pass_through(call, rpc, kind, request)

    return handle


async def _pass_through(call: Call, rpc: Rpc[Any], kind: routes.Kind, request: bytes) -> bytes:
    spec = messages.request_model_spec(request)
    deployment = call.deployment
    target = _target(kind, spec, deployment)
    call.admit(target)
    binding = call.bind(target)
    if deployment is not None:  # the backend knows the deployment's model, not its id
        request = messages.with_model_spec(request, _rewritten(spec, binding))
    return await call.services.call_raw(binding, rpc, request, call.info)


def _target(kind: routes.Kind, spec: messages.ModelSpec, deployment: str | None) -> routes.Target:
    version = int(spec.version.value) if spec.HasField("version") else None
    label = spec.version_label or None
    if deployment is None:
        return routes.Target("v1", kind, spec.name, version, label)
    return routes.Target("deployment", kind, deployment, version, label)


def _rewritten(spec: messages.ModelSpec, binding: Binding) -> messages.ModelSpec:
    return messages.model_spec(binding.model, binding.version, binding.label, spec.signature_name)
