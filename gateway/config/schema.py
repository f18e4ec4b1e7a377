"""The configuration's schema: frozen sections with their defaults and rules, built and validated once.

``gateway/config/sources.py`` gathers the data (YAML file, environment, CLI overrides) that
``Settings.from_mapping`` validates here. What follows describes the whole configuration.

Sources, lowest precedence first (each deep-merges mappings over the one before):
  1. the dataclass defaults below (``Settings()``; ``config.yaml`` documents every one),
  2. the YAML file given to ``load_settings``,
  3. environment variables ``TFS_GATEWAY__SECTION__KEY=value`` (``__`` separates levels, names are
     lower-cased, values are YAML scalars or lists, so ``9000`` is an int, ``[a, b]`` a list and
     ``::`` a string),
  4. ``overrides``, a nested mapping (the CLI flags).

Everything is validated once, here; an invalid value raises ``ConfigError(path, message)`` with the
dotted path of the bad key (``backends.default.targets[1]``). Sections merge key by key; maps of
named things (``backends``, ``deployments``, ...) and lists are replaced whole.

Per-target settings inherit: global -> ``models.overrides[name]`` -> ``deployments[id]`` (for the
deployment's model). In those blocks a missing key or ``null`` means "inherit", and ``auth`` /
``batching`` blocks there are partial: their keys replace the inherited ones one by one.

Secrets are never inline: ``{env: VAR}`` / ``{file: PATH}`` (``password_env`` / ``password_file``
for basic users) are read at load time into ``Secret`` values whose repr and dump show only the
reference.
"""

import hmac
import math
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

ENV_PREFIX = "TFS_GATEWAY__"

LogLevel = Literal["debug", "info", "warning", "error"]
AuthType = Literal["none", "basic", "api_key", "any"]
LoadBalancing = Literal["round_robin", "pick_first"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

_MiB = 1024 * 1024
# Names end up in URL segments and metric labels, so they stay boring.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SIGNATURE = re.compile(r"[^\x00-\x1f\x7f]+")  # a SignatureDef key: any text but empty or control characters
_USERNAME = re.compile(r"[^:\x00-\x1f\x7f]+")  # RFC 7617: a user-id cannot contain ':'
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ORIGIN = re.compile(r"\*|https?://[^/\s]+")
_URL_PATH = re.compile(r"/\S*")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})")
_RESOLVER_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "xds:")

T = TypeVar("T")


class ConfigError(ValueError):
    """An invalid configuration value; ``path`` is the dotted key (``server.port``) or file position."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential read at load time. Only ``source``/``reference`` ever show in repr and dumps."""

    source: str  # the config key it came from: env, file, password_env or password_file
    reference: str  # the variable name or file path
    value: str = field(repr=False)

    def matches(self, candidate: str) -> bool:
        """Constant-time comparison, so response timing does not leak the secret."""
        return hmac.compare_digest(self.value.encode(), candidate.encode())


