"""Long-lived things one app shares: settings, metrics, backends, the signature cache.

Handlers reach backends only through ``Services.call`` and ``Services.signatures``,
which add the deadline, the request id, per-request bookkeeping, and cache
invalidation when a backend says a servable is gone.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.backend.client import METADATA, Backend, R, Request, Rpc, serialized
from gateway.codec import messages
from gateway.codec import meta as codec_meta
from gateway.codec import predict as codec
from gateway.codec.messages import Signatures
from gateway.config import Settings
from gateway.errors import BackendError
from gateway.ops import accesslog
from gateway.ops.metrics import Metrics
from gateway.pipeline.batching import Batcher
from gateway.pipeline.shadow import Shadows
from gateway.pipeline.signatures import CacheKey, SignatureCache
from gateway.routing.auth import Authenticator
from gateway.routing.binding import Binding


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
    arm: str = ""  # the deployment's split arm, "" when there was no split
    served_version: int | None = None  # the version ModelServer says answered (its reply's model_spec)
    extra: dict[str, Any] = field(default_factory=dict)
    compress: bool = True  # whether the answer may be gzipped (OIP gzips only 200 infer replies)

    def bound(self, binding: Binding) -> None:
        self.model, self.version, self.label = binding.name, binding.version, binding.label
        self.backend, self.arm = binding.backend, binding.arm

    @property
    def version_text(self) -> str:
        """The version the request named, for the access log: a number, ``label:<l>``, or "" (latest)."""
        if self.version is not None:
            return str(self.version)
        return f"label:{self.label}" if self.label is not None else ""

    def access_record(
        self, method: str, path: str, status: int, elapsed: float, bytes_in: int, bytes_out: int
    ) -> dict[str, object]:
        """This request's access-log document (``gateway.ops.accesslog``), for REST and gRPC alike."""
        return accesslog.record(
            request_id=self.request_id,
            method=method,
            path=path,
            route=self.route,
            model=self.model,
            version=self.version_text,
            arm=self.arm,
            status=status,
            duration_seconds=elapsed,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            backend=self.backend,
            grpc_code=self.grpc_code,
            reason=self.extra.get("reason"),
        )


@dataclass(slots=True)
class Services:
    settings: Settings
    metrics: Metrics
    backends: Mapping[str, Backend]
    signature_cache: SignatureCache
    limits: codec.Limits
    batcher: Batcher = field(default_factory=Batcher)
    # Draws the arm of a traffic split; tests seed it (``services.rng.seed(n)``) to make splits repeatable.
    rng: random.Random = field(default_factory=random.Random)
    authenticator: Authenticator = field(init=False)
    shadows: Shadows = field(init=False)

    def __post_init__(self) -> None:
        # Built with the settings it serves, so a reload brings its own policies.
        self.authenticator = Authenticator(self.settings)
        self.shadows = Shadows(self.settings, self.metrics, self.backends, self.rng)

    async def call(self, binding: Binding, rpc: Rpc[R], request: Request, info: RequestInfo) -> R:
        raw = await self.call_raw(binding, rpc, serialized(request), info)
        return self.backends[binding.backend].parse_reply(rpc, raw)

    async def call_raw(self, binding: Binding, rpc: Rpc[Any], payload: bytes, info: RequestInfo) -> bytes:
        """One backend call as bytes, with the request id and the binding's deadline; records the
        gRPC code on ``info`` and drops a servable's signatures when the backend says it is gone.

        A deployment's shadow arms get their copies here, once the call is sent (``pipeline/shadow.py``),
        so every front that calls through ``Services`` is shadowed without doing anything.
        """
        backend = self.backends[binding.backend]
        metadata = {"x-request-id": info.request_id}
        shot = self.shadows.draw(binding, rpc, payload, info)
        reply: bytes | None = None
        try:
            reply = await backend.call_raw(
                rpc,
                payload,
                timeout=binding.timeout_seconds,
                metadata=metadata,
                on_sent=None if shot is None else shot.sent,
            )
        except BackendError as exc:
            info.grpc_code = exc.grpc_code_name
            if exc.grpc_code_name == "NOT_FOUND":  # the servable is gone: its signatures too
                self.signature_cache.invalidate(binding.backend, binding.model)
            raise
        finally:
            if shot is not None:
                shot.settle(reply)
        info.grpc_code = "OK"
        return reply

    def observe(self, info: RequestInfo, code: int, elapsed: float, bytes_in: int, bytes_out: int) -> None:
        """One answered request in the ``http_*`` series (REST and gRPC alike; ``code`` an HTTP status)."""
        metrics = self.metrics
        model = metrics.model_label(info.model)
        version = metrics.version_label(model, info.version, info.label) if model else ""
        series = metrics.http_children(info.route, model, version, info.verb, str(code), info.arm)
        series.requests.inc()
        series.latency.observe(elapsed)
        series.request_size.observe(bytes_in)
        series.response_size.observe(bytes_out)

    async def metadata(self, binding: Binding, info: RequestInfo) -> messages.MetadataReply:
        return await self.call(binding, METADATA, messages.metadata_request(binding.model_spec()), info)

    async def signatures(self, binding: Binding, info: RequestInfo) -> Signatures:
        key = CacheKey(binding.backend, binding.model, binding.version, binding.label)
        hit = self.signature_cache.cached(key)  # the common case: no closure, no extra frame
        if hit is not None:
            return hit

        async def fetch() -> Signatures:
            return codec_meta.signature_defs(await self.metadata(binding, info))

        return await self.signature_cache.get(key, fetch)

    async def close(self) -> None:
        await self.shadows.wait()  # copies still use this generation's channels; each ends by its deadline
        for backend in self.backends.values():
            await backend.close()


