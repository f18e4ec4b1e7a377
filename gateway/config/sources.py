"""Where configuration comes from: defaults <- YAML file <- environment <- CLI overrides.

Each source deep-merges mappings over the one before; ``Settings.from_mapping`` (``schema.py``)
then validates the result once. YAML is read strictly: a duplicate key is an error, not "the
last one wins".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway.config.schema import ENV_PREFIX, ConfigError, Settings, top_level

__all__ = ["env_overrides", "load_settings", "read_yaml"]


def load_settings(
    path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults <- YAML file at ``path`` <- ``TFS_GATEWAY__*`` variables in ``env`` <- ``overrides``."""
    env = os.environ if env is None else env
    data = read_yaml(path) if path is not None else {}
    data = _deep_merge(data, env_overrides(env))
    data = _deep_merge(data, overrides or {})
    return Settings.from_mapping(data, env=env)


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; YAML errors (duplicate keys included) become ConfigErrors."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read the config file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(where, str(exc.problem)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), str(exc)) from None
    return top_level(data, str(path))


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``TFS_GATEWAY__SERVER__PORT=9000`` -> ``{"server": {"port": 9000}}``."""
    tree: dict[str, Any] = {}
    for name in sorted(env):
        if name.startswith(ENV_PREFIX):
            keys = name[len(ENV_PREFIX) :].lower().split("__")
            tree = _deep_merge(tree, _nest(keys, _env_value(name, keys, env[name])))
    return tree


def _env_value(name: str, keys: list[str], text: str) -> Any:
    if not all(keys):
        raise ConfigError(name, "empty key level in environment variable name")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # Scalars and lists only: a colon in a plain value (the IPv6 host "::") must stay a string.
    return text if isinstance(value, dict) else value


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    for key in reversed(keys):
        value = {key: value}
    nested: dict[str, Any] = value
    return nested


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        both = isinstance(below, Mapping) and isinstance(value, Mapping)
        merged[key] = _deep_merge(below, value) if both else value  # type: ignore[arg-type]
    return merged


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which PyYAML would silently resolve to the last one."""


def _construct_unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)
