"""gateway.config.schema: defaults, every validation rule (by the bad key's path), sources, secrets."""

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import (
    AuthPolicy,
    BatchingSettings,
    ConfigError,
    DeploymentSettings,
    ModelSettings,
    Secret,
    Settings,
    env_overrides,
    load_settings,
)

REPO = Path(__file__).resolve().parents[1]
SECRET_ENV = {"ALICE_PW": "hunter2-alice", "API_KEY": "sk-live-0123456789"}


def build(data: Mapping[str, Any], env: Mapping[str, str] = SECRET_ENV) -> Settings:
    return Settings.from_mapping(data, env=env)


def error_for(data: Mapping[str, Any], env: Mapping[str, str] = SECRET_ENV) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build(data, env)
    return caught.value


# --- defaults and the documented config.yaml -------------------------------------------------


def test_empty_mapping_is_valid_with_one_default_backend() -> None:
    settings = build({})
    assert settings == Settings()
    assert list(settings.backends) == ["default"]
    assert settings.backend("default").targets == ("localhost:8500",)
    assert settings.server.port == 8501


def test_config_yaml_loads_and_equals_the_defaults() -> None:
    assert load_settings(REPO / "config.yaml", env={}) == Settings()


def test_config_yaml_documents_every_key_with_its_default() -> None:
    # Stronger than "loads": the file holds exactly the keys and values the code defaults to.
    documented = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    assert documented == Settings().to_mapping()


@pytest.mark.parametrize("cls", [ModelSettings, DeploymentSettings])
def test_config_yaml_mentions_every_per_target_key(cls: type[Any]) -> None:
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    for f in dataclasses.fields(cls):
        assert f"{f.name}:" in text, f.name


def test_a_deployment_names_its_default_signature() -> None:
    settings = build({"deployments": {"d": {"model": "m", "signature_name": "predict images"}, "e": {"model": "m"}}})
    assert settings.deployments["d"].signature_name == "predict images"
    assert settings.deployments["e"].signature_name is None


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.server.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.backends["x"] = settings.backend("default")  # type: ignore[index]


def test_no_file_runs_on_defaults() -> None:
    assert load_settings(None, env={}) == Settings()


def test_null_section_means_defaults() -> None:
    assert build({"server": None, "backends": {"default": {"retry": None}}}) == Settings()


# --- validation: the error names the bad key --------------------------------------------------

