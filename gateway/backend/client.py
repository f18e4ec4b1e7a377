"""gRPC channels to ModelServer backends. The only module that catches grpc errors.

Each backend is one ``grpc.aio`` channel over its targets with gRPC's own ``round_robin``
load balancing: a list of ``host:port`` targets is resolved once at startup into one
``ipv4:``/``ipv6:`` address list, and a single ``dns:///name:port`` target (a Kubernetes
headless Service) is re-resolved by gRPC itself. Calls send and receive raw bytes:
requests are serialised by the caller (so large tensors are built once), and replies are
parsed here so that a reply that does not parse is a 502, not grpc's generic INTERNAL.

Every call passes the backend's concurrency limiter, circuit breaker and retry policy
(``resilience.py``). A prober calls GetModelStatus (or checks connectivity) on every
address of a multi-address backend; addresses that fail are taken out of the channel until
they answer again. ``Backend.healthy`` exposes the state to the readiness probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
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
from gateway.backend.resilience import CircuitBreaker, ConcurrencyLimiter, RetryBudget, backoff_seconds
from gateway.codec import messages
from gateway.config import BackendSettings, HealthCheckSettings
from gateway.config.tls import BackendPems, backend_pems
from gateway.errors import BackendError, BackendTimeout, BackendUnavailable, BadGateway, CircuitOpen
from gateway.ops.metrics import Metrics

R = TypeVar("R", bound=Message)
Request = Message | bytes  # a message, or one already serialised (large tensors are written once)

log = logging.getLogger("tfs_gateway")


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
    r"Network is unreachable|GOAWAY|handshake|ssl|tls|certificate",
    re.IGNORECASE,
)
_STOCK_CANCEL = re.compile(r"\s*(?:cancell?ed(?: on the server side)?\.?)?\s*", re.IGNORECASE)
# An address in a message: never shown to clients, whatever the message says around it.
_ADDRESS = re.compile(r"(?:ipv[46]:|dns:/*)?\[?[0-9A-Za-z.:-]+\]?:\d{2,5}\b")


# --------------------------------------------------------------------------- targets


def resolve_targets(targets: Sequence[str]) -> list[str]:
    """``host:port`` targets as literal ``ip:port`` addresses; a resolver URI is kept as it is.

    gRPC's ``ipv4:``/``ipv6:`` lists need literal addresses, so names resolve here, once.
    """
    if len(targets) == 1 and targets[0].startswith(("dns:", "ipv4:", "ipv6:", "unix:", "xds:")):
        return [targets[0]]
    addresses: list[str] = []
    for target in targets:
        addresses += [a for a in _resolve(target) if a not in addresses]
    families = {_family(a) for a in addresses}
    if len(families) > 1:
        # One ipv4:/ipv6: URI holds one family; prefer v4, which every dual-stack host has.
        addresses = [a for a in addresses if _family(a) == "ipv4"]
    return addresses


def _split(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def _resolve(target: str) -> list[str]:
    host, port = _split(target)
    with contextlib.suppress(ValueError):
        return [_address(ipaddress.ip_address(host), port)]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = [_address(ipaddress.ip_address(info[4][0]), port) for info in infos]
    return list(dict.fromkeys(found))


def _address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    return f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}"


def _family(address: str) -> str:
    return "ipv6" if address.startswith("[") else "ipv4"


def channel_target(addresses: Sequence[str]) -> str:
    """One gRPC target string for resolved addresses (or one resolver URI)."""
    if len(addresses) == 1:
        return addresses[0]
    return _family(addresses[0]) + ":" + ",".join(addresses)


def channel_options(
    max_message_bytes: int, load_balancing: str, server_name: str | None = None
) -> list[tuple[str, Any]]:
    service_config: dict[str, Any] = {"loadBalancingConfig": [{load_balancing: {}}]}
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.enable_retries", 0),  # retries are ours: bounded by budget and deadline
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # gRPC jitters reconnect backoff by +-20%: a 1.5 s cap keeps every reconnect attempt
        # within 1.8 s, so a returning backend is found again inside our 2 s recovery promise.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_500),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def channel_credentials(pems: BackendPems | None) -> grpc.ChannelCredentials | None:
    if pems is None:
        return None
    return grpc.ssl_channel_credentials(pems.root_certificates, pems.private_key, pems.certificate_chain)


# --------------------------------------------------------------------------- errors


def translate(exc: grpc.aio.AioRpcError, backend: str) -> BackendError:
    """A gRPC failure as a gateway error. Backend messages pass through, transport noise doesn't."""
    code = _code(exc)
    details = exc.details() or "" if code == exc.code() else ""
    where = {"backend": backend}
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return BackendTimeout(_public(details) or "Deadline Exceeded", details=where)
    if code == grpc.StatusCode.UNAVAILABLE and not _public(details):
        return BackendUnavailable(f"Backend {backend} is unavailable", details=where)
    return BackendError(_public(details) or code.name, grpc_code=code, details=where)