@dataclass(frozen=True, slots=True)
class _Rule:
    """Per-field constraints beyond the type, kept next to the field they constrain."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    pattern: re.Pattern[str] | None = None  # for a str, or each item of a tuple of str
    hint: str = ""  # what the pattern means, for the error message
    file: bool = False  # must name an existing file
    keys: re.Pattern[str] = _NAME  # names in a map
    secret_keys: tuple[str, str] = ("env", "file")


def _ruled(default: T, **rule: Any) -> T:
    return field(default=default, metadata={"rule": _Rule(**rule)})


def _ruled_map(factory: Callable[[], T], **rule: Any) -> T:
    return field(default_factory=factory, metadata={"rule": _Rule(**rule)})


def _empty_map() -> Mapping[str, Any]:
    return types.MappingProxyType({})


class _Section:
    """Base of every settings class: ``_check`` holds rules that span several fields."""

    __slots__ = ()

    def _check(self, path: str) -> None:
        """Raise ConfigError if the fields, each valid alone, do not fit together."""


def _both_or_neither(path: str, cert_file: str | None, key_file: str | None) -> None:
    if (cert_file is None) != (key_file is None):
        raise ConfigError(f"{path}.key_file", "cert_file and key_file go together: give both or neither")


@dataclass(frozen=True, slots=True)
class ServerTLS(_Section):
    cert_file: str | None = _ruled(None, file=True)
    key_file: str | None = _ruled(None, file=True)

    def _check(self, path: str) -> None:
        _both_or_neither(path, self.cert_file, self.key_file)


@dataclass(frozen=True, slots=True)
class ServerSettings(_Section):
    host: str = "0.0.0.0"
    port: int = _ruled(8501, ge=0, le=65535)  # 0 picks a free port (tests)
    metrics_port: int | None = _ruled(None, ge=0, le=65535)
    # The gRPC port (gateway.grpcfront): OIP's GRPCInferenceService, TF Serving's API, health,
    # reflection; 8001 as Triton and KServe (OIP §8); null: no gRPC port.
    grpc_port: int | None = _ruled(8001, ge=0, le=65535)
    workers: int = _ruled(1, ge=1)
    shutdown_grace_seconds: float = _ruled(25.0, ge=0)
    loop_stall_warning_seconds: float = _ruled(0.25, gt=0)
    max_request_bytes: int = _ruled(64 * _MiB, ge=1)
    max_json_depth: int = _ruled(64, ge=1)
    max_tensor_elements: int = _ruled(64 * _MiB, ge=1)
    max_header_bytes: int = _ruled(16384, ge=1024)
    client_read_timeout_seconds: float = _ruled(60.0, gt=0)
    keepalive_timeout_seconds: float = _ruled(75.0, ge=0)
    gzip_responses: bool = True
    access_log: bool = True
    log_level: LogLevel = "info"
    tls: ServerTLS = field(default_factory=ServerTLS)

    def _check(self, path: str) -> None:
        if self.metrics_port is not None and self.metrics_port == self.port != 0:
            raise ConfigError(f"{path}.metrics_port", "must differ from port (null: serve metrics there)")
        if self.grpc_port is not None and self.grpc_port in (self.port, self.metrics_port) and self.grpc_port != 0:
            raise ConfigError(f"{path}.grpc_port", "must differ from port and metrics_port")


@dataclass(frozen=True, slots=True)
class MetricsSettings(_Section):
    enabled: bool = True
    paths: tuple[str, ...] = _ruled(
        ("/monitoring/prometheus/metrics", "/metrics"), pattern=_URL_PATH, hint="a path starting with /"
    )
    multiprocess_dir: str | None = None

    def _check(self, path: str) -> None:
        if self.enabled and not self.paths:
            raise ConfigError(f"{path}.paths", "needs at least one path while metrics are enabled")
        _no_duplicates(f"{path}.paths", self.paths)


@dataclass(frozen=True, slots=True)
class TimeoutSettings(_Section):
    default_seconds: float = _ruled(30.0, gt=0)
    max_client_seconds: float = _ruled(300.0, gt=0)
    metadata_seconds: float = _ruled(10.0, gt=0)


@dataclass(frozen=True, slots=True)
class SignatureCacheSettings(_Section):
    ttl_seconds: float = _ruled(60.0, ge=0)
    max_entries: int = _ruled(1024, ge=1)


@dataclass(frozen=True, slots=True)
class RetrySettings(_Section):
    max_attempts: int = _ruled(3, ge=1)  # 1: no retries
    initial_backoff_seconds: float = _ruled(0.025, gt=0)
    max_backoff_seconds: float = _ruled(0.5, gt=0)
    budget_ratio: float = _ruled(0.2, ge=0, le=1)  # retries may add at most this share of requests
    min_retries_per_second: float = _ruled(10.0, ge=0)

    def _check(self, path: str) -> None:
        if self.initial_backoff_seconds > self.max_backoff_seconds:
            raise ConfigError(f"{path}.initial_backoff_seconds", "must not exceed max_backoff_seconds")


@dataclass(frozen=True, slots=True)
class CircuitBreakerSettings(_Section):
    failure_threshold: int = _ruled(5, ge=1)
    reset_seconds: float = _ruled(5.0, gt=0)


@dataclass(frozen=True, slots=True)
class HealthCheckSettings(_Section):
    interval_seconds: float = _ruled(5.0, gt=0)
    timeout_seconds: float = _ruled(1.0, gt=0)
    model: str | None = _ruled(None, pattern=_NAME, hint="a model name")  # null: channel connectivity

    def _check(self, path: str) -> None:
        if self.timeout_seconds > self.interval_seconds:
            raise ConfigError(f"{path}.timeout_seconds", "must not exceed interval_seconds")


@dataclass(frozen=True, slots=True)
class BackendTLS(_Section):
    enabled: bool = False
    ca_file: str | None = _ruled(None, file=True)
    cert_file: str | None = _ruled(None, file=True)
    key_file: str | None = _ruled(None, file=True)
    server_name: str | None = None

    def _check(self, path: str) -> None:
        _both_or_neither(path, self.cert_file, self.key_file)
        given = self.ca_file or self.cert_file or self.server_name
        if given and not self.enabled:
            # Almost always a forgotten `enabled: true`; silently sending plaintext would be worse.
            raise ConfigError(f"{path}.enabled", "TLS options are set but enabled is false")


@dataclass(frozen=True, slots=True)
class BackendSettings(_Section):
    targets: tuple[str, ...] = ("localhost:8500",)
    load_balancing: LoadBalancing = "round_robin"
    max_message_bytes: int = _ruled(256 * _MiB, ge=1, le=2**31 - 1)  # gRPC limits are int32
    max_concurrency: int = _ruled(256, ge=1)
    max_queue: int = _ruled(1024, ge=0)
    timeout_seconds: float | None = _ruled(None, gt=0)  # null: timeouts.default_seconds
    retry: RetrySettings = field(default_factory=RetrySettings)
    circuit_breaker: CircuitBreakerSettings = field(default_factory=CircuitBreakerSettings)
    health_check: HealthCheckSettings = field(default_factory=HealthCheckSettings)
    tls: BackendTLS = field(default_factory=BackendTLS)

    def _check(self, path: str) -> None:
        _check_targets(f"{path}.targets", self.targets)


@dataclass(frozen=True, slots=True)
class AuthPolicy(_Section):
    """Who may call a model or deployment; the global ``auth`` block is the default policy."""

    type: AuthType = "none"
    realm: str = "tfserving-gateway"
    basic_users: Mapping[str, Secret] = _ruled_map(
        _empty_map, keys=_USERNAME, secret_keys=("password_env", "password_file")
    )
    api_keys: tuple[Secret, ...] = ()

    def _check(self, path: str) -> None:
        if self.type in ("basic", "any") and not self.basic_users and not self.api_keys:
            raise ConfigError(f"{path}.basic_users", f"auth type {self.type!r} needs at least one user")
        if self.type == "api_key" and not self.api_keys:
            raise ConfigError(f"{path}.api_keys", "auth type 'api_key' needs at least one key")

    def policy(self) -> "AuthPolicy":
        """Just the policy fields (drops the global-only ones of AuthSettings)."""
        return AuthPolicy(self.type, self.realm, self.basic_users, self.api_keys)


@dataclass(frozen=True, slots=True)
class AuthSettings(AuthPolicy):
    """The global ``auth`` block: the default policy plus what only makes sense globally."""

    protect_health: bool = False
    protect_metrics: bool = False


@dataclass(frozen=True, slots=True)
class CorsSettings(_Section):
    enabled: bool = False
    allow_origins: tuple[str, ...] = _ruled((), pattern=_ORIGIN, hint='"*" or scheme://host[:port]')
    allow_methods: tuple[HttpMethod, ...] = ("GET", "POST", "OPTIONS")
    allow_headers: tuple[str, ...] = _ruled(
        ("Content-Type", "Authorization", "X-API-Key", "X-Request-ID", "X-Request-Timeout"),
        pattern=_HEADER,
        hint="a header name",
    )
    # What browser code may read: the request id, and which version answered (canaries).
    expose_headers: tuple[str, ...] = _ruled(("X-Request-ID", "X-Model-Version"), pattern=_HEADER, hint="a header name")
    allow_credentials: bool = False
    max_age_seconds: int = _ruled(600, ge=0)

    def _check(self, path: str) -> None:
        wildcard = "*" in self.allow_origins
        if wildcard and len(self.allow_origins) > 1:
            raise ConfigError(f"{path}.allow_origins", '"*" must be the only origin')
        if wildcard and self.allow_credentials:
            raise ConfigError(f"{path}.allow_credentials", 'browsers refuse credentials with origin "*"')
        if self.enabled and not self.allow_origins:
            raise ConfigError(f"{path}.allow_origins", "needs at least one origin while cors is enabled")


@dataclass(frozen=True, slots=True)
class BatchingSettings(_Section):
    enabled: bool = False
    max_batch_size: int = _ruled(64, ge=1)
    window_seconds: float = _ruled(0.002, ge=0)


@dataclass(frozen=True, slots=True)
class ModelSettings(_Section):
    """Effective settings for a TF Serving model name (``/v1/models/{name}``)."""

    backend: str = _ruled("default", pattern=_NAME, hint="a backend name")
    timeout_seconds: float | None = _ruled(None, gt=0)  # null: the backend's, then timeouts.default_seconds
    auth: AuthPolicy = field(default_factory=AuthPolicy)
    batching: BatchingSettings = field(default_factory=BatchingSettings)


@dataclass(frozen=True, slots=True)
class ModelsSettings(_Section):
    default_backend: str = _ruled("default", pattern=_NAME, hint="a backend name")
    overrides: Mapping[str, ModelSettings] = _ruled_map(_empty_map)


@dataclass(frozen=True, slots=True)
class _Arm(_Section):
    """Where an arm (of a split, or a shadow) sends requests: a version, a label, or another model
    and/or backend. What it leaves out is the deployment's: ``{version: 2}`` is version 2 of the
    deployment's model on its backend; ``{model: m, backend: gpu}`` is the latest version of ``m`` on ``gpu``.
    """

    version: int | None = _ruled(None, ge=0)
    label: str | None = None
    model: str | None = _ruled(None, pattern=_NAME, hint="a model name")
    backend: str | None = _ruled(None, pattern=_NAME, hint="a backend name")

    def _check(self, path: str) -> None:
        if self.version is not None and self.label is not None:
            raise ConfigError(path, "names both version and label; give one of them")
        if self.version is None and self.label is None and self.model is None and self.backend is None:
            raise ConfigError(path, "names no version, label, model or backend")

    @property
    def name(self) -> str:
        """The arm's stable name (``v1``, ``label:canary``, ``mnist_v3@gpu/v3``): its metric label
        and its identity for sticky hashing, so reordering arms or changing weights keeps it."""
        where = (self.model or "") + (f"@{self.backend}" if self.backend else "")
        which = f"v{self.version}" if self.version is not None else f"label:{self.label}" if self.label else ""
        return "/".join(part for part in (where, which) if part)


@dataclass(frozen=True, slots=True)
class SplitArm(_Arm):
    """One arm of a deployment's traffic split, with its weight."""

    weight: float | None = _ruled(None, gt=0)  # required; relative to the other arms' weights

    def _check(self, path: str) -> None:
        if self.weight is None:
            raise ConfigError(f"{path}.weight", "is required: a positive number")
        _Arm._check(self, path)  # slots dataclasses are rebuilt classes: no zero-argument super()