INVALID: list[tuple[dict[str, Any], str]] = [
    ({"sever": {}}, "sever"),
    ({"server": {"prot": 9000}}, "server.prot"),
    ({"server": []}, "server"),
    ({"server": {"port": "8501"}}, "server.port"),
    ({"server": {"port": True}}, "server.port"),
    ({"server": {"port": 65536}}, "server.port"),
    ({"server": {"port": -1}}, "server.port"),
    ({"server": {"metrics_port": 8501}}, "server.metrics_port"),
    ({"server": {"workers": 0}}, "server.workers"),
    ({"server": {"workers": 1.5}}, "server.workers"),
    ({"server": {"host": ""}}, "server.host"),
    ({"server": {"host": None}}, "server.host"),
    ({"server": {"max_request_bytes": -1}}, "server.max_request_bytes"),
    ({"server": {"max_request_bytes": 0}}, "server.max_request_bytes"),
    ({"server": {"max_json_depth": 0}}, "server.max_json_depth"),
    ({"server": {"max_tensor_elements": -5}}, "server.max_tensor_elements"),
    ({"server": {"max_header_bytes": 100}}, "server.max_header_bytes"),
    ({"server": {"shutdown_grace_seconds": "25s"}}, "server.shutdown_grace_seconds"),
    ({"server": {"shutdown_grace_seconds": -1}}, "server.shutdown_grace_seconds"),
    ({"server": {"client_read_timeout_seconds": 0}}, "server.client_read_timeout_seconds"),
    ({"server": {"keepalive_timeout_seconds": float("nan")}}, "server.keepalive_timeout_seconds"),
    ({"server": {"keepalive_timeout_seconds": float("inf")}}, "server.keepalive_timeout_seconds"),
    ({"server": {"gzip_responses": "yes"}}, "server.gzip_responses"),
    ({"server": {"log_level": "verbose"}}, "server.log_level"),
    ({"server": {"log_level": "INFO"}}, "server.log_level"),
    ({"server": {"tls": {"cert_file": "cert.pem"}}}, "server.tls.cert_file"),
    ({"metrics": {"paths": []}}, "metrics.paths"),
    ({"metrics": {"paths": "/metrics"}}, "metrics.paths"),
    ({"metrics": {"paths": ["metrics"]}}, "metrics.paths[0]"),
    ({"metrics": {"paths": ["/m", "/m"]}}, "metrics.paths[1]"),
    ({"timeouts": {"default_seconds": 0}}, "timeouts.default_seconds"),
    ({"timeouts": {"max_client_seconds": -3}}, "timeouts.max_client_seconds"),
    ({"timeouts": {"metadata_seconds": "10"}}, "timeouts.metadata_seconds"),
    ({"signature_cache": {"max_entries": 0}}, "signature_cache.max_entries"),
    ({"signature_cache": {"ttl_seconds": -1}}, "signature_cache.ttl_seconds"),
    ({"backends": {}}, "backends"),
    ({"backends": {"gpu": {}}}, "models.default_backend"),
    ({"backends": {"bad name": {}}}, "backends.bad name"),
    ({"backends": {"default": {"targets": []}}}, "backends.default.targets"),
    ({"backends": {"default": {"targets": "localhost:8500"}}}, "backends.default.targets"),
    ({"backends": {"default": {"targets": ["a:1", "b"]}}}, "backends.default.targets[1]"),
    ({"backends": {"default": {"targets": ["a:0"]}}}, "backends.default.targets[0]"),
    ({"backends": {"default": {"targets": ["a:99999"]}}}, "backends.default.targets[0]"),
    ({"backends": {"default": {"targets": ["http://a:1"]}}}, "backends.default.targets[0]"),
    ({"backends": {"default": {"targets": ["a:1", "dns:///b:1"]}}}, "backends.default.targets[1]"),
    ({"backends": {"default": {"targets": [8500]}}}, "backends.default.targets[0]"),
    ({"backends": {"default": {"load_balancing": "random"}}}, "backends.default.load_balancing"),
    ({"backends": {"default": {"max_message_bytes": 2**31}}}, "backends.default.max_message_bytes"),
    ({"backends": {"default": {"max_concurrency": 0}}}, "backends.default.max_concurrency"),
    ({"backends": {"default": {"max_queue": -1}}}, "backends.default.max_queue"),
    ({"backends": {"default": {"timeout_seconds": 0}}}, "backends.default.timeout_seconds"),
    ({"backends": {"default": {"retry": {"max_attempts": 0}}}}, "backends.default.retry.max_attempts"),
    ({"backends": {"default": {"retry": {"budget_ratio": 1.5}}}}, "backends.default.retry.budget_ratio"),
    (
        {"backends": {"default": {"retry": {"initial_backoff_seconds": 2}}}},
        "backends.default.retry.initial_backoff_seconds",
    ),
    ({"backends": {"default": {"retry": {"maxattempts": 3}}}}, "backends.default.retry.maxattempts"),
    (
        {"backends": {"default": {"circuit_breaker": {"failure_threshold": 0}}}},
        "backends.default.circuit_breaker.failure_threshold",
    ),
    (
        {"backends": {"default": {"health_check": {"timeout_seconds": 10}}}},
        "backends.default.health_check.timeout_seconds",
    ),
    (
        {"backends": {"default": {"health_check": {"model": "a/b"}}}},
        "backends.default.health_check.model",
    ),
    ({"backends": {"default": {"tls": {"server_name": "x"}}}}, "backends.default.tls.enabled"),
    ({"backends": {"default": {"tls": {"ca_file": "/no/such/ca.pem"}}}}, "backends.default.tls.ca_file"),
    ({"models": {"default_backend": "gpu"}}, "models.default_backend"),
    ({"models": {"overrides": {"bert": {"backend": "gpu"}}}}, "models.overrides.bert.backend"),
    ({"models": {"overrides": {"bert": {"timeout_seconds": -1}}}}, "models.overrides.bert.timeout_seconds"),
    ({"models": {"overrides": {"bert": {"version": 1}}}}, "models.overrides.bert.version"),
    ({"models": {"overrides": {"a:b": {}}}}, "models.overrides.a:b"),
    (
        {"models": {"overrides": {"bert": {"auth": {"protect_health": True}}}}},
        "models.overrides.bert.auth.protect_health",
    ),
    ({"models": {"overrides": {"bert": {"auth": {"type": "basic"}}}}}, "models.overrides.bert.auth.basic_users"),
    (
        {"models": {"overrides": {"bert": {"batching": {"max_batch_size": 0}}}}},
        "models.overrides.bert.batching.max_batch_size",
    ),
    ({"deployments": {"d": {}}}, "deployments.d.model"),
    ({"deployments": {"d": "half_plus_two"}}, "deployments.d"),
    ({"deployments": {"d": {"model": "m", "version": 1, "label": "stable"}}}, "deployments.d"),
    ({"deployments": {"d": {"model": "m", "backend": "nope"}}}, "deployments.d.backend"),
    ({"deployments": {"d": {"model": "m", "version": -1}}}, "deployments.d.version"),
    ({"deployments": {"d": {"model": "m", "signature_name": ""}}}, "deployments.d.signature_name"),
    ({"deployments": {"d": {"model": "m", "signature_name": "a\nb"}}}, "deployments.d.signature_name"),
    ({"deployments": {"d": {"model": "m", "signature_name": 3}}}, "deployments.d.signature_name"),
    ({"deployments": {"d": {"model": "m", "version": "1"}}}, "deployments.d.version"),
    ({"deployments": {"d": {"model": "m", "modle": "m"}}}, "deployments.d.modle"),
    ({"deployments": {"d/x": {"model": "m"}}}, "deployments.d/x"),
    ({"auth": {"type": "oauth"}}, "auth.type"),
    ({"auth": {"type": "basic"}}, "auth.basic_users"),
    ({"auth": {"type": "api_key"}}, "auth.api_keys"),
    ({"auth": {"type": "any"}}, "auth.basic_users"),
    ({"auth": {"realm": 5}}, "auth.realm"),
    ({"auth": {"basic_users": {"a:b": {"password_env": "ALICE_PW"}}}}, "auth.basic_users.a:b"),
    (
        {"auth": {"basic_users": {"alice": {"password_env": "ALICE_PW", "password_file": "/x"}}}},
        "auth.basic_users.alice",
    ),
    ({"auth": {"basic_users": {"alice": {}}}}, "auth.basic_users.alice"),
    ({"auth": {"basic_users": {"alice": {"password_env": "MISSING_VAR"}}}}, "auth.basic_users.alice.password_env"),
    ({"auth": {"basic_users": {"alice": {"password_file": "/no/such/file"}}}}, "auth.basic_users.alice.password_file"),
    ({"auth": {"api_keys": [{"env": "API_KEY"}, {"env": "MISSING_VAR"}]}}, "auth.api_keys[1].env"),
    ({"auth": {"api_keys": [{"file": ""}]}}, "auth.api_keys[0].file"),
    ({"auth": {"api_keys": {"env": "API_KEY"}}}, "auth.api_keys"),
    ({"cors": {"enabled": True}}, "cors.allow_origins"),
    ({"cors": {"allow_origins": ["*"], "allow_credentials": True}}, "cors.allow_credentials"),
    ({"cors": {"allow_origins": ["*", "https://a.example"]}}, "cors.allow_origins"),
    ({"cors": {"allow_origins": ["https://a.example/path"]}}, "cors.allow_origins[0]"),
    ({"cors": {"allow_methods": ["GET", "FETCH"]}}, "cors.allow_methods[1]"),
    ({"cors": {"allow_headers": ["X Bad"]}}, "cors.allow_headers[0]"),
    ({"cors": {"max_age_seconds": -1}}, "cors.max_age_seconds"),
    ({"batching": {"max_batch_size": 0}}, "batching.max_batch_size"),
    ({"batching": {"window_seconds": -0.1}}, "batching.window_seconds"),
]


