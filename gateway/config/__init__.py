"""Settings: frozen sections built and validated once from YAML, environment and CLI overrides.

``schema`` holds the sections, their defaults and rules; ``sources`` reads the YAML file and the
``TFS_GATEWAY__*`` environment; ``tls`` turns the TLS sections into contexts and PEM bytes.
The names below are the package's public face; nothing else imports the modules directly.
"""

from gateway.config.schema import (
    ENV_PREFIX,
    AuthPolicy,
    AuthSettings,
    BackendSettings,
    BackendTLS,
    BatchingSettings,
    CircuitBreakerSettings,
    ConfigError,
    CorsSettings,
    DeploymentSettings,
    HealthCheckSettings,
    LogLevel,
    MetricsSettings,
    ModelSettings,
    ModelsSettings,
    RetrySettings,
    Secret,
    ServerSettings,
    ServerTLS,
    Settings,
    ShadowArm,
    ShadowTolerance,
    SignatureCacheSettings,
    SplitArm,
    TimeoutSettings,
)
from gateway.config.sources import env_overrides, load_settings, read_yaml

__all__ = [
    "ENV_PREFIX",
    "AuthPolicy",
    "AuthSettings",
    "BackendSettings",
    "BackendTLS",
    "BatchingSettings",
    "CircuitBreakerSettings",
    "ConfigError",
    "CorsSettings",
    "DeploymentSettings",
    "HealthCheckSettings",
    "LogLevel",
    "MetricsSettings",
    "ModelSettings",
    "ModelsSettings",
    "RetrySettings",
    "Secret",
    "ServerSettings",
    "ServerTLS",
    "Settings",
    "ShadowArm",
    "ShadowTolerance",
    "SignatureCacheSettings",
    "SplitArm",
    "TimeoutSettings",
    "env_overrides",
    "load_settings",
    "read_yaml",
]
