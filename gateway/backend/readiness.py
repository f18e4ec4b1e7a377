"""Readiness: one probe task per backend, and what ``/readyz`` reports (``gateway/web/pages.py``).

``/readyz`` answers 200 only when the gateway is not draining and every backend's latest probe
passed; otherwise 503 with every check and, for each failed one, why::

    {"status": "not ready",
     "checks": {"draining": {"ok": true},
                "backend:default": {"ok": false,
                                    "reason": "model half_plus_two: no version is AVAILABLE (1: LOADING)"}}}

A probe asks the backend's ``GetModelStatus`` for every model it must serve (the configured
deployments' models, or the models of their split arms, and ``health_check.model``); each needs
an AVAILABLE version (the pinned one, for deployments and arms that name a version). A backend
with nothing configured is probed by its channel's connectivity. Probes set ``tfs_gateway_backend_up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway._pb.tensorflow_serving.apis import get_model_status_pb2
from gateway.backend.client import STATUS, Backend
from gateway.codec import messages
from gateway.config import DeploymentSettings, Settings
from gateway.errors import BackendError, GatewayError
from gateway.ops.metrics import Metrics

log = logging.getLogger("tfs_gateway.health")

_AVAILABLE = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")
_State = get_model_status_pb2.ModelVersionStatus.State


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {"ok": True} if self.ok else {"ok": False, "reason": self.reason}


NOT_PROBED = Check(False, "not probed yet")
NO_PROBES = Check(False, "backend probes are not running (create_app(probes=False))")


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """One model a backend must serve; ``version`` when a deployment pins one."""

    name: str
    version: int | None = None

    def spec(self) -> messages.ModelSpec:
        return messages.model_spec(self.name, self.version)


def models_to_check(settings: Settings, backend: str) -> tuple[ModelCheck, ...]:
    checks = {check for d in settings.deployments.values() for on, check in _served(d) if on == backend}
    model = settings.backend(backend).health_check.model
    if model is not None:
        checks.add(ModelCheck(model))
    return tuple(sorted(checks, key=lambda c: (c.name, c.version or 0)))


def _served(deployment: DeploymentSettings) -> list[tuple[str, ModelCheck]]:
    """(backend, model check) for what a deployment sends requests to: its pin, or each split arm."""
    if deployment.split is None:
        return [(deployment.backend, ModelCheck(deployment.model, deployment.version))]
    return [
        (arm.backend or deployment.backend, ModelCheck(arm.model or deployment.model, arm.version))
        for arm in deployment.split
    ]


def judge_status(check: ModelCheck, reply: get_model_status_pb2.GetModelStatusResponse) -> Check:
    states = {status.version: status.state for status in reply.model_version_status}
    if any(state == _AVAILABLE for state in states.values()):
        return Check(True)
    seen = ", ".join(f"{version}: {_State.Name(state)}" for version, state in sorted(states.items()))
    wanted = f"version {check.version}" if check.version is not None else "no version"
    verb = "is not" if check.version is not None else "is"
    return Check(False, f"model {check.name}: {wanted} {verb} AVAILABLE ({seen or 'no versions'})")


async def probe_model(backend: Backend, check: ModelCheck, timeout: float) -> Check:
    try:
        reply = await backend.call(
            STATUS, messages.status_request(check.spec()), timeout=timeout, metadata={"x-request-id": "readiness-probe"}
        )
    except GatewayError as exc:  # overload and open circuits too: readiness must say why
        code = exc.grpc_code_name if isinstance(exc, BackendError) else exc.reason
        return Check(False, f"model {check.name}: {code}: {exc}")
    return judge_status(check, reply)


async def probe_channel(backend: Backend, timeout: float) -> Check:
    if backend.is_connected():
        return Check(True)
    try:
        await asyncio.wait_for(backend.channel.channel_ready(), timeout)
    except TimeoutError:
        return Check(False, f"no connection to backend {backend.name} within {timeout:g}s")
    return Check(True)


async def probe(backend: Backend, models: tuple[ModelCheck, ...], timeout: float) -> Check:
    if not models:
        return await probe_channel(backend, timeout)
    results = await asyncio.gather(*(probe_model(backend, model, timeout) for model in models))
    failed = dict.fromkeys(result.reason for result in results if not result.ok)  # a dead backend fails alike
    return Check(not failed, "; ".join(failed))


@dataclass
class Health:
    """What ``/readyz`` reports: the draining flag and each backend's latest probe."""

    draining: bool = False
    backends: dict[str, Check] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Called after a probe's verdict changes (the gRPC health service streams it to watchers).
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def checks(self) -> dict[str, Check]:
        draining = Check(False, "shutting down") if self.draining else Check(True)
        if not self._tasks:
            return {"draining": draining, "backends": NO_PROBES}
        return {"draining": draining, **{f"backend:{name}": check for name, check in self.backends.items()}}

    def failed(self, backend: str | None = None) -> dict[str, Check]:
        """The checks that fail: every one (``/readyz``'s predicate), or, for one backend, its
        own and draining (a deployment's readiness, OIP §9). Empty when ready."""
        checks = self.checks()
        if backend is not None:
            checks = {name: check for name, check in checks.items() if name in ("draining", f"backend:{backend}")}
        return {name: check for name, check in checks.items() if not check.ok}

    def watch(self, backends: Mapping[str, Backend], settings: Settings, metrics: Metrics) -> None:
        """Probe ``backends`` from now on (after a reload, the new generation's)."""
        self._cancel()
        self.backends = {name: NOT_PROBED for name in backends}
        metrics.set_backends(backends)
        self._tasks = [
            asyncio.create_task(self._probe_forever(backend, settings, metrics), name=f"tfs-gateway probe {name}")
            for name, backend in backends.items()
        ]

    async def _probe_forever(self, backend: Backend, settings: Settings, metrics: Metrics) -> None:
        check = settings.backend(backend.name).health_check
        models = models_to_check(settings, backend.name)
        while True:
            result = await probe(backend, models, check.timeout_seconds)
            self._record(backend.name, result, metrics)
            await asyncio.sleep(check.interval_seconds)

    def _record(self, name: str, result: Check, metrics: Metrics) -> None:
        changed = result != self.backends.get(name)
        if changed:
            log.log(logging.INFO if result.ok else logging.WARNING, "backend %s: %s", name, result.reason or "up")
        self.backends[name] = result
        metrics.backend_up.labels(name).set(1 if result.ok else 0)
        if changed:
            for listener in self.listeners:
                listener()

    def _cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def stop(self) -> None:
        self._cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