@pytest.mark.parametrize(("data", "path"), INVALID, ids=[path for _, path in INVALID])
def test_invalid_value_is_reported_at_its_path(data: dict[str, Any], path: str) -> None:
    error = error_for(data)
    assert error.path == path, error
    assert error.message
    assert str(error) == f"{path}: {error.message}"


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        Settings.from_mapping([1, 2], env={})  # type: ignore[arg-type]


def test_typo_suggests_the_key_meant() -> None:
    assert "did you mean 'port'" in error_for({"server": {"prot": 1}}).message


def test_duration_error_says_seconds() -> None:
    assert "seconds" in error_for({"timeouts": {"default_seconds": "30s"}}).message


def test_tls_files_must_come_in_pairs(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    error = error_for({"server": {"tls": {"cert_file": str(cert)}}})
    assert error.path == "server.tls.key_file"
    key = tmp_path / "key.pem"
    key.write_text("x")
    tls = build({"server": {"tls": {"cert_file": str(cert), "key_file": str(key)}}}).server.tls
    assert (tls.cert_file, tls.key_file) == (str(cert), str(key))


def test_valid_targets() -> None:
    for targets in (["a:1", "10.0.0.1:8500", "[::1]:8500"], ["dns:///svc.ns.svc.cluster.local:8500"]):
        assert build({"backends": {"default": {"targets": targets}}}).backend("default").targets == tuple(targets)


def test_integers_are_accepted_for_seconds() -> None:
    assert build({"timeouts": {"default_seconds": 5}}).timeouts.default_seconds == 5.0


# --- inheritance and lookups -------------------------------------------------------------------

RICH: dict[str, Any] = {
    "backends": {"default": {}, "gpu": {"targets": ["gpu:8500"], "timeout_seconds": 5}},
    "models": {
        "overrides": {
            "bert": {"backend": "gpu", "auth": {"type": "none"}, "batching": {"enabled": True}},
            "slow": {"timeout_seconds": 120},
        }
    },
    "deployments": {
        "canary": {"model": "bert", "label": "canary", "timeout_seconds": None, "auth": None},
        "pinned": {"model": "half_plus_two", "version": 3, "auth": {"type": "api_key"}},
        "fast": {"model": "slow", "backend": "gpu", "timeout_seconds": 0.5},
    },
    "auth": {
        "type": "any",
        "basic_users": {"alice": {"password_env": "ALICE_PW"}},
        "api_keys": [{"env": "API_KEY"}],
        "protect_metrics": True,
    },
    "batching": {"max_batch_size": 8},
}


def test_model_settings_for_unconfigured_model_are_the_global_defaults() -> None:
    settings = build(RICH)
    model = settings.model_settings("anything")
    assert model.backend == "default"
    assert model.timeout_seconds is None
    assert model.auth == settings.auth.policy()
    assert type(model.auth) is AuthPolicy
    assert model.batching == BatchingSettings(max_batch_size=8)


def test_model_override_merges_partial_blocks_over_the_globals() -> None:
    bert = build(RICH).model_settings("bert")
    assert bert.backend == "gpu"
    assert bert.auth.type == "none"
    assert bert.auth.realm == "tfserving-gateway"
    assert bert.batching == BatchingSettings(enabled=True, max_batch_size=8)


def test_deployment_inherits_from_its_model_override() -> None:
    settings = build(RICH)
    canary = settings.deployment("canary")
    assert canary is not None
    assert (canary.model, canary.backend, canary.label, canary.version) == ("bert", "gpu", "canary", None)
    assert canary.auth.type == "none"
    assert canary.batching.enabled


def test_deployment_auth_override_keeps_global_credentials() -> None:
    pinned = build(RICH).deployment("pinned")
    assert pinned is not None
    assert pinned.version == 3
    assert pinned.auth.type == "api_key"
    assert pinned.auth.api_keys[0].value == SECRET_ENV["API_KEY"]


def test_unknown_deployment_is_none() -> None:
    assert build(RICH).deployment("nope") is None


def test_unknown_backend_lookup_raises_key_error() -> None:
    with pytest.raises(KeyError):
        build(RICH).backend("nope")


@pytest.mark.parametrize(
    ("target", "client", "metadata", "expected"),
    [
        ("model:anything", None, False, 30.0),  # timeouts.default_seconds
        ("model:bert", None, False, 5.0),  # its backend's timeout_seconds
        ("model:slow", None, False, 120.0),  # its own timeout_seconds
        ("deployment:canary", None, False, 5.0),  # null inherits: bert -> gpu backend
        ("deployment:fast", None, False, 0.5),
        ("model:bert", None, True, 10.0),  # status/metadata calls
        ("model:bert", 2.0, False, 2.0),  # the client's own
        ("model:bert", 2.0, True, 2.0),
        ("model:bert", 1000.0, False, 300.0),  # capped at max_client_seconds
    ],
)
def test_timeout_for(target: str, client: float | None, metadata: bool, expected: float) -> None:
    settings = build(RICH)
    kind, name = target.split(":")
    route = settings.model_settings(name) if kind == "model" else settings.deployment(name)
    assert route is not None
    assert settings.timeout_for(route, client, metadata=metadata) == expected


# --- secrets -----------------------------------------------------------------------------------


def test_secrets_resolve_from_env_and_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file\n", encoding="utf-8")
    data = {"auth": {"api_keys": [{"env": "API_KEY"}, {"file": str(key_file)}]}}
    keys = build(data).auth.api_keys
    assert [k.value for k in keys] == [SECRET_ENV["API_KEY"], "from-a-file"]
    assert keys[1].matches("from-a-file")
    assert not keys[1].matches("from-a-file\n")


def test_empty_secret_is_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    assert error_for({"auth": {"api_keys": [{"file": str(empty)}]}}).path == "auth.api_keys[0].file"
    assert error_for({"auth": {"api_keys": [{"env": "E"}]}}, env={"E": ""}).path == "auth.api_keys[0].env"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"auth": {"api_keys": ["sk-inline-secret"]}}, "auth.api_keys[0]"),
        ({"auth": {"api_keys": [{"key": "sk-inline-secret"}]}}, "auth.api_keys[0].key"),
        ({"auth": {"basic_users": {"alice": "sk-inline-secret"}}}, "auth.basic_users.alice"),
        ({"auth": {"basic_users": {"alice": {"password": "sk-inline-secret"}}}}, "auth.basic_users.alice.password"),
    ],
)
def test_inline_secrets_are_rejected_without_echoing_them(data: dict[str, Any], path: str) -> None:
    error = error_for(data)
    assert error.path == path
    assert "inline" in error.message
    assert "sk-inline-secret" not in str(error)


