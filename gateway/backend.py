"""gRPC channels to ModelServer backends. The only module that catches grpc errors.

Each backend is one ``grpc.aio`` channel over its targets with gRPC's own
``round_robin`` load balancing. Calls send and receive raw bytes: requests are
serialised by the caller (so large tensors are built once), and replies are parsed
here so that a reply that does not parse is a 502, not grpc's generic INTERNAL.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)
from gateway.errors import BackendError, BackendTimeout, BackendUnavailable
from gateway.metrics import Metrics

R = TypeVar("R", bound=Message)


class BadGateway(BackendError):
    """The backend answered, but not with a message we can read."""

    status = 502
    reason = "bad_backend_response"

    def __init__(self, message: str) -> None:
        super().__init__(message, grpc_code=13)

    @property
    def http_status(self) -> int:
        return 502


@dataclass(frozen=True, slots=True)
class Rpc(Generic[R]):
    name: str
    path: str
    reply: type[R]


PREDICT = Rpc("Predict", "/tensorflow.serving.PredictionService/Predict", predict_pb2.PredictResponse)
CLASSIFY = Rpc("Classify", "/tensorflow.serving.PredictionService/Classify", classification_pb2.ClassificationResponse)
REGRESS = Rpc("Regress", "/tensorflow.serving.PredictionService/Regress", regression_pb2.RegressionResponse)
METADATA = Rpc(
    "GetModelMetadata",
    "/tensorflow.serving.PredictionService/GetModelMetadata",
    get_model_metadata_pb2.GetModelMetadataResponse,
)
STATUS = Rpc(
    "GetModelStatus",
    "/tensorflow.serving.ModelService/GetModelStatus",
    get_model_status_pb2.GetModelStatusResponse,
)
ALL_RPCS: tuple[Rpc[Any], ...] = (PREDICT, CLASSIFY, REGRESS, METADATA, STATUS)

# Transport failures carry peer addresses and resolver internals in their details;
# those must not reach clients.
_TRANSPORT_DETAILS = re.compile(
    r"failed to connect|connections? (?:refused|reset|closed)|socket closed|ipv[46]:|dns:|"
    r"unix:|no healthy upstream|Broken pipe|Connection timed out|Name resolution failure|"
    r"Network is unreachable|GOAWAY",
    re.IGNORECASE,
)


def channel_target(targets: Sequence[str]) -> str:
    """One gRPC target string for a list of ``host:port`` or URI targets."""
    if len(targets) == 1:
        return targets[0]
    hosts = [t.removeprefix("ipv4:") for t in targets]
    return "ipv4:" + ",".join(hosts)


def channel_options(max_message_bytes: int, load_balancing: str) -> list[tuple[str, Any]]:
    service_config = {"loadBalancingConfig": [{load_balancing: {}}]}
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.enable_retries", 0),  # retries are ours: bounded by budget and deadline
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]


def translate(exc: grpc.aio.AioRpcError, backend: str) -> BackendError:
    """A gRPC failure as a gateway error. Backend messages pass through, transport noise doesn't."""
    code = exc.code()
    details = exc.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return BackendTimeout("Deadline Exceeded", details={"backend": backend})
    if code == grpc.StatusCode.UNAVAILABLE and (not details or _TRANSPORT_DETAILS.search(details)):
        return BackendUnavailable(f"Backend {backend} is unavailable", details={"backend": backend})
    return BackendError(details or code.name, grpc_code=code.value[0], details={"backend": backend})


class Backend:
    """One named backend: a channel, its callables, and the metrics it reports."""

    def __init__(
        self,
        name: str,
        targets: Sequence[str],
        *,
        metrics: Metrics,
        max_message_bytes: int = 256 << 20,
        load_balancing: str = "round_robin",
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.name = name
        self.target = channel_target(targets)
        self._metrics = metrics
        options = channel_options(max_message_bytes, load_balancing)
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(self.target, options=options)
        else:
            self.channel = grpc.aio.secure_channel(self.target, credentials, options=options)
        self._calls = {
            rpc.path: self.channel.unary_unary(rpc.path, request_serializer=None, response_deserializer=None)
            for rpc in ALL_RPCS
        }

    async def call(
        self,
        rpc: Rpc[R],
        request: Message | bytes,
        *,
        timeout: float | None,
        metadata: Mapping[str, str] | None = None,
    ) -> R:
        payload = request if isinstance(request, bytes) else request.SerializeToString()
        raw = await self.call_raw(rpc, payload, timeout=timeout, metadata=metadata)
        reply = rpc.reply()
        try:
            reply.ParseFromString(raw)
        except DecodeError:
            raise BadGateway(f"Backend {self.name} sent a {rpc.name} reply that does not parse") from None
        return reply

    async def call_raw(
        self,
        rpc: Rpc[Any],
        payload: bytes,
        *,
        timeout: float | None,
        metadata: Mapping[str, str] | None = None,
    ) -> bytes:
        start = time.perf_counter()
        code = "OK"
        try:
            result: bytes = await self._calls[rpc.path](
                payload, timeout=timeout, metadata=tuple((metadata or {}).items()) or None
            )
            return result
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            raise translate(exc, self.name) from None
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            self._metrics.backend_rpc.labels(self.name, rpc.name, code).observe(time.perf_counter() - start)

    def is_connected(self) -> bool:
        return self.channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY

    async def close(self, grace: float | None = None) -> None:
        await self.channel.close(grace)
