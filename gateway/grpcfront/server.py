"""The ``grpc.aio`` server on ``server.grpc_port``: built, started and stopped by ``gateway.process.serve``.

It runs in the gateway's own process and event loop and serves the same ``ServicesRef`` as the
REST app, so a reload swaps its settings and backends too, and a drain waits for its calls.
TLS uses ``server.tls``'s certificate and key when they are set, as the REST port does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from gateway.config import ServerSettings
from gateway.grpcfront.tfs import TfsFront
from gateway.pipeline.services import ServicesRef


def credentials(server: ServerSettings) -> grpc.ServerCredentials | None:
    tls = server.tls
    if tls.cert_file is None or tls.key_file is None:
        return None
    return grpc.ssl_server_credentials([(Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())])


class GrpcServer:
    """The gRPC port: ``await GrpcServer.start(...)``, then ``begin_stop`` at drain and ``close`` at the end."""

    def __init__(self, server: grpc.aio.Server, port: int) -> None:
        self._server = server
        self.port = port
        self._stopping: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, ref: ServicesRef, settings: ServerSettings, port: int, *, reuse_port: bool = False
    ) -> GrpcServer:
        """Serving on ``port`` (0 picks a free one, read back from ``.port``)."""
        options = [
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.so_reuseport", int(reuse_port)),  # workers share the port as they share the REST one
        ]
        server = grpc.aio.server(handlers=TfsFront(ref).handlers(), options=options)
        address = f"{_host(settings.host)}:{port}"
        creds = credentials(settings)
        bound = server.add_insecure_port(address) if creds is None else server.add_secure_port(address, creds)
        await server.start()
        return cls(server, bound)

    def begin_stop(self, grace: float) -> None:
        """Refuse new calls now; calls in flight get ``grace`` seconds (the drain waits for them too)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._server.stop(grace))

    async def close(self) -> None:
        """Cancel whatever is left and release the port."""
        await self._server.stop(0)
        if self._stopping is not None:
            await self._stopping


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