def test_secrets_never_show_in_repr_or_dump() -> None:
    settings = build(RICH)
    for text in (repr(settings), str(settings), repr(settings.auth), str(settings.to_mapping())):
        for secret in SECRET_ENV.values():
            assert secret not in text
    assert settings.to_mapping()["auth"]["basic_users"] == {"alice": {"password_env": "ALICE_PW"}}
    assert repr(Secret("env", "API_KEY", "sk-1")) == "Secret(source='env', reference='API_KEY')"


def test_dump_loads_back_to_equal_settings() -> None:
    settings = build(RICH)
    assert build(settings.to_mapping()) == settings


# --- sources: file, env, overrides ------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_env_overrides_parse_yaml_scalars_and_lists() -> None:
    env = {
        "TFS_GATEWAY__SERVER__PORT": "9000",
        "TFS_GATEWAY__SERVER__GZIP_RESPONSES": "false",
        "TFS_GATEWAY__METRICS__PATHS": "[/metrics]",
        "TFS_GATEWAY__BACKENDS__DEFAULT__RETRY__MAX_ATTEMPTS": "1",
        "UNRELATED": "x",
    }
    settings = load_settings(None, env=env)
    assert settings.server.port == 9000
    assert settings.server.gzip_responses is False
    assert settings.metrics.paths == ("/metrics",)
    assert settings.backend("default").retry.max_attempts == 1
    assert settings.backend("default").targets == ("localhost:8500",)