def _code(exc: grpc.aio.AioRpcError) -> grpc.StatusCode:
    # Our own cancellations arrive as asyncio.CancelledError, never as an AioRpcError. A CANCELLED
    # with only gRPC's stock text is a server dropping its calls as it shuts down: unavailable.
    # One with a message of its own is the backend's answer, and keeps TF Serving's 499.
    code = exc.code()
    dropped = code == grpc.StatusCode.CANCELLED and _STOCK_CANCEL.fullmatch(exc.details() or "")
    return grpc.StatusCode.UNAVAILABLE if dropped else code


def _public(details: str) -> str:
    """The backend's own message, or "" when the text is gRPC's transport noise (peer addresses)."""
    if not details or _TRANSPORT_DETAILS.search(details):
        return ""
    return _ADDRESS.sub("<address>", details)


def _is_retryable(err: BackendError) -> bool:
    return err.grpc_code == grpc.StatusCode.UNAVAILABLE and not isinstance(err, CircuitOpen)


# --------------------------------------------------------------------------- channel


class _Channel:
    """One grpc.aio channel and its callables."""

    def __init__(
        self, target: str, options: list[tuple[str, Any]], credentials: grpc.ChannelCredentials | None
    ) -> None:
        self.target = target
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self.channel = grpc.aio.secure_channel(target, credentials, options=options)
        self.calls = {
            rpc.path: self.channel.unary_unary(rpc.path, request_serializer=None, response_deserializer=None)
            for rpc in ALL_RPCS
        }

    def ready(self) -> bool:
        return self.channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY

    async def close(self, grace: float | None = None) -> None:
        await self.channel.close(grace)


class _Deadline:
    def __init__(self, timeout: float | None) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self._end is None else self._end - time.monotonic()

    def allows(self, delay: float) -> bool:
        remaining = self.remaining()
        return remaining is None or delay < remaining


def serialized(request: Message | bytes) -> bytes:
    """A request's bytes: large tensors arrive already written (``codec.wire``)."""
    return request if isinstance(request, bytes) else request.SerializeToString()


# --------------------------------------------------------------------------- backend