@dataclass(frozen=True, slots=True)
class ShadowArm(_Arm):
    """A shadow copy's target, with the share of requests copied to it. Its answer is compared,
    never returned."""

    percent: float | None = _ruled(None, gt=0, le=100)  # required: 0 < percent <= 100

    def _check(self, path: str) -> None:
        if self.percent is None:
            raise ConfigError(f"{path}.percent", "is required: a number above 0 and at most 100")
        _Arm._check(self, path)


@dataclass(frozen=True, slots=True)
class ShadowTolerance(_Section):
    """How close a shadow's value must be to the primary's to agree: numpy ``isclose``,
    ``|shadow - primary| <= atol + rtol * |primary|``. The defaults sit above float32 rounding
    noise (about 6e-8 relative), so only real differences between models disagree."""

    rtol: float = _ruled(1.0e-5, ge=0)
    atol: float = _ruled(1.0e-6, ge=0)


@dataclass(frozen=True, slots=True)
class DeploymentSettings(_Section):
    """Effective settings for ``/model-serving/{id}``: a model, optionally pinned or split, on a backend."""

    model: str = _ruled("", pattern=_NAME, hint="a model name")
    backend: str = _ruled("default", pattern=_NAME, hint="a backend name")
    version: int | None = _ruled(None, ge=0)
    label: str | None = None
    split: tuple[SplitArm, ...] | None = None  # null: no split (every request to the pin or the latest)
    sticky_header: str | None = _ruled(None, pattern=_HEADER, hint="a header name")
    timeout_seconds: float | None = _ruled(None, gt=0)
    auth: AuthPolicy = field(default_factory=AuthPolicy)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    shadow: tuple[ShadowArm, ...] | None = None  # null: no shadow copies
    shadow_tolerance: ShadowTolerance = field(default_factory=ShadowTolerance)
    shadow_max_in_flight: int = _ruled(16, ge=1)  # this deployment's shadow calls at once; more are dropped
    shadow_timeout_seconds: float = _ruled(5.0, gt=0)  # a shadow call's own deadline
    # The signature a request uses when it names none (v1 and V2); null: serving_default.
    signature_name: str | None = _ruled(None, pattern=_SIGNATURE, hint="a signature name")

    def _check(self, path: str) -> None:
        if self.version is not None and self.label is not None:
            raise ConfigError(path, "pins both version and label; give one of them")
        self._check_shadows(f"{path}.shadow")
        if self.split is None:
            if self.sticky_header is not None:
                raise ConfigError(f"{path}.sticky_header", "needs a split to choose an arm of")
            return
        if not self.split:
            raise ConfigError(f"{path}.split", "needs at least one arm (leave the key out for no split)")
        if self.version is not None or self.label is not None:
            pin = "version" if self.version is not None else "label"
            raise ConfigError(f"{path}.split", f"cannot be combined with a pinned {pin}; give one of them")
        names = [arm.name for arm in self.split]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"{path}.split[{i}]", f"duplicate arm {name!r}")

    def coordinates(self, arm: SplitArm | ShadowArm | None = None) -> tuple[str, str, int | None, str | None]:
        """(backend, model, version, label) that ``arm`` (None: the pin) addresses, the gaps filled
        with the deployment's: two arms with equal coordinates call the same servable."""
        if arm is None:
            return self.backend, self.model, self.version, self.label
        return arm.backend or self.backend, arm.model or self.model, arm.version, arm.label

    def _check_shadows(self, path: str) -> None:
        if self.shadow is None:
            return
        if not self.shadow:
            raise ConfigError(path, "needs at least one arm (leave the key out for no shadow)")
        own = _Arm(self.version, self.label).name or "latest"
        primaries = {self.coordinates(arm): arm.name for arm in self.split} if self.split else {self.coordinates(): own}
        seen: list[tuple[str, str, int | None, str | None]] = []
        for i, arm in enumerate(self.shadow):
            where = self.coordinates(arm)
            if where in primaries:
                raise ConfigError(
                    f"{path}[{i}]",
                    f"is the primary arm {primaries[where]!r}; a shadow must differ from what it shadows",
                )
            if where in seen:
                raise ConfigError(f"{path}[{i}]", f"duplicate shadow {arm.name!r}")
            seen.append(where)


