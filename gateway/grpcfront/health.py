"""``grpc.health.v1.Health`` on the gRPC port, answering with ``/readyz``'s predicate.

``Check`` on ``""`` (the whole server) or on any service the port serves answers SERVING when
every readiness check passes (``backend/readiness.py``), else NOT_SERVING, so a load balancer's
gRPC health probe sees what a Kubernetes HTTP probe on ``/readyz`` sees; any other name is
NOT_FOUND, as the reference servicer answers. ``Watch`` streams the same verdict: every change a
readiness probe reports is stored for every name, and a drain sets every one to NOT_SERVING for
good (``enter_graceful_shutdown``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # the stubs know only the sync servicer

from gateway.backend.readiness import Health

SERVICE = "grpc.health.v1.Health"


class HealthService(health_aio.HealthServicer):  # type: ignore[misc]
    """The health servicer for ``services`` (and ``""``), judged by ``readiness``."""

    def __init__(self, readiness: Health, services: Iterable[str]) -> None:
        super().__init__()
        self.readiness = readiness
        self.names = frozenset(("", *services))
        self._syncs: set[asyncio.Task[None]] = set()
        readiness.listeners.append(self.changed)

    def changed(self) -> None:
        """A probe's verdict changed: store the new status for every name, waking watchers."""
        task = asyncio.ensure_future(self.sync())
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    async def sync(self) -> None:
        status = self.status()
        for name in sorted(self.names):
            await self.set(name, status)

    def close(self) -> None:
        """Stop following readiness (the server is gone)."""
        if self.changed in self.readiness.listeners:
            self.readiness.listeners.remove(self.changed)

    def status(self) -> int:
        serving = not self.readiness.failed()
        return health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING  # type: ignore[no-any-return]

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request.service not in self.names:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service[:200]!r}")
        return health_pb2.HealthCheckResponse(status=self.status())
