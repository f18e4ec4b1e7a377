"""Traffic splits end to end: real HTTP into the gateway, real gRPC into the ModelServer stand-in,
where version 1 of half_plus_two computes 0.5x + 2 and version 2 (label ``canary``) 0.5x + 3, so
every answer shows which version computed it.

Determinism: the random split is drawn from ``Services.rng``, which these tests seed (the test
hook: ``app[SERVICES].current.rng.seed(n)``). A seeded draw sequence gives the same arms whatever
order the concurrent requests bind in, so the ±3 point bound below cannot flake. Sticky arms are
a hash of fixed user names, deterministic by construction. The SIGHUP test runs the gateway as a
subprocess and asserts only on what the answers prove, never on timing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import pytest
from gateway_process import GatewayProcess
from prometheus_client import CollectorRegistry

from devserver.testing import DevServer
from gateway.config import Settings
from gateway.ops.accesslog import ACCESS_LOGGER
from gateway.web.app import create_app, reload_services
from gateway.web.keys import SERVICES

from .conftest import HP2_ROUTES, AiohttpClient, Client

X = 4.0  # half_plus_two(4.0) is 4.0 in version 1 and 5.0 in version 2
VERSION_OF_ANSWER = {4.0: 1, 5.0: 2}
PREDICT_BODY = {"instances": [X]}
STABLE, CANARY = {"version": 1}, {"label": "canary"}


def split_deployment(weights: tuple[float, float], **extra: Any) -> dict[str, Any]:
    """half_plus_two split between version 1 and the ``canary`` label (version 2)."""
    arms = [{**STABLE, "weight": weights[0]}, {**CANARY, "weight": weights[1]}]
    return {"model": "half_plus_two", "split": arms, **extra}


def settings_for(address: str, deployments: Mapping[str, Any]) -> Settings:
    return Settings.from_mapping({"backends": {"default": {"targets": [address]}}, "deployments": dict(deployments)})


MakeSplitGateway = Callable[[Mapping[str, Any]], Awaitable[tuple[Client, CollectorRegistry]]]


@pytest.fixture
def make_split_gateway(aiohttp_client: AiohttpClient, standin: DevServer) -> MakeSplitGateway:
    async def make(deployments: Mapping[str, Any]) -> tuple[Client, CollectorRegistry]:
        registry = CollectorRegistry()
        client = await aiohttp_client(create_app(settings_for(standin.address, deployments), registry=registry))
        client.server.app[SERVICES].current.rng.seed(2024)
        return client, registry

    return make


async def answered(client: Client, path: str, headers: Mapping[str, str] | None = None) -> int:
    """Predict on path; the version that computed the answer, which X-Model-Version must name."""
    async with client.post(path, json=PREDICT_BODY, headers=headers) as response:
        body = await response.json()
        assert response.status == 200, body
        (value,) = body["predictions"]
        version = VERSION_OF_ANSWER[value]
        assert response.headers["X-Model-Version"] == str(version), (path, value, dict(response.headers))
        return version


async def bounded(count: int, parallel: int, one: Callable[[int], Awaitable[int]]) -> list[int]:
    """``one(i)`` for i < count, at most ``parallel`` at a time (bounded load)."""
    gate = asyncio.Semaphore(parallel)

    async def run(i: int) -> int:
        async with gate:
            return await one(i)

    return list(await asyncio.gather(*(run(i) for i in range(count))))


def arm_requests(registry: CollectorRegistry, arm: str, deployment: str = "canary") -> float:
    labels = {"route": "deployment_predict", "model": deployment, "verb": "predict", "code": "200"}
    total = 0.0
    for version in ("1", "2", "label:canary", "latest"):
        value = registry.get_sample_value("tfs_gateway_http_requests_total", {**labels, "version": version, "arm": arm})
        total += value or 0.0
    return total


# --- weighted split --------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [(80.0, 20.0), (50.0, 50.0)])
async def test_the_observed_split_is_within_3_points_of_the_weights(
    make_split_gateway: MakeSplitGateway, weights: tuple[float, float]
) -> None:
    client, registry = await make_split_gateway({"canary": split_deployment(weights)})
    versions = await bounded(2000, 8, lambda _: answered(client, "/model-serving/canary:predict"))
    counts = Counter(versions)
    share_v1 = counts[1] / len(versions)
    assert abs(share_v1 - weights[0] / sum(weights)) <= 0.03, counts
    # Every request metric carries the arm, and the counts per arm are the answers per version.
    assert arm_requests(registry, "v1") == counts[1]
    assert arm_requests(registry, "label:canary") == counts[2]


async def test_a_version_or_label_in_the_url_overrides_the_split(make_split_gateway: MakeSplitGateway) -> None:
    client, registry = await make_split_gateway({"canary": split_deployment((99.0, 1.0))})
    assert {await answered(client, "/model-serving/canary/versions/2:predict") for _ in range(50)} == {2}
    assert {await answered(client, "/model-serving/canary/labels/canary:predict") for _ in range(50)} == {2}
    assert arm_requests(registry, "") == 100
    assert arm_requests(registry, "v1") == arm_requests(registry, "label:canary") == 0


async def test_the_access_line_names_the_arm_that_served(
    make_split_gateway: MakeSplitGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client, _ = await make_split_gateway({"canary": split_deployment((50.0, 50.0), sticky_header="X-User-ID")})
    served = {user: await answered(client, "/model-serving/canary:predict", {"X-User-ID": user}) for user in USERS}
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]
    assert [line["arm"] for line in lines] == [{1: "v1", 2: "label:canary"}[served[user]] for user in USERS]


async def test_an_arm_on_another_model_answers_for_the_deployment(make_split_gateway: MakeSplitGateway) -> None:
    arms = [{"model": "multi_io", "weight": 1}]
    client, registry = await make_split_gateway({"mixed": {"model": "half_plus_two", "split": arms}})
    body = {"inputs": {"a": [[1, 2, 3]], "b": [4], "s": ["hi"]}}
    async with client.post("/model-serving/mixed:predict", json=body) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["outputs"]["sum"] == [10.0]
        assert response.headers["X-Model-Version"] == "1"
    assert arm_requests(registry, "multi_io", deployment="mixed") == 1


# --- sticky routing --------------------------------------------------------------------------

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")


async def test_a_sticky_value_never_changes_arm_across_200_requests(make_split_gateway: MakeSplitGateway) -> None:
    client, _ = await make_split_gateway({"canary": split_deployment((50.0, 50.0), sticky_header="X-User-ID")})
    arms_of_users = {}
    for user in USERS:
        headers = {"X-User-ID": user}
        versions = await bounded(200, 8, lambda _, h=headers: answered(client, "/model-serving/canary:predict", h))
        assert len(set(versions)) == 1, (user, Counter(versions))
        arms_of_users[user] = versions[0]
    assert set(arms_of_users.values()) == {1, 2}, arms_of_users  # both arms are exercised


async def test_a_request_without_the_sticky_header_is_split_by_weight(make_split_gateway: MakeSplitGateway) -> None:
    client, _ = await make_split_gateway({"canary": split_deployment((50.0, 50.0), sticky_header="X-User-ID")})
    versions = Counter(await bounded(400, 8, lambda _: answered(client, "/model-serving/canary:predict")))
    assert abs(versions[1] / 400 - 0.5) <= 0.1, versions


async def test_a_weight_change_moves_only_the_users_the_grown_arm_gains(make_split_gateway: MakeSplitGateway) -> None:
    before, after = (80.0, 20.0), (60.0, 40.0)
    client, _ = await make_split_gateway({"canary": split_deployment(before, sticky_header="X-User-ID")})
    users = [f"user-{i}" for i in range(600)]

    async def arms() -> dict[str, int]:
        async def one(i: int) -> int:
            return await answered(client, "/model-serving/canary:predict", {"X-User-ID": users[i]})

        return dict(zip(users, await bounded(len(users), 8, one), strict=True))

    old = await arms()
    app = client.server.app
    reload_services(
        app,
        settings_for(
            app[SERVICES].current.settings.backend("default").targets[0],
            {"canary": split_deployment(after, sticky_header="X-User-ID")},
        ),
    )
    new = await arms()
    moved = [user for user in users if old[user] != new[user]]
    assert all((old[user], new[user]) == (1, 2) for user in moved), [(u, old[u], new[u]) for u in moved]
    # Rendezvous hashing moves the canary's gain in share (0.4 - 0.2), not a reshuffle (which would
    # move about half of everyone); the user names are fixed, so this share is fixed too.
    assert abs(len(moved) / len(users) - 0.2) <= 0.05, len(moved)


# --- X-Model-Version -------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", sorted(HP2_ROUTES))
async def test_x_model_version_names_the_version_that_computed_the_answer(standin_gateway: Client, prefix: str) -> None:
    assert await answered(standin_gateway, f"{prefix}:predict") == HP2_ROUTES[prefix]


@pytest.mark.parametrize(
    ("path", "body", "version"),
    [
        (
            "/v1/models/half_plus_two/labels/stable:regress",
            {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]},
            "1",
        ),
        ("/v1/models/half_plus_two:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}]}, "2"),
        ("/v1/models/half_plus_two/labels/stable/metadata", None, "1"),
        ("/model-serving/hp2-canary/metadata", None, "2"),
    ],
)
async def test_x_model_version_on_classify_regress_and_metadata(
    standin_gateway: Client, path: str, body: Any, version: str
) -> None:
    method = "GET" if body is None else "POST"
    async with standin_gateway.request(method, path, json=body) as response:
        assert response.status == 200, await response.text()
        assert response.headers["X-Model-Version"] == version


async def test_no_x_model_version_on_an_error(standin_gateway: Client) -> None:
    async with standin_gateway.post("/v1/models/half_plus_two/versions/9:predict", json=PREDICT_BODY) as response:
        assert response.status == 404
        assert "X-Model-Version" not in response.headers


async def test_batched_members_each_report_the_version_that_answered(make_split_gateway: MakeSplitGateway) -> None:
    batching = {"enabled": True, "max_batch_size": 8, "window_seconds": 0.01}
    client, registry = await make_split_gateway({"canary": split_deployment((50.0, 50.0), batching=batching)})
    versions = Counter(await bounded(200, 16, lambda _: answered(client, "/model-serving/canary:predict")))
    assert set(versions) == {1, 2}, versions
    merged = registry.get_sample_value("tfs_gateway_batch_size_count", {"model": "canary"})
    assert merged, "no batch was merged, so the batched path was not exercised"


# --- reload under load -----------------------------------------------------------------------


@pytest.mark.slow
async def test_a_sighup_reload_changes_the_split_under_load_with_nothing_lost(standin: DevServer) -> None:
    def config(arm: dict[str, Any]) -> dict[str, Any]:
        return {
            "server": {"log_level": "info"},
            "backends": {"default": {"targets": [standin.address]}},
            "deployments": {"canary": {"model": "half_plus_two", "split": [{**arm, "weight": 1}]}},
        }

    async with GatewayProcess(config(STABLE)) as gw, aiohttp.ClientSession() as session:
        reloaded = asyncio.Event()
        statuses: Counter[int] = Counter()

        async def one() -> int:
            async with session.post(gw.url + "/model-serving/canary:predict", json=PREDICT_BODY) as response:
                body = await response.json()
                statuses[response.status] += 1
                assert response.status == 200, body
                version = VERSION_OF_ANSWER[body["predictions"][0]]
                assert response.headers["X-Model-Version"] == str(version)
                return version

        async def client() -> list[tuple[bool, int]]:
            """Sequential requests, each noted with whether it started after the reload was logged,
            until 50 did (at most 2000: bounded)."""
            seen: list[tuple[bool, int]] = []
            while sum(after for after, _ in seen) < 50 and len(seen) < 2000:
                after = reloaded.is_set()
                seen.append((after, await one()))
            return seen

        async def reload_once_busy() -> None:
            while sum(statuses.values()) < 100:
                await asyncio.sleep(0.01)
            gw.write_config(config(CANARY))
            gw.send(signal.SIGHUP)
            await gw.wait_log("config reloaded")
            reloaded.set()

        results = await asyncio.gather(*(client() for _ in range(4)), reload_once_busy())
        streams: list[list[tuple[bool, int]]] = results[:4]  # type: ignore[assignment]
        assert set(statuses) == {200}, statuses  # nothing lost: every request answered, none failed
        for seen in streams:
            versions = [version for _, version in seen]
            # Each client's requests run one after another: once one saw the new split, every later one did.
            first_new = versions.index(2)
            assert set(versions[:first_new]) == {1} and set(versions[first_new:]) == {2}, versions
            assert {version for after, version in seen if after} == {2}
            assert len(seen) < 2000  # the reload landed while the load ran
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0
