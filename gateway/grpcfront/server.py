"""The ``grpc.aio`` server on ``server.grpc_port``: built, started and stopped by ``gateway.process.serve``.

It runs in the gateway's own process and event loop and serves the same ``ServicesRef`` as the
REST app, so a reload swaps its settings and backends too, and a drain waits for its calls.
TLS uses ``server.tls``'s certificate and key when they are set, as the REST port does.

Services: the Open Inference Protocol's ``inference.GRPCInferenceService`` (``oip``), TF Serving's
``PredictionService`` and ``ModelService`` (``tfs``), ``grpc.health.v1.Health`` (``health``) and
server reflection, whose descriptors come from the gateway's private pool (``codec/oip_grpc.py``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from gateway.backend.readiness import Health
from gateway.codec import oip_grpc
from gateway.config import ServerSettings
from gateway.grpcfront import health, oip, tfs
from gateway.pipeline.services import ServicesRef

SERVED = (oip.SERVICE, *tfs.SERVICES)  # what health answers for and reflection lists, with themselves


def credentials(server: ServerSettings) -> grpc.ServerCredentials | None:
    tls = server.tls
    if tls.cert_file is None or tls.key_file is None:
        return None
    return grpc.ssl_server_credentials([(Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())])


class GrpcServer:
    """The gRPC port: ``await GrpcServer.start(...)``, then ``begin_stop`` at drain and ``close`` at the end."""

    def __init__(self, server: grpc.aio.Server, port: int, health_service: health.HealthService) -> None:
        self._server = server
        self.port = port
        self.health = health_service
        self._stopping: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, ref: ServicesRef, readiness: Health, settings: ServerSettings, port: int, *, reuse_port: bool = False
    ) -> GrpcServer:
        """Serving on ``port`` (0 picks a free one, read back from ``.port``); ``readiness`` is
        ``/readyz``'s, for ServerReady and the health service."""
        options = [
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.so_reuseport", int(reuse_port)),  # workers share the port as they share the REST one
        ]
        handlers = [*oip.OipFront(ref, readiness).handlers(), *tfs.TfsFront(ref).handlers()]
        server = grpc.aio.server(handlers=handlers, options=options)
        health_service = health.HealthService(readiness, SERVED)
        await health_service.sync()  # watchers start from the verdict now, not the servicer's default
        health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
        names = (*SERVED, health.SERVICE, reflection.SERVICE_NAME)
        # Health's and reflection's files live in protobuf's default pool; ours needs them to describe them.
        oip_grpc.describe_too(health_pb2.DESCRIPTOR.serialized_pb, reflection_pb2.DESCRIPTOR.serialized_pb)
        reflection.enable_server_reflection(names, server, pool=oip_grpc.DESCRIPTOR_POOL)
        address = f"{_host(settings.host)}:{port}"
        creds = credentials(settings)
        bound = server.add_insecure_port(address) if creds is None else server.add_secure_port(address, creds)
        await server.start()
        return cls(server, bound, health_service)

    async def begin_stop(self, grace: float) -> None:
        """Health says NOT_SERVING; new calls are refused now; calls in flight get ``grace`` seconds
        (the drain waits for them too)."""
        await self.health.enter_graceful_shutdown()
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._server.stop(grace))

    async def close(self) -> None:
        """Cancel whatever is left and release the port."""
        await self._server.stop(0)
        self.health.close()
        if self._stopping is not None:
            await self._stopping


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