def test_env_nests_by_double_underscore() -> None:
    tree = env_overrides({"TFS_GATEWAY__DEPLOYMENTS__MY_DEP__MODEL": "m", "TFS_GATEWAY__SERVER__PORT": "1"})
    assert tree == {"deployments": {"my_dep": {"model": "m"}}, "server": {"port": 1}}


def test_env_typo_is_caught_at_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={"TFS_GATEWAY__SERVER__PROT": "1"})
    assert caught.value.path == "server.prot"


def test_env_bad_value_is_caught_at_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={"TFS_GATEWAY__SERVER__PORT": "eighty"})
    assert caught.value.path == "server.port"


def test_env_empty_level_is_rejected() -> None:
    with pytest.raises(ConfigError):
        load_settings(None, env={"TFS_GATEWAY__SERVER____PORT": "1"})


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 1000, host: filehost, workers: 3}\n")
    env = {"TFS_GATEWAY__SERVER__PORT": "2000", "TFS_GATEWAY__SERVER__HOST": "envhost"}
    settings = load_settings(path, env=env, overrides={"server": {"port": 3000}})
    assert (settings.server.port, settings.server.host, settings.server.workers) == (3000, "envhost", 3)


def test_sections_merge_but_named_maps_replace(tmp_path: Path) -> None:
    path = write(tmp_path, "backends:\n  default: {targets: ['a:1'], max_queue: 5}\n")
    settings = load_settings(path, env={}, overrides={"backends": {"default": {"targets": ["b:2"]}}})
    backend = settings.backend("default")
    assert (backend.targets, backend.max_queue, backend.max_concurrency) == (("b:2",), 5, 256)


