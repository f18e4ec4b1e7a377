"""Target -> Binding: which backend, model spec and deadline a request gets. Pure.

``/v1/models/{name}`` names a model directly; ``/model-serving/{id}`` names a
deployment, which config maps to a model on a backend and may pin a version or
label. A version or label in the URL takes precedence over the pin, so a client
can still reach another version of the same deployment explicitly.

The Open Inference Protocol's deployment form names a model too
(``/model-serving/{id}/v2/models/{model}/...``): it must be the deployment id or the
deployment's model, or the request is a 404 (OIP §9).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from gateway.codec import messages
from gateway.config import DeploymentSettings, ModelSettings, Settings
from gateway.errors import InvalidArgument, NotFound
from gateway.routing.routes import Target

_GRPC_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
_METADATA_KINDS = frozenset({"status", "metadata", "live", "ready", "server_metadata", "model_ready", "model_metadata"})
_GRPC_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


@dataclass(frozen=True, slots=True)
class Binding:
    backend: str
    model: str
    version: int | None
    label: str | None
    timeout_seconds: float
    name: str  # what the URL named: the model, or the deployment id
    settings: ModelSettings | DeploymentSettings  # auth and batching policy for this route

    def pinned(self, version: int) -> Binding:
        return replace(self, version=version, label=None)

    def model_spec(self, signature_name: str = "") -> messages.ModelSpec:
        return messages.model_spec(self.model, self.version, self.label, signature_name)

    @property
    def servable(self) -> tuple[str, str, int | None, str | None]:
        """(backend, model, version, label): what the backend call addresses."""
        return self.backend, self.model, self.version, self.label


def bind(settings: Settings, target: Target, client_seconds: float | None = None) -> Binding:
    """Resolve what the URL named into a backend call's coordinates."""
    route: ModelSettings | DeploymentSettings
    if target.family == "deployment":
        deployment = settings.deployment(target.name)
        if deployment is None:
            raise NotFound(f"Deployment not found: {target.name}", details={"deployment": target.name})
        route, model, pin = deployment, deployment.model, (deployment.version, deployment.label)
        if target.model is not None and target.model not in (target.name, deployment.model):
            raise NotFound(
                f"Model {target.model} is not served by deployment {target.name}",
                details={"deployment": target.name, "model": target.model},
            )
    else:
        route, model, pin = settings.model_settings(target.name), target.name, (None, None)
    version, label = target.version, target.label
    if version is None and label is None:
        version, label = pin
    timeout = settings.timeout_for(route, client_seconds, metadata=target.kind in _METADATA_KINDS)
    return Binding(route.backend, model, version, label, timeout, target.name, route)


def client_timeout(headers: Mapping[str, str]) -> float | None:
    """The deadline a client asked for, from ``X-Request-Timeout`` (seconds) or ``grpc-timeout``."""
    raw = headers.get("X-Request-Timeout")
    if raw is not None:
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds < float("inf"):
            raise InvalidArgument(f"X-Request-Timeout must be a positive number of seconds, got {raw[:32]!r}")
        return seconds
    raw = headers.get("grpc-timeout")
    if raw is not None:
        match = _GRPC_TIMEOUT.fullmatch(raw.strip())
        if match is None or int(match.group(1)) == 0:
            raise InvalidArgument(f"grpc-timeout must look like 500m or 2S, got {raw[:32]!r}")
        return int(match.group(1)) * _GRPC_UNITS[match.group(2)]
    return None