def _default_backends() -> Mapping[str, BackendSettings]:
    return types.MappingProxyType({"default": BackendSettings()})


@dataclass(frozen=True, slots=True)
class Settings(_Section):
    server: ServerSettings = field(default_factory=ServerSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
    signature_cache: SignatureCacheSettings = field(default_factory=SignatureCacheSettings)
    backends: Mapping[str, BackendSettings] = _ruled_map(_default_backends)
    models: ModelsSettings = field(default_factory=ModelsSettings)
    deployments: Mapping[str, DeploymentSettings] = _ruled_map(_empty_map)
    auth: AuthSettings = field(default_factory=AuthSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    batching: BatchingSettings = field(default_factory=BatchingSettings)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> "Settings":
        """Validate ``data`` (parsed YAML) over the defaults; secrets resolve from ``env`` or os.environ."""
        return _Builder(os.environ if env is None else env).settings(data)

    def backend(self, name: str) -> BackendSettings:
        """The named backend; every name the config refers to is checked at load. KeyError otherwise."""
        return self.backends[name]

    def deployment(self, deployment_id: str) -> DeploymentSettings | None:
        return self.deployments.get(deployment_id)

    def model_settings(self, name: str) -> ModelSettings:
        """The override for ``name``, or the defaults: models.default_backend, global auth and batching."""
        override = self.models.overrides.get(name)
        if override is not None:
            return override
        return ModelSettings(self.models.default_backend, None, self.auth.policy(), self.batching)

    def timeout_for(
        self,
        target: ModelSettings | DeploymentSettings,
        client_seconds: float | None = None,
        *,
        metadata: bool = False,
    ) -> float:
        """Deadline in seconds for one backend call on behalf of ``target``.

        A client's own timeout (X-Request-Timeout / grpc-timeout, already parsed and > 0) wins, capped
        at timeouts.max_client_seconds. Otherwise status/metadata calls get timeouts.metadata_seconds,
        and inference calls the first set of: target.timeout_seconds, the backend's timeout_seconds,
        timeouts.default_seconds.
        """
        if client_seconds is not None:
            return min(client_seconds, self.timeouts.max_client_seconds)
        if metadata:
            return self.timeouts.metadata_seconds
        for seconds in (target.timeout_seconds, self.backend(target.backend).timeout_seconds):
            if seconds is not None:
                return seconds
        return self.timeouts.default_seconds

    def to_mapping(self) -> dict[str, Any]:
        """Plain data that ``from_mapping`` accepts back; secrets appear only as their references."""
        dumped: dict[str, Any] = _dump(self)
        return dumped

    def _check(self, path: str) -> None:
        if not self.backends:
            raise ConfigError("backends", "needs at least one backend")
        for ref_path, name in self._backend_references():
            if name not in self.backends:
                known = ", ".join(sorted(self.backends))
                raise ConfigError(ref_path, f"unknown backend {name!r} (configured: {known})")

    def _backend_references(self) -> list[tuple[str, str]]:
        refs = [("models.default_backend", self.models.default_backend)]
        refs += [(f"models.overrides.{n}.backend", m.backend) for n, m in self.models.overrides.items()]
        refs += [(f"deployments.{n}.backend", d.backend) for n, d in self.deployments.items()]
        refs += [
            (f"deployments.{n}.split[{i}].backend", arm.backend)
            for n, d in self.deployments.items()
            for i, arm in enumerate(d.split or ())
            if arm.backend is not None
        ]
        refs += [
            (f"deployments.{n}.shadow[{i}].backend", arm.backend)
            for n, d in self.deployments.items()
            for i, arm in enumerate(d.shadow or ())
            if arm.backend is not None
        ]
        return refs


def top_level(data: object, where: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(where, f"the top level must be a mapping, got {type(data).__name__}")
    return dict(data)


class _Builder:
    """Turns plain data into settings objects, field by field, driven by the type hints."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def settings(self, data: Mapping[str, Any]) -> Settings:
        raw = top_level(data, "(top level)")
        # models and deployments inherit from the other sections, so they are built last.
        late = {key: raw.pop(key, None) for key in ("models", "deployments")}
        draft = replace(Settings(), **self.fields(Settings, raw, "", Settings()))
        draft = replace(draft, models=self.models(late["models"], draft))
        settings = replace(draft, deployments=self.deployments(late["deployments"], draft))
        settings._check("")
        return settings

    def models(self, raw: object, draft: Settings) -> ModelsSettings:
        data = dict(_mapping(raw, "models"))
        overrides = _mapping(data.pop("overrides", None), "models.overrides")
        models = self.build(ModelsSettings, data, "models", ModelsSettings())
        defaults = replace(draft, models=models).model_settings("")
        built = {
            name: self.build(ModelSettings, _non_null(value, path), path, defaults)
            for name, path, value in _named(overrides, "models.overrides", _NAME)
        }
        return replace(models, overrides=types.MappingProxyType(built))

    def deployments(self, raw: object, draft: Settings) -> Mapping[str, DeploymentSettings]:
        built = {
            name: self.deployment(_non_null(value, path), path, draft)
            for name, path, value in _named(_mapping(raw, "deployments"), "deployments", _NAME)
        }
        return types.MappingProxyType(built)

    def deployment(self, data: Mapping[str, Any], path: str, draft: Settings) -> DeploymentSettings:
        if "model" not in data:
            raise ConfigError(f"{path}.model", "is required")
        model = self.convert(str, data["model"], f"{path}.model", _MODEL_RULE, None)
        inherited = draft.model_settings(model)
        base = DeploymentSettings(
            model=model,
            backend=inherited.backend,
            timeout_seconds=inherited.timeout_seconds,
            auth=inherited.auth,
            batching=inherited.batching,
        )
        return self.build(DeploymentSettings, data, path, base)

    def build(self, cls: type[T], raw: object, path: str, base: T) -> T:
        """``base`` with the keys given in ``raw`` replaced, then checked as a whole."""
        built = replace(base, **self.fields(cls, _mapping(raw, path), path, base))  # type: ignore[type-var]
        if isinstance(built, _Section):
            built._check(path)
        return built

    def fields(self, cls: type[Any], data: Mapping[str, Any], path: str, base: object) -> dict[str, Any]:
        hints, rules = _schema(cls)
        _reject_unknown(data, hints, path)
        return {
            key: self.convert(hints[key], value, _join(path, key), rules[key], getattr(base, key))
            for key, value in data.items()
        }

    def convert(self, tp: Any, value: object, path: str, rule: _Rule, current: object) -> Any:
        """One value of type ``tp``; ``current`` is what a nested section merges onto."""
        optional, tp = _unwrap_optional(tp)
        if value is None and optional:
            return None
        if isinstance(tp, type) and issubclass(tp, _Section):
            base = current if current is not None else tp()
            return self.build(tp, {} if value is None else value, path, base)
        if value is None:
            raise ConfigError(path, "must not be null")
        return self.convert_value(tp, value, path, rule)

    def convert_value(self, tp: Any, value: object, path: str, rule: _Rule) -> Any:
        origin = get_origin(tp)
        if tp is Secret:
            return self.secret(value, path, rule.secret_keys)
        if origin is tuple:
            return self.sequence(get_args(tp)[0], value, path, rule)
        if origin is Mapping:
            return self.named_map(get_args(tp)[1], value, path, rule)
        if origin is Literal:
            return _choice(get_args(tp), value, path)
        return _apply_rule(_scalar(tp, value, path), path, rule)

    def sequence(self, item: Any, value: object, path: str, rule: _Rule) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {_describe(value)}")
        return tuple(self.convert(item, v, f"{path}[{i}]", rule, None) for i, v in enumerate(value))

    def named_map(self, item: Any, value: object, path: str, rule: _Rule) -> Mapping[str, Any]:
        entries = _named(_mapping(value, path), path, rule.keys)
        converted = {name: self.convert(item, v, key_path, rule, None) for name, key_path, v in entries}
        return types.MappingProxyType(converted)

    def secret(self, value: object, path: str, keys: tuple[str, str]) -> Secret:
        # Never echo `value` in these messages: it may be the very secret that was pasted inline.
        hint = f"inline secrets are not allowed; use {{{keys[0]}: VARIABLE}} or {{{keys[1]}: PATH}}"
        if not isinstance(value, Mapping):
            raise ConfigError(path, hint)
        for key in value:
            if key not in keys:
                raise ConfigError(_join(path, str(key)), f"unknown key; {hint}")
        if len(value) != 1:
            raise ConfigError(path, f"give exactly one of {keys[0]} or {keys[1]}")
        ((source, reference),) = value.items()
        reference = _scalar(str, reference, f"{path}.{source}")
        read = self.secret_from_env if source == keys[0] else _secret_from_file
        return Secret(source, reference, read(reference, f"{path}.{source}"))

    def secret_from_env(self, name: str, path: str) -> str:
        if name not in self.env:
            raise ConfigError(path, f"environment variable {name} is not set")
        return _non_empty_secret(self.env[name], path)


_MODEL_RULE = _Rule(pattern=_NAME, hint="a model name")


def _secret_from_file(file: str, path: str) -> str:
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read {file}: {exc}") from None
    # Editors and `kubectl create secret --from-file` leave a trailing newline that is not part of it.
    return _non_empty_secret(text.rstrip("\r\n"), path)


def _non_empty_secret(value: str, path: str) -> str:
    if not value:
        raise ConfigError(path, "the secret is empty")
    return value


_SCHEMAS: dict[type[Any], tuple[dict[str, Any], dict[str, _Rule]]] = {}


def _schema(cls: type[Any]) -> tuple[dict[str, Any], dict[str, _Rule]]:
    """Field name -> resolved type hint, and field name -> rule; memoised per class."""
    if cls not in _SCHEMAS:
        hints = get_type_hints(cls)
        rules = {f.name: f.metadata.get("rule", _Rule()) for f in fields(cls)}
        _SCHEMAS[cls] = ({name: hints[name] for name in rules}, rules)
    return _SCHEMAS[cls]


def _reject_unknown(data: Mapping[str, Any], known: Mapping[str, Any], path: str) -> None:
    for key in data:
        if key not in known:
            near = get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"expected one of: {', '.join(known)}"
            raise ConfigError(_join(path, str(key)), f"unknown key; {hint}")


def _named(data: Mapping[Any, Any], path: str, pattern: re.Pattern[str]) -> list[tuple[str, str, Any]]:
    """(name, its path, value) for each entry of a map of named things, names checked."""
    entries = []
    for name, value in data.items():
        name_path = f"{path}.{name}"
        if not isinstance(name, str) or not pattern.fullmatch(name):
            raise ConfigError(name_path, f"invalid name; expected a string matching {pattern.pattern}")
        entries.append((name, name_path, value))
    return entries


def _non_null(value: object, path: str) -> dict[str, Any]:
    """In per-target blocks null means "inherit", exactly as leaving the key out does."""
    return {key: v for key, v in _mapping(value, path).items() if v is not None}


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(path or "(top level)", f"expected a mapping, got {_describe(value)}")
    return value


def _unwrap_optional(tp: Any) -> tuple[bool, Any]:
    if get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):
        (inner,) = (arg for arg in get_args(tp) if arg is not type(None))
        return True, inner
    return False, tp


def _scalar(tp: Any, value: object, path: str) -> Any:
    if tp is float and _is_number(value):
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ConfigError(path, "must be a finite number")
        return float(value)  # type: ignore[arg-type]
    if tp is int and _is_number(value) and isinstance(value, int):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        if not value.strip():
            raise ConfigError(path, "must not be empty")
        return value
    raise ConfigError(path, f"expected {_expected(tp, path)}, got {_describe(value)}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expected(tp: Any, path: str) -> str:
    if tp is float and path.endswith("_seconds"):
        return "a number of seconds (e.g. 2.5; no unit suffix)"
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string"}[tp]


def _choice(choices: tuple[Any, ...], value: object, path: str) -> Any:
    if value not in choices or not isinstance(value, str):
        raise ConfigError(path, f"expected one of {', '.join(choices)}; got {_describe(value)}")
    return value


def _apply_rule(value: Any, path: str, rule: _Rule) -> Any:
    if _is_number(value):
        _check_bounds(value, path, rule)
    elif isinstance(value, str):
        _check_text(value, path, rule)
    return value


def _check_bounds(value: float, path: str, rule: _Rule) -> None:
    if rule.ge is not None and value < rule.ge:
        raise ConfigError(path, f"must be >= {rule.ge}, got {value}")
    if rule.gt is not None and value <= rule.gt:
        raise ConfigError(path, f"must be > {rule.gt}, got {value}")
    if rule.le is not None and value > rule.le:
        raise ConfigError(path, f"must be <= {rule.le}, got {value}")


def _check_text(value: str, path: str, rule: _Rule) -> None:
    if rule.pattern is not None and not rule.pattern.fullmatch(value):
        raise ConfigError(path, f"expected {rule.hint}, got {value!r}")
    if rule.file and not Path(value).is_file():
        raise ConfigError(path, f"no such file: {value}")


def _check_targets(path: str, targets: tuple[str, ...]) -> None:
    if not targets:
        raise ConfigError(path, "needs at least one target")
    for i, target in enumerate(targets):
        if target.startswith(_RESOLVER_SCHEMES):
            if len(targets) > 1:
                raise ConfigError(f"{path}[{i}]", "a resolver URI must be the only target")
            continue
        match = _HOST_PORT.fullmatch(target)
        if match is None or not 1 <= int(match[2]) <= 65535:
            raise ConfigError(f"{path}[{i}]", f"expected host:port or dns:///name:port, got {target!r}")


def _no_duplicates(path: str, items: tuple[str, ...]) -> None:
    for i, item in enumerate(items):
        if item in items[:i]:
            raise ConfigError(f"{path}[{i}]", f"duplicate {item!r}")


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _dump(value: object) -> Any:
    if isinstance(value, Secret):
        return {value.source: value.reference}
    if isinstance(value, _Section):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)}  # type: ignore[arg-type]
    if isinstance(value, tuple):
        return [_dump(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _dump(item) for key, item in value.items()}
    return value
