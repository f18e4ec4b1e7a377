"""Long-lived things one app shares: settings, metrics, backends, the signature cache.

Handlers reach backends only through ``Services.call`` and ``Services.signatures``,
which add the deadline, the request id, per-request bookkeeping, and cache
invalidation when a backend says a servable is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.message import Message

from gateway import codec, codec_meta
from gateway._pb.tensorflow_serving.apis import get_model_metadata_pb2
from gateway.backend import METADATA, Backend, Rpc
from gateway.binding import Binding
from gateway.config import Settings
from gateway.errors import BackendError
from gateway.metrics import Metrics
from gateway.signatures import CacheKey, SignatureCache, Signatures

R = TypeVar("R", bound=Message)

NOT_FOUND = 5


@dataclass(slots=True)
class RequestInfo:
    """What one request touched, for metrics and the access log."""

    request_id: str
    route: str = "unmatched"
    verb: str = ""
    model: str = ""
    version: int | None = None
    label: str | None = None
    backend: str = ""
    grpc_code: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def bound(self, binding: Binding) -> None:
        self.model, self.version, self.label = binding.name, binding.version, binding.label
        self.backend = binding.backend


@dataclass(slots=True)
class Services:
    settings: Settings
    metrics: Metrics
    backends: Mapping[str, Backend]
    signature_cache: SignatureCache
    limits: codec.Limits

    async def call(self, binding: Binding, rpc: Rpc[R], request: Message | bytes, info: RequestInfo) -> R:
        backend = self.backends[binding.backend]
        metadata = {"x-request-id": info.request_id}
        try:
            reply = await backend.call(rpc, request, timeout=binding.timeout_seconds, metadata=metadata)
        except BackendError as exc:
            info.grpc_code = exc.grpc_code_name
            if exc.grpc_code == NOT_FOUND:
                self.signature_cache.invalidate(binding.backend, binding.model)
            raise
        info.grpc_code = "OK"
        return reply

    async def metadata(self, binding: Binding, info: RequestInfo) -> get_model_metadata_pb2.GetModelMetadataResponse:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=binding.model_spec(), metadata_field=[codec_meta.SIGNATURE_DEF_FIELD]
        )
        return await self.call(binding, METADATA, request, info)

    async def signatures(self, binding: Binding, info: RequestInfo) -> Signatures:
        key = CacheKey(binding.backend, binding.model, binding.version, binding.label)

        async def fetch() -> Signatures:
            return codec_meta.signature_defs(await self.metadata(binding, info))

        return await self.signature_cache.get(key, fetch)

    async def close(self) -> None:
        for backend in self.backends.values():
            await backend.close()
