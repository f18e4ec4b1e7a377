"""Model configuration: ModelServer's text-format config file or --model_name/--model_base_path."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


class ConfigError(Exception):
    """The configuration cannot be served; ModelServer refuses to start in these cases."""


class PolicyKind(enum.Enum):
    LATEST = "latest"
    ALL = "all"
    SPECIFIC = "specific"


@dataclass(frozen=True)
class VersionPolicy:
    kind: PolicyKind = PolicyKind.LATEST
    num_versions: int = 1
    versions: frozenset[int] = frozenset()

    def aspired(self, on_disk: set[int]) -> set[int]:
        """Which of the versions found on disk should be loaded."""
        if self.kind is PolicyKind.ALL:
            return set(on_disk)
        if self.kind is PolicyKind.SPECIFIC:
            return on_disk & self.versions
        return set(sorted(on_disk, reverse=True)[: self.num_versions])


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


def _policy_from_proto(config: model_server_config_pb2.ModelConfig) -> VersionPolicy:
    if not config.HasField("model_version_policy"):
        return VersionPolicy()
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy(PolicyKind.ALL)
    if choice == "specific":
        if not policy.specific.versions:
            raise ConfigError(f"Model {config.name}: specific version policy lists no versions")
        return VersionPolicy(PolicyKind.SPECIFIC, versions=frozenset(policy.specific.versions))
    # ModelServer treats latest{} without num_versions as 1.
    return VersionPolicy(PolicyKind.LATEST, num_versions=policy.latest.num_versions or 1)


def _model_from_proto(config: model_server_config_pb2.ModelConfig, config_dir: Path) -> ModelConfig:
    if not config.name:
        raise ConfigError("A model config has no name")
    if not config.base_path:
        raise ConfigError(f"Model {config.name} has no base_path")
    if config.model_platform not in ("", "tensorflow"):
        raise ConfigError(
            f"Model {config.name}: platform {config.model_platform!r} is not supported (only 'tensorflow')"
        )
    # Relative base paths are taken from the config file's folder, so a config can
    # travel with its models.
    base_path = (config_dir / config.base_path).resolve()
    return ModelConfig(
        name=config.name,
        base_path=base_path,
        policy=_policy_from_proto(config),
        labels=dict(config.version_labels),
    )


def parse_config_text(text: str, config_dir: Path) -> list[ModelConfig]:
    """Parse a ModelServerConfig in text format into model configs."""
    server_config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, server_config)
    except text_format.ParseError as exc:
        raise ConfigError(f"Invalid model config: {exc}") from exc
    if server_config.WhichOneof("config") != "model_config_list":
        raise ConfigError("Only model_config_list configs are supported")
    models = [_model_from_proto(c, config_dir) for c in server_config.model_config_list.config]
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"Illegal to list model {duplicates[0]} multiple times in config list")
    return models


def load_config_file(path: Path) -> list[ModelConfig]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"Cannot read model config file {path}: {exc}") from exc
    return parse_config_text(text, path.resolve().parent)


def single_model_config(name: str, base_path: str) -> list[ModelConfig]:
    """The config ModelServer builds from --model_name and --model_base_path."""
    return [ModelConfig(name=name, base_path=Path(base_path).resolve())]