class Backend:
    """One named backend: a channel over its healthy addresses, its resilience state, its prober."""

    def __init__(
        self,
        name: str,
        targets: Sequence[str],
        *,
        metrics: Metrics,
        settings: BackendSettings | None = None,
        pems: BackendPems | None = None,
    ) -> None:
        self.name = name
        self.settings = settings or BackendSettings(targets=tuple(targets))
        self._metrics = metrics
        self.addresses = resolve_targets(targets)
        self.target_health: dict[str, bool] = dict.fromkeys(self.addresses, True)
        self._credentials = channel_credentials(pems)
        self._options = channel_options(
            self.settings.max_message_bytes, self.settings.load_balancing, pems.server_name if pems else None
        )
        self._channel = _Channel(channel_target(self.addresses), self._options, self._credentials)
        self.limiter = ConcurrencyLimiter(name, self.settings.max_concurrency, self.settings.max_queue)
        self.breaker = CircuitBreaker(name, self.settings.circuit_breaker, ready=self._channel.ready)
        self.budget = RetryBudget(self.settings.retry)
        self._prober: Prober | None = None
        self._series: dict[tuple[str, str], Any] = {}
        self._retired: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, name: str, settings: BackendSettings, metrics: Metrics) -> Backend:
        """Open the backend's channel and, with several addresses, start probing them (needs the running loop)."""
        pems = backend_pems(settings.tls, f"backends.{name}.tls")
        backend = cls(name, settings.targets, metrics=metrics, settings=settings, pems=pems)
        if len(backend.addresses) > 1:
            backend.start()
        return backend

    @property
    def target(self) -> str:
        return self._channel.target

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel.channel

    # ---- calls

    async def call(
        self,
        rpc: Rpc[R],
        request: Message | bytes,
        *,
        timeout: float | None,
        metadata: Mapping[str, str] | None = None,
    ) -> R:
        raw = await self.call_raw(rpc, serialized(request), timeout=timeout, metadata=metadata)
        return self.parse_reply(rpc, raw)

    def parse_reply(self, rpc: Rpc[R], raw: bytes) -> R:
        """The reply message; a reply that does not parse is a 502, not grpc's generic INTERNAL."""
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
        on_sent: Callable[[], None] | None = None,
    ) -> bytes:
        """One logical call: a limiter slot, then attempts until success, a final error or the deadline.

        ``on_sent``, when given, is called once, as soon as the first attempt has been handed to
        the channel (not if the call fails before that: a full queue, an open circuit).
        """
        deadline = _Deadline(timeout)
        self.budget.record_request()
        async with self.limiter.slot(deadline.remaining()):
            return await self._attempts(rpc, payload, deadline, tuple((metadata or {}).items()) or None, on_sent)

    async def call_once(
        self, rpc: Rpc[Any], payload: bytes, *, timeout: float, metadata: Mapping[str, str] | None = None
    ) -> bytes:
        """One attempt on the shared channel, outside the limiter, the retry budget and the breaker.

        For shadow copies: they must not take a limiter slot or a retry a client's call needs, nor
        open (or close) the circuit on the primary traffic's behalf, nor weigh in the RPC latency
        histogram. Their own cap and deadline bound them instead (``pipeline/shadow.py``).
        """
        try:
            result: bytes = await self._channel.calls[rpc.path](
                payload, timeout=timeout, metadata=tuple((metadata or {}).items()) or None
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, self.name) from None
        return result

    async def _attempts(
        self,
        rpc: Rpc[Any],
        payload: bytes,
        deadline: _Deadline,
        metadata: tuple[tuple[str, str], ...] | None,
        on_sent: Callable[[], None] | None,
    ) -> bytes:
        retry = 0
        while True:
            try:
                return await self._attempt(rpc, payload, deadline, metadata, on_sent if retry == 0 else None)
            except BackendError as exc:
                retry += 1
                delay = self._retry_delay(exc, retry, deadline)
                if delay is None:
                    raise
            await asyncio.sleep(delay)

    def _retry_delay(self, exc: BackendError, retry: int, deadline: _Deadline) -> float | None:
        """Seconds to wait before retry number ``retry``, or None when this error is final."""
        if not _is_retryable(exc) or retry >= self.settings.retry.max_attempts:
            return None
        delay = backoff_seconds(retry, self.settings.retry)
        if not deadline.allows(delay) or not self.budget.try_spend():
            return None
        return delay

    async def _attempt(
        self,
        rpc: Rpc[Any],
        payload: bytes,
        deadline: _Deadline,
        metadata: tuple[tuple[str, str], ...] | None,
        on_sent: Callable[[], None] | None = None,
    ) -> bytes:
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise BackendTimeout("Deadline Exceeded", details={"backend": self.name})
        self.breaker.allow()
        start = time.perf_counter()
        code = "OK"
        try:
            call = self._channel.calls[rpc.path](payload, timeout=remaining, metadata=metadata)
            if on_sent is not None:
                on_sent()  # grpc.aio has already scheduled the send: what on_sent starts runs after it
            result: bytes = await call
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            self._judge(_code(exc))
            raise translate(exc, self.name) from None
        except asyncio.CancelledError:
            code = "CANCELLED"
            self.breaker.record_other()
            raise
        finally:
            self._rpc_series(rpc.name, code).observe(time.perf_counter() - start)
        self.breaker.record_success()
        return result

    def _rpc_series(self, rpc: str, code: str) -> Any:
        """The duration histogram's child for (rpc, code), bound once: five RPCs x 17 codes at most."""
        series = self._series.get((rpc, code))
        if series is None:
            series = self._series[rpc, code] = self._metrics.backend_rpc.labels(self.name, rpc, code)
        return series

    def _judge(self, code: grpc.StatusCode) -> None:
        if code == grpc.StatusCode.UNAVAILABLE:
            self.breaker.record_failure()
        else:
            self.breaker.record_other()

    # ---- health

    @property
    def healthy(self) -> bool:
        """Not failing fast, and at least one address passed its latest probe."""
        return self.breaker.state != "open" and any(self.target_health.values())

    def start(self) -> None:
        """Start probing each address (needs the running loop); ``close`` stops it."""
        if self._prober is None:
            self._prober = Prober(self, self.settings.health_check)
            self._prober.start()

    def is_connected(self) -> bool:
        return self._channel.ready()

    def set_target_health(self, address: str, healthy: bool) -> None:
        """Record one probe verdict; the channel is rebuilt when the set of healthy addresses changes."""
        if self.target_health.get(address) == healthy:
            return
        self.target_health[address] = healthy
        log.info("backend %s: target %s is %s", self.name, address, "healthy" if healthy else "unhealthy")
        self._rebuild_channel()

    def _rebuild_channel(self) -> None:
        # With none healthy, keep every address: gRPC's reconnects then find whichever comes back first.
        chosen = [a for a in self.addresses if self.target_health[a]] or list(self.addresses)
        target = channel_target(chosen)
        if target == self._channel.target:
            return
        old, self._channel = self._channel, _Channel(target, self._options, self._credentials)
        self.breaker.set_ready(self._channel.ready)
        task = asyncio.get_running_loop().create_task(old.close(grace=self._drain_seconds()))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def _drain_seconds(self) -> float:
        # Calls in flight on the old channel may take up to their own deadline.
        return self.settings.timeout_seconds or 30.0

    async def close(self, grace: float | None = None) -> None:
        if self._prober is not None:
            await self._prober.stop()
        for task in list(self._retired):
            task.cancel()
        await self._channel.close(grace)


