"""The Open Inference Protocol's ``inference.GRPCInferenceService`` as a front over the pipeline.

``docs/spec/open-inference-protocol.md`` §8 is the contract; each RPC is REST's route of the
same kind (``web/oip_rest.py``) with gRPC framing (``codec/oip_grpc.py``):

* ServerLive: live. ServerReady: ``/readyz``'s predicate, OK with ``ready: false`` when it fails.
* ModelReady: ``verbs.status``; OK with ``ready: false`` for an unknown model, version or
  deployment, or one not AVAILABLE (tritonclient.grpc raises on any error code).
* ServerMetadata, ModelMetadata: REST's documents as messages (default signature).
* ModelInfer: ``verbs.predict`` with the codec's decoding and output selection; outputs always
  in ``raw_output_contents``.

Metadata ``x-deployment-id: <id>`` scopes a call to a deployment as ``/model-serving/{id}/v2``
does on REST: its auth, backend and pin; ``model_name`` must then be the deployment id or its
model, and ServerReady means that backend and model. Auth, request ids, deadlines, metrics
(``grpc_v2_<kind>``) and the access log are ``calls.py``'s; an error's status message is the
REST ``error`` text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import partial

import grpc

import gateway
from gateway.backend.readiness import Health
from gateway.codec import messages, oip, oip_grpc
from gateway.codec import meta as codec_meta
from gateway.codec.predict import Limits, Tensor
from gateway.errors import BackendError, NotFound, NotReady
from gateway.grpcfront import calls
from gateway.grpcfront.calls import Call
from gateway.pipeline import offload, verbs
from gateway.pipeline.services import ServicesRef
from gateway.routing import routes
from gateway.routing.binding import Binding

SERVICE = oip_grpc.SERVICE


class OipFront:
    """The service's handlers, serving whatever generation ``ref`` holds; ``health`` is ``/readyz``'s."""

    def __init__(self, ref: ServicesRef, health: Health) -> None:
        self.ref = ref
        self.health = health

    def handlers(self) -> list[grpc.GenericRpcHandler[bytes, bytes]]:
        table: Mapping[str, tuple[routes.Kind, calls.Handler]] = {
            "ServerLive": ("live", self.live),
            "ServerReady": ("ready", self.ready),
            "ServerMetadata": ("server_metadata", self.server_metadata),
            "ModelReady": ("model_ready", self.model_ready),
            "ModelMetadata": ("model_metadata", self.model_metadata),
            "ModelInfer": ("infer", self.infer),
        }
        methods = {
            name: calls.unary(self.ref, calls.Method(SERVICE, name, f"grpc_v2_{kind}", kind), handler)
            for name, (kind, handler) in table.items()
        }
        return [grpc.method_handlers_generic_handler(SERVICE, methods)]

    # ----------------------------------------------------------------------- server

    async def live(self, call: Call, request: bytes) -> bytes:
        _server_scope(call, "live")
        return oip_grpc.live_response(True)

    async def ready(self, call: Call, request: bytes) -> bytes:
        binding = _server_scope(call, "ready")
        if self.health.failed(None if binding is None else binding.backend):
            return oip_grpc.ready_response(False)
        if binding is not None:
            return oip_grpc.ready_response(await _available(call, binding))
        return oip_grpc.ready_response(True)

    async def server_metadata(self, call: Call, request: bytes) -> bytes:
        _server_scope(call, "server_metadata")
        return oip_grpc.server_metadata_response(gateway.__version__)

    # ----------------------------------------------------------------------- models

    async def model_ready(self, call: Call, request: bytes) -> bytes:
        message = oip_grpc.parse(oip_grpc.ModelReadyRequest, request)
        target = _model_target(call, "model_ready", message.name, message.version)
        call.admit(target)
        try:
            binding = call.bind(target)
        except NotFound:  # an unknown deployment, or a model it does not serve
            return oip_grpc.model_ready_response(False)
        return oip_grpc.model_ready_response(await _available(call, binding))

    async def model_metadata(self, call: Call, request: bytes) -> bytes:
        message = oip_grpc.parse(oip_grpc.ModelMetadataRequest, request)
        target = _model_target(call, "model_metadata", message.name, message.version)
        call.admit(target)
        binding = call.bind(target)
        services, info = call.services, call.info
        meta, status = await asyncio.gather(
            verbs.metadata(services, binding, info), verbs.status(services, binding, info)
        )
        # The message names no signature: the deployment's default, else serving_default.
        sigs = codec_meta.signature_defs(meta)
        return oip_grpc.model_metadata_response(message.name or binding.name, binding.signature(""), sigs, status)

    async def infer(self, call: Call, request: bytes) -> bytes:
        # Parsing, packing typed contents and writing the reply are per-element work: a large message
        # does it on the decode thread (offload.run), as the REST front does, so the loop keeps answering.
        message = await offload.run(len(request), oip_grpc.parse, oip_grpc.ModelInferRequest, request)
        target = _model_target(call, "infer", message.model_name, message.model_version)
        call.admit(target)
        parsed = await offload.run(len(request), oip_grpc.infer_request, message)
        binding = call.bind(target)
        services, info = call.services, call.info
        decode = partial(_tensors, parsed, services.limits)
        select = partial(oip.select_outputs, parsed)
        outputs = await verbs.predict(services, binding, info, parsed.signature_name, decode, len(request), select)
        size = sum(array.nbytes for array in outputs.values())
        name = message.model_name or binding.name
        return await offload.run(size, oip_grpc.infer_response, parsed, name, info.served_version, outputs)


def _server_scope(call: Call, kind: routes.Kind) -> Binding | None:
    """Auth for a server-wide RPC; under ``x-deployment-id``, the deployment's binding (404 if unknown)."""
    deployment = call.deployment
    if deployment is None:
        call.admit(routes.Target("v2", kind, "", protocol="v2"))
        return None
    target = routes.Target("deployment", kind, deployment, protocol="v2")
    call.admit(target)
    return call.bind(target)


def _model_target(call: Call, kind: routes.Kind, name: str, version_text: str) -> routes.Target:
    version, label = oip_grpc.version_of(version_text)
    deployment = call.deployment
    if deployment is None:
        return routes.Target("v2", kind, name, version, label, protocol="v2")
    return routes.Target("deployment", kind, deployment, version, label, protocol="v2", model=name or None)


async def _available(call: Call, binding: Binding) -> bool:
    """Whether the bound model (version) is AVAILABLE; a backend's NOT_FOUND or failure is "no"."""
    try:
        reply = await verbs.status(call.services, binding, call.info)
    except (BackendError, NotReady):
        return False
    return oip.unready_reason(reply, binding.version) is None


def _tensors(parsed: oip.InferRequest, limits: Limits, sig: messages.SignatureDef) -> dict[str, Tensor]:
    return oip.decode_inputs(parsed, sig, limits)