class ServicesRef:
    """The app's current ``Services``, swapped whole on a config reload.

    Each request pins the generation it started with, so a reload never changes settings or
    backends under a request in flight; a retired generation closes once its last request ends.
    """

    def __init__(self, services: Services) -> None:
        self.current = services
        self._users: Counter[int] = Counter()
        self._idle: dict[int, asyncio.Event] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._retired: dict[int, Services] = {}  # generations swapped out and not yet closed, by id

    @property
    def in_flight(self) -> int:
        return sum(self._users.values())

    def pinned(self) -> _Pin:
        """``with ref.pinned() as services:`` the current generation, kept open until the block ends."""
        return _Pin(self)

    def _release(self, key: int) -> None:
        self._users[key] -= 1
        if self._users[key] == 0:
            del self._users[key]
            self._wake(key)
        if not self._users:
            self._wake(0)

    def _wake(self, key: int) -> None:
        event = self._idle.pop(key, None)
        if event is not None:
            event.set()

    async def _until_idle(self, key: int) -> None:
        busy = self._users[key] if key else self.in_flight
        if busy:
            await self._idle.setdefault(key, asyncio.Event()).wait()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request of any generation is in flight; False if ``timeout`` ran out first."""
        try:
            await asyncio.wait_for(self._until_idle(0), timeout)
        except TimeoutError:
            return False
        return True

    def swap(self, services: Services) -> None:
        """Serve new requests with ``services``; the old generation closes when its requests end."""
        old, self.current = self.current, services
        self._retired[id(old)] = old
        task = asyncio.create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, old: Services) -> None:
        await self._until_idle(id(old))
        await old.close()
        self._retired.pop(id(old), None)

    async def close(self) -> None:
        """Close the current generation and wait for the retiring ones; shadow copies still
        running are cancelled first, so shutdown never waits on them."""
        for services in (*self._retired.values(), self.current):
            services.shadows.cancel()
        await asyncio.gather(*self._retiring)
        await self.current.close()


class _Pin:
    """One request's hold on a generation (a class: it runs on every request)."""

    __slots__ = ("_key", "_ref")

    def __init__(self, ref: ServicesRef) -> None:
        self._ref = ref
        self._key = 0

    def __enter__(self) -> Services:
        services = self._ref.current
        self._key = id(services)
        self._ref._users[self._key] += 1
        return services

    def __exit__(self, *exc_info: object) -> None:
        self._ref._release(self._key)
