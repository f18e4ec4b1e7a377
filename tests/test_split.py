"""Traffic splits without sockets: the chooser (weights, rendezvous stickiness, how few users a weight
change moves), binding a split deployment, and the validation of ``split`` at load (exit 2 naming the key).

The end-to-end tests through real sockets are in tests/e2e_standin/test_standin_split.py.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.backend.readiness import ModelCheck, models_to_check
from gateway.cli import main
from gateway.config import ConfigError, Settings, SplitArm
from gateway.routing import split
from gateway.routing.binding import bind
from gateway.routing.routes import Target

USERS = [f"user-{i}" for i in range(20_000)]


def arms(*weights: float) -> tuple[SplitArm, ...]:
    return tuple(SplitArm(weight=w, version=i + 1) for i, w in enumerate(weights))


def shares(chosen: Sequence[SplitArm], of: Sequence[SplitArm]) -> list[float]:
    counts = Counter(arm.name for arm in chosen)
    return [counts[arm.name] / len(chosen) for arm in of]


# --- the chooser -----------------------------------------------------------------------------


def test_arm_names_are_stable_and_distinct() -> None:
    named = [
        SplitArm(weight=1, version=1),
        SplitArm(weight=1, label="canary"),
        SplitArm(weight=1, model="mnist_v3", backend="gpu"),
        SplitArm(weight=1, model="mnist_v3", backend="gpu", version=3),
        SplitArm(weight=1, backend="gpu", label="stable"),
    ]
    assert [arm.name for arm in named] == ["v1", "label:canary", "mnist_v3@gpu", "mnist_v3@gpu/v3", "@gpu/label:stable"]


@pytest.mark.parametrize("weights", [(90, 10), (1, 1, 2), (0.5, 99.5), (3,)])
def test_random_choice_follows_the_weights(weights: tuple[float, ...]) -> None:
    split_arms = arms(*weights)
    rng = random.Random(12)  # seeded: the bound below is about the chooser, not about luck
    chosen = [split.choose(split_arms, None, rng) for _ in range(40_000)]
    expected = [w / sum(weights) for w in weights]
    assert shares(chosen, split_arms) == pytest.approx(expected, abs=0.01)


def test_weighted_draws_cover_exactly_each_slice() -> None:
    split_arms = arms(1, 3)
    assert split.weighted(split_arms, 0.0).version == 1
    assert split.weighted(split_arms, 0.2499).version == 1
    assert split.weighted(split_arms, 0.25).version == 2
    assert split.weighted(split_arms, 0.9999999).version == 2


@pytest.mark.parametrize("weights", [(90, 10), (1, 1, 2), (5, 95)])
def test_sticky_values_spread_by_weight(weights: tuple[float, ...]) -> None:
    split_arms = arms(*weights)
    chosen = [split.choose(split_arms, user, random.Random()) for user in USERS]
    expected = [w / sum(weights) for w in weights]
    assert shares(chosen, split_arms) == pytest.approx(expected, abs=0.015)


def test_a_sticky_value_always_gets_the_same_arm_whatever_the_random_source() -> None:
    split_arms = arms(50, 50)
    for user in USERS[:200]:
        first = split.choose(split_arms, user, random.Random(0))
        assert {split.choose(split_arms, user, random.Random(seed)).name for seed in range(5)} == {first.name}


def test_reordering_arms_moves_nobody() -> None:
    split_arms = arms(60, 30, 10)
    reordered = tuple(reversed(split_arms))
    assert all(split.rendezvous(split_arms, u) == split.rendezvous(reordered, u) for u in USERS[:5000])


@pytest.mark.parametrize(
    ("before", "after"), [((90, 10), (80, 20)), ((50, 50), (50, 75)), ((70, 20, 10), (70, 20, 40))]
)
def test_raising_one_weight_moves_users_only_to_that_arm_and_only_its_gain(
    before: tuple[float, ...], after: tuple[float, ...]
) -> None:
    old, new = arms(*before), arms(*after)
    grown = next(i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a > b)
    moved = 0
    for user in USERS:
        was, now = split.rendezvous(old, user).version, split.rendezvous(new, user).version
        if was != now:
            assert now == grown + 1, (user, was, now)  # nobody moves between the other arms
            moved += 1
    gain = after[grown] / sum(after) - before[grown] / sum(before)
    assert moved / len(USERS) == pytest.approx(gain, abs=0.015)


def test_lowering_one_weight_moves_users_only_away_from_that_arm() -> None:
    old, new = arms(50, 30, 20), arms(50, 30, 5)
    for user in USERS:
        was, now = split.rendezvous(old, user).version, split.rendezvous(new, user).version
        assert was == now or was == 3, (user, was, now)


def test_adding_an_arm_moves_users_only_to_it() -> None:
    old = arms(60, 40)
    new = (*old, SplitArm(weight=25, label="canary"))
    moved = [u for u in USERS if split.rendezvous(old, u) != split.rendezvous(new, u)]
    assert all(split.rendezvous(new, u).label == "canary" for u in moved)
    assert len(moved) / len(USERS) == pytest.approx(25 / 125, abs=0.015)


# --- binding a split deployment --------------------------------------------------------------

SETTINGS = Settings.from_mapping(
    {
        "backends": {"default": {"targets": ["a:1"]}, "gpu": {"targets": ["b:2"], "timeout_seconds": 7}},
        "deployments": {
            "digits": {
                "model": "mnist",
                "split": [{"version": 1, "weight": 1}, {"model": "mnist_v3", "backend": "gpu", "weight": 1}],
                "sticky_header": "X-User-ID",
            },
            "plain": {"model": "mnist"},
        },
    }
)


def test_a_split_deployment_binds_one_arm_and_names_it() -> None:
    rng = random.Random(3)
    seen = {}
    for _ in range(100):
        binding = bind(SETTINGS, Target("deployment", "predict", "digits"), rng=rng)
        seen[binding.arm] = (binding.backend, binding.model, binding.version, binding.label, binding.timeout_seconds)
        assert binding.name == "digits" and binding.settings is SETTINGS.deployments["digits"]
    assert seen == {"v1": ("default", "mnist", 1, None, 30.0), "mnist_v3@gpu": ("gpu", "mnist_v3", None, None, 7.0)}


def test_the_sticky_header_decides_the_arm() -> None:
    arms_of_users = {
        user: bind(SETTINGS, Target("deployment", "predict", "digits"), headers={"X-User-ID": user}).arm
        for user in USERS[:50]
    }
    for user, arm in arms_of_users.items():
        again = bind(
            SETTINGS, Target("deployment", "predict", "digits"), headers={"X-User-ID": user}, rng=random.Random()
        )
        assert again.arm == arm
    assert set(arms_of_users.values()) == {"v1", "mnist_v3@gpu"}


@pytest.mark.parametrize(("version", "label"), [(2, None), (None, "stable")])
def test_a_version_or_label_in_the_url_overrides_the_split(version: int | None, label: str | None) -> None:
    binding = bind(SETTINGS, Target("deployment", "predict", "digits", version=version, label=label))
    assert (binding.backend, binding.model, binding.version, binding.label, binding.arm) == (
        "default",
        "mnist",
        version,
        label,
        "",
    )


def test_no_split_means_no_arm() -> None:
    assert bind(SETTINGS, Target("deployment", "predict", "plain")).arm == ""
    assert bind(SETTINGS, Target("v1", "predict", "mnist")).arm == ""


# --- validation at load ----------------------------------------------------------------------

ARM = {"version": 1, "weight": 1}
INVALID_SPLITS: list[tuple[dict[str, Any], str]] = [
    ({"split": [{"version": 1, "weight": 0}]}, "deployments.d.split[0].weight"),
    ({"split": [ARM, {"label": "canary", "weight": -5}]}, "deployments.d.split[1].weight"),
    ({"split": [{"version": 1}]}, "deployments.d.split[0].weight"),
    ({"split": [{"version": 1, "weight": True}]}, "deployments.d.split[0].weight"),
    ({"split": [ARM], "version": 1}, "deployments.d.split"),
    ({"split": [ARM], "label": "stable"}, "deployments.d.split"),
    ({"split": [ARM, {"model": "m2", "backend": "nope", "weight": 1}]}, "deployments.d.split[1].backend"),
    ({"split": []}, "deployments.d.split"),
    ({"split": [ARM, ARM]}, "deployments.d.split[1]"),
    ({"split": [{"weight": 1}]}, "deployments.d.split[0]"),
    ({"split": [{"version": 1, "label": "x", "weight": 1}]}, "deployments.d.split[0]"),
    ({"split": [{"version": 1, "weight": 1, "percent": 5}]}, "deployments.d.split[0].percent"),
    ({"split": {"version": 1, "weight": 1}}, "deployments.d.split"),
    ({"sticky_header": "X-User-ID"}, "deployments.d.sticky_header"),
    ({"split": [ARM], "sticky_header": "X User"}, "deployments.d.sticky_header"),
    ({"split": [ARM], "shadow": [{"version": 1, "percent": 100}]}, "deployments.d.shadow[0]"),
    ({"split": [ARM], "shadow_tolerance": {"rtol": -1e-5}}, "deployments.d.shadow_tolerance.rtol"),
]


@pytest.mark.parametrize(("deployment", "path"), INVALID_SPLITS, ids=[p for _, p in INVALID_SPLITS])
def test_an_invalid_split_is_reported_at_its_key(deployment: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"deployments": {"d": {"model": "m", **deployment}}}, env={})
    assert caught.value.path == path, caught.value


def test_an_invalid_split_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("deployments:\n  d:\n    model: m\n    split:\n      - {version: 1, weight: 0}\n")
    assert main(["--config", str(config), "--check-config"]) == 2
    assert "deployments.d.split[0].weight" in capsys.readouterr().err


def test_a_valid_split_round_trips_through_the_dump() -> None:
    data = {
        "backends": {"default": {}, "gpu": {}},
        "deployments": {
            "d": {
                "model": "m",
                "split": [
                    {"version": 1, "weight": 90},
                    {"label": "canary", "weight": 10},
                    {"model": "x", "backend": "gpu", "weight": 5},
                ],
                "sticky_header": "X-User-ID",
            }
        },
    }
    settings = Settings.from_mapping(data, env={})
    deployment = settings.deployments["d"]
    assert deployment.split is not None
    assert [(arm.name, arm.weight) for arm in deployment.split] == [
        ("v1", 90.0),
        ("label:canary", 10.0),
        ("x@gpu", 5.0),
    ]
    assert Settings.from_mapping(settings.to_mapping(), env={}) == settings


def test_readiness_probes_what_each_arm_serves() -> None:
    checks = {backend: models_to_check(SETTINGS, backend) for backend in ("default", "gpu")}
    assert checks == {
        "default": (ModelCheck("mnist", None), ModelCheck("mnist", 1)),
        "gpu": (ModelCheck("mnist_v3", None),),
    }