class Prober:
    """Probes each address of a backend every ``interval_seconds``, to take failing ones out.

    A probe is GetModelStatus for ``health_check.model`` or, without one, connectivity. Probes
    use one channel per address, so they never wait in the limiter or trip the breaker. (The
    readiness probe in ``health.py`` judges the backend as a whole.)
    """

    def __init__(self, backend: Backend, settings: HealthCheckSettings) -> None:
        self.backend = backend
        self.settings = settings
        self._channels = {
            address: _Channel(address, backend._options, backend._credentials) for address in backend.addresses
        }
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for channel in self._channels.values():
            await channel.close()

    async def _run(self) -> None:
        while True:
            await self.probe_all()
            await asyncio.sleep(self._pause())

    def _pause(self) -> float:
        # While a target is out it is probed more often, so it rejoins soon after it returns.
        all_in = all(self.backend.target_health.values())
        return self.settings.interval_seconds if all_in else min(self.settings.interval_seconds, 0.5)

    async def probe_all(self) -> None:
        verdicts = await asyncio.gather(*(self.probe(channel) for channel in self._channels.values()))
        for address, healthy in zip(self._channels, verdicts, strict=True):
            self.backend.set_target_health(address, healthy)

    async def probe(self, channel: _Channel) -> bool:
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                return await self._probe(channel)
        except TimeoutError:
            return False

    async def _probe(self, channel: _Channel) -> bool:
        if self.settings.model is None:
            await channel.channel.channel_ready()
            return True
        request = messages.status_request(messages.model_spec(self.settings.model))
        try:
            await channel.calls[STATUS.path](request.SerializeToString(), timeout=self.settings.timeout_seconds)
        except grpc.aio.AioRpcError:
            return False
        return True
