"""TF Serving's ``PredictionService`` and ``ModelService``, passed through to ModelServer.

Handlers take and return bytes (no deserialisers): the request goes to the backend unchanged
and the reply comes back unchanged. The front parses only the request's ``model_spec``, to find
the model (``ModelSpec.name``), or rewrites it when the metadata ``x-deployment-id: <id>`` names
a deployment, which maps to its model, backend and pin (a version or label in the request wins,
as one in the URL does on REST).

The policies are REST's: auth from ``authorization`` / ``x-api-key`` metadata (the same
``Authenticator``), a request id from ``x-request-id`` (echoed in the trailing metadata), the
call's own deadline capped by ``timeouts.max_client_seconds``, the backend's limiter, retries
and breaker (``Backend.call_raw``), and metrics under bounded routes ``grpc_tfs_<kind>``, whose
``code`` label is the HTTP status REST would have answered, so dashboards count both alike. A
``GatewayError`` answers with its ``grpc_status`` and message; a backend's error passes its own
code and message through.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from multidict import CIMultiDict

from gateway.backend.client import CLASSIFY, METADATA, PREDICT, REGRESS, STATUS, Rpc
from gateway.codec import messages
from gateway.errors import GatewayError, InternalError
from gateway.pipeline.services import RequestInfo, Services, ServicesRef
from gateway.routing import routes
from gateway.routing.binding import Binding, bind

log = logging.getLogger("tfs_gateway")

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
DEPLOYMENT_KEY = "x-deployment-id"
REQUEST_ID_KEY = "x-request-id"
_MAX_REQUEST_ID = 128
_MIN_SECONDS = 1e-3  # a call whose deadline has (nearly) passed still gets a bounded, failing attempt


@dataclass(frozen=True, slots=True)
class Method:
    rpc: Rpc[Any]
    kind: routes.Kind

    @property
    def route(self) -> str:
        return f"grpc_tfs_{self.kind}"


PREDICTION_METHODS = {
    "Predict": Method(PREDICT, "predict"),
    "Classify": Method(CLASSIFY, "classify"),
    "Regress": Method(REGRESS, "regress"),
    "GetModelMetadata": Method(METADATA, "metadata"),
}
MODEL_METHODS = {"GetModelStatus": Method(STATUS, "status")}


class TfsFront:
    """The handlers of both services, serving whatever generation ``ref`` currently holds."""

    def __init__(self, ref: ServicesRef) -> None:
        self.ref = ref

    def handlers(self) -> list[grpc.GenericRpcHandler[bytes, bytes]]:
        return [
            grpc.method_handlers_generic_handler(service, {name: self._handler(m) for name, m in methods.items()})
            for service, methods in ((PREDICTION_SERVICE, PREDICTION_METHODS), (MODEL_SERVICE, MODEL_METHODS))
        ]

    def _handler(self, method: Method) -> grpc.RpcMethodHandler[bytes, bytes]:
        async def handle(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            return await self.serve(method, request, context)

        return grpc.unary_unary_rpc_method_handler(handle)  # no (de)serialisers: bytes both ways

    async def serve(self, method: Method, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        """One call: the reply bytes, or an abort with the error's status and message."""
        with self.ref.pinned() as services:
            headers = _metadata(context)
            info = RequestInfo(request_id=_request_id(headers), route=method.route, verb=method.kind)
            trailer = ((REQUEST_ID_KEY, info.request_id),)
            start = time.perf_counter()
            status = 499  # what REST logs for a call the client gave up on (a cancellation escapes below)
            reply = b""
            try:
                reply = await _pass_through(services, method, request, headers, _client_seconds(context), info)
                status = 200
            except GatewayError as exc:
                status = exc.http_status
                await context.abort(exc.grpc_status, exc.message, trailer)
            except Exception:
                log.exception("unhandled error on gRPC %s", method.rpc.path)
                status = InternalError.status
                await context.abort(grpc.StatusCode.INTERNAL, "Internal error", trailer)
            finally:
                _observe(services, info, status, (len(request), len(reply)), time.perf_counter() - start)
            context.set_trailing_metadata(trailer)
            return reply


async def _pass_through(
    services: Services,
    method: Method,
    request: bytes,
    headers: Mapping[str, str],
    client_seconds: float | None,
    info: RequestInfo,
) -> bytes:
    spec = messages.request_model_spec(request)
    deployment = headers.get(DEPLOYMENT_KEY)
    target = _target(method, spec, deployment)
    services.authenticator.admit(target, headers)
    binding = bind(services.settings, target, client_seconds, headers, services.rng)
    info.bound(binding)
    if deployment is not None:  # the backend knows the deployment's model, not its id
        request = messages.with_model_spec(request, _rewritten(spec, binding))
    return await services.call_raw(binding, method.rpc, request, info)


def _target(method: Method, spec: messages.ModelSpec, deployment: str | None) -> routes.Target:
    version = int(spec.version.value) if spec.HasField("version") else None
    label = spec.version_label or None
    if deployment is None:
        return routes.Target("v1", method.kind, spec.name, version, label)
    return routes.Target("deployment", method.kind, deployment, version, label)


def _rewritten(spec: messages.ModelSpec, binding: Binding) -> messages.ModelSpec:
    return messages.model_spec(binding.model, binding.version, binding.label, spec.signature_name)


def _metadata(context: grpc.aio.ServicerContext[bytes, bytes]) -> CIMultiDict[str]:
    # Binary (-bin) entries carry bytes; no policy reads them.
    return CIMultiDict((key, value) for key, value in context.invocation_metadata() or () if isinstance(value, str))


def _request_id(headers: Mapping[str, str]) -> str:
    given = headers.get(REQUEST_ID_KEY, "")
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return os.urandom(16).hex()


def _client_seconds(context: grpc.aio.ServicerContext[bytes, bytes]) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(remaining, _MIN_SECONDS)


def _observe(services: Services, info: RequestInfo, status: int, sizes: tuple[int, int], elapsed: float) -> None:
    metrics = services.metrics
    model = metrics.model_label(info.model)
    version = metrics.version_label(model, info.version, info.label) if model else ""
    series = metrics.http_children(info.route, model, version, info.verb, str(status), info.arm)
    series.requests.inc()
    series.latency.observe(elapsed)
    series.request_size.observe(sizes[0])
    series.response_size.observe(sizes[1])
