"""Target -> Binding: which backend, model spec and deadline a request gets. Pure.

``/v1/models/{name}`` names a model directly; ``/model-serving/{id}`` names a
deployment, which config maps to a model on a backend and may pin a version or
label, or split its traffic between arms (``gateway.routing.split``). A version or
label in the URL takes precedence over the pin and the split, so a client can still
reach another version of the same deployment explicitly.

The Open Inference Protocol's deployment form names a model too
(``/model-serving/{id}/v2/models/{model}/...``): it must be the deployment id or the
deployment's model, or the request is a 404 (OIP §9).

A deployment may name the signature its requests use when they name none
(``signature_name``); the binding carries it, and the verbs apply it.

Pure apart from the split's random draw, which comes from the ``rng`` passed in.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from gateway.codec import messages
from gateway.config import DeploymentSettings, ModelSettings, Settings, ShadowArm, SplitArm
from gateway.errors import InvalidArgument, NotFound
from gateway.routing import split
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
    arm: str = ""  # the split arm's name; "" when the deployment has no split or the URL chose
    default_signature: str = ""  # the deployment's signature_name; "": serving_default

    def pinned(self, version: int) -> Binding:
        return replace(self, version=version, label=None)

    def signature(self, requested: str) -> str:
        """The signature a request uses: its own, else the deployment's default ("" = serving_default)."""
        return requested or self.default_signature

    def model_spec(self, signature_name: str = "") -> messages.ModelSpec:
        return messages.model_spec(self.model, self.version, self.label, signature_name)

    @property
    def servable(self) -> tuple[str, str, int | None, str | None]:
        """(backend, model, version, label): what the backend call addresses."""
        return self.backend, self.model, self.version, self.label


_NO_HEADERS: Mapping[str, str] = {}
_RNG = random.Random()


def bind(
    settings: Settings,
    target: Target,
    client_seconds: float | None = None,
    headers: Mapping[str, str] = _NO_HEADERS,
    rng: random.Random = _RNG,
) -> Binding:
    """Resolve what the URL named into a backend call's coordinates.

    For a deployment with a ``split`` and no version or label in the URL, one arm is chosen:
    by ``headers[sticky_header]`` when the deployment has one and the request carries it,
    else by a draw from ``rng``.
    """
    metadata = target.kind in _METADATA_KINDS
    if target.family != "deployment":
        route = settings.model_settings(target.name)
        timeout = settings.timeout_for(route, client_seconds, metadata=metadata)
        return Binding(route.backend, target.name, target.version, target.label, timeout, target.name, route)
    deployment = settings.deployment(target.name)
    if deployment is None:
        raise NotFound(f"Deployment not found: {target.name}", details={"deployment": target.name})
    if target.model is not None and target.model not in (target.name, deployment.model):
        raise NotFound(
            f"Model {target.model} is not served by deployment {target.name}",
            details={"deployment": target.name, "model": target.model},
        )
    if target.version is not None or target.label is not None:
        version, label = target.version, target.label
    elif deployment.split is None:
        version, label = deployment.version, deployment.label
    else:
        arm = split.choose(deployment.split, _sticky(deployment, headers), rng)
        return _bind_arm(settings, target.name, deployment, arm, client_seconds, metadata)
    timeout = settings.timeout_for(deployment, client_seconds, metadata=metadata)
    signature = deployment.signature_name or ""
    return Binding(
        deployment.backend, deployment.model, version, label, timeout, target.name, deployment, "", signature
    )


def _bind_arm(
    settings: Settings,
    name: str,
    deployment: DeploymentSettings,
    arm: SplitArm,
    client_seconds: float | None,
    metadata: bool,
) -> Binding:
    backend, model, version, label = deployment.coordinates(arm)
    # The arm's backend brings its own timeout_seconds; the deployment's own timeout still wins.
    policy = deployment if backend == deployment.backend else replace(deployment, backend=backend)
    timeout = settings.timeout_for(policy, client_seconds, metadata=metadata)
    signature = deployment.signature_name or ""
    return Binding(backend, model, version, label, timeout, name, deployment, arm.name, signature)


def shadow_binding(binding: Binding, deployment: DeploymentSettings, arm: ShadowArm) -> Binding:
    """Where a copy of a request bound to ``binding`` goes for shadow ``arm``, with the shadow's
    own deadline; ``arm`` names the shadow (the primary's arm stays on the request's info)."""
    backend, model, version, label = deployment.coordinates(arm)
    return replace(
        binding,
        backend=backend,
        model=model,
        version=version,
        label=label,
        timeout_seconds=deployment.shadow_timeout_seconds,
        arm=arm.name,
    )


def _sticky(deployment: DeploymentSettings, headers: Mapping[str, str]) -> str | None:
    return headers.get(deployment.sticky_header) if deployment.sticky_header is not None else None


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