def test_file_secrets_are_resolved_with_the_given_env(tmp_path: Path) -> None:
    path = write(tmp_path, "auth:\n  type: basic\n  basic_users:\n    alice: {password_env: ALICE_PW}\n")
    assert load_settings(path, env=SECRET_ENV).auth.basic_users["alice"].matches("hunter2-alice")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("server:\n  port: 1\n  port: 2\n", ":3:3"),
        ("server: [1\n", ":2:1"),
        ("- 1\n", ""),
    ],
)
def test_bad_yaml_is_reported_with_its_position(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert caught.value.path == f"{path}{where}"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.yaml", env={})
    assert caught.value.path == str(tmp_path / "absent.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "# nothing\n"), env={}) == Settings()


def test_null_in_per_target_blocks_means_inherit() -> None:
    data = {"deployments": {"d": {"model": "m", "backend": None, "auth": None, "batching": None}}}
    deployment = build(data).deployment("d")
    assert deployment == DeploymentSettings(model="m")


def test_env_values_that_are_not_scalars_or_lists_stay_strings() -> None:
    tree = env_overrides({"TFS_GATEWAY__SERVER__HOST": "::", "TFS_GATEWAY__SERVER__ACCESS_LOG": "[unclosed"})
    assert tree == {"server": {"host": "::", "access_log": "[unclosed"}}
