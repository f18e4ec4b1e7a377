"""Targets bound to backends, model specs and deadlines."""

from __future__ import annotations

import pytest

from gateway.config import Settings
from gateway.errors import InvalidArgument, NotFound
from gateway.routing.binding import bind, client_timeout
from gateway.routing.routes import Target

SETTINGS = Settings.from_mapping(
    {
        "backends": {"default": {"targets": ["a:1"]}, "gpu": {"targets": ["b:2"], "timeout_seconds": 7}},
        "models": {"overrides": {"big": {"backend": "gpu"}, "fast": {"timeout_seconds": 2}}},
        "deployments": {
            "pinned": {"model": "half_plus_two", "version": 1},
            "labelled": {"model": "half_plus_two", "label": "stable", "backend": "gpu"},
        },
        "timeouts": {"default_seconds": 30, "max_client_seconds": 60, "metadata_seconds": 5},
    }
)


def test_v1_names_the_model_on_the_default_backend() -> None:
    binding = bind(SETTINGS, Target("v1", "predict", "m", version=3))
    assert (binding.backend, binding.model, binding.version, binding.label) == ("default", "m", 3, None)
    assert binding.timeout_seconds == 30
    spec = binding.model_spec("sig")
    assert (spec.name, spec.version.value, spec.signature_name) == ("m", 3, "sig")
    assert spec.WhichOneof("version_choice") == "version"


def test_model_overrides_pick_backend_and_timeout() -> None:
    assert bind(SETTINGS, Target("v1", "predict", "big")).backend == "gpu"
    assert bind(SETTINGS, Target("v1", "predict", "big")).timeout_seconds == 7
    assert bind(SETTINGS, Target("v1", "predict", "fast")).timeout_seconds == 2
    assert bind(SETTINGS, Target("v1", "status", "fast")).timeout_seconds == 5


def test_deployment_pins_apply_unless_the_url_names_a_version_or_label() -> None:
    pinned = bind(SETTINGS, Target("deployment", "predict", "pinned"))
    assert (pinned.model, pinned.version, pinned.label, pinned.name) == ("half_plus_two", 1, None, "pinned")
    labelled = bind(SETTINGS, Target("deployment", "predict", "labelled"))
    assert (labelled.backend, labelled.version, labelled.label) == ("gpu", None, "stable")
    assert labelled.model_spec().version_label == "stable"
    explicit = bind(SETTINGS, Target("deployment", "predict", "pinned", label="canary"))
    assert (explicit.version, explicit.label) == (None, "canary")


def test_unknown_deployment_is_404() -> None:
    with pytest.raises(NotFound, match="Deployment not found: nope"):
        bind(SETTINGS, Target("deployment", "predict", "nope"))


def test_client_timeouts_are_capped() -> None:
    assert bind(SETTINGS, Target("v1", "predict", "m"), client_seconds=0.25).timeout_seconds == 0.25
    assert bind(SETTINGS, Target("v1", "predict", "m"), client_seconds=600).timeout_seconds == 60


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"X-Request-Timeout": "1.5"}, 1.5),
        ({"grpc-timeout": "250m"}, 0.25),
        ({"grpc-timeout": "2S"}, 2.0),
        ({"grpc-timeout": "1M"}, 60.0),
        ({"grpc-timeout": "1500u"}, 0.0015),
        ({"X-Request-Timeout": "3", "grpc-timeout": "1S"}, 3.0),
    ],
)
def test_client_timeout_headers(headers: dict[str, str], seconds: float | None) -> None:
    assert client_timeout(headers) == seconds


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Request-Timeout": "0"},
        {"X-Request-Timeout": "-1"},
        {"X-Request-Timeout": "soon"},
        {"X-Request-Timeout": "inf"},
        {"X-Request-Timeout": "nan"},
        {"grpc-timeout": "5"},
        {"grpc-timeout": "0S"},
        {"grpc-timeout": "123456789S"},
    ],
)
def test_bad_client_timeouts_are_400(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        client_timeout(headers)
