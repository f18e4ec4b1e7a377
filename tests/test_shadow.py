"""Hostile shadows, through real sockets: a gateway in front of the programmable fake ModelServer,
whose version 2 of half_plus_two (the shadow) can hang until the test releases it, or fail.

"No latency" is proved without a clock: the client's answer arrives while the fake still holds
the shadow's call open, which it does until the test says otherwise. Counts are read once
``Shadows.wait`` (an event) says every copy has ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from fake_backend import Abort, FakeModelServer, make_tensor, to_ndarray
from gateway_process import GatewayProcess
from harness import MODEL, GatewayClient, MakeGatewayClient, base_settings
from prometheus_client import CollectorRegistry

from gateway.cli import main
from gateway.config import ConfigError, Settings
from gateway.ops.accesslog import ACCESS_LOGGER
from gateway.web.keys import SERVICES

SHADOW = 2  # the version the shadow arm calls; the deployment is pinned to version 1
ARM = "v2"
URL = "/model-serving/cand:predict"
BODY = {"instances": [1.0, 2.0]}
HANG_GUARD_SECONDS = 60.0  # only a hang reaches this: a bound on the test, never a measurement
RESULTS = ("agree", "disagree", "error", "dropped")


class Shadowed:
    """The fake's Predict for the shadow's version: held open until ``release``, or failing."""

    def __init__(self, fail: Abort | None = None) -> None:
        self.fail = fail
        self.release = asyncio.Event()
        self.arrived = 0
        self.cancelled = 0
        self._changed = asyncio.Condition()

    async def __call__(self, request: Any, context: Any) -> Any:
        if request.model_spec.version.value != SHADOW:
            return None  # the registry's answer: the primary is served normally
        await self._note("arrived")
        if self.fail is not None:
            return self.fail
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            await asyncio.shield(self._note("cancelled"))
            raise
        return None

    async def _note(self, what: str) -> None:
        async with self._changed:
            setattr(self, what, getattr(self, what) + 1)
            self._changed.notify_all()

    async def until(self, what: str, count: int) -> None:
        async with asyncio.timeout(HANG_GUARD_SECONDS), self._changed:
            await self._changed.wait_for(lambda: getattr(self, what) >= count)


def deployment(**shadow_settings: Any) -> dict[str, Any]:
    shadow = [{"version": SHADOW, "percent": 100}]
    return {"deployments": {"cand": {"model": MODEL, "version": 1, "shadow": shadow, **shadow_settings}}}


@pytest.fixture
async def shadowed(fake_backend: FakeModelServer) -> AsyncIterator[Shadowed]:
    handler = Shadowed()
    fake_backend.set_reply("Predict", handler)
    yield handler
    handler.release.set()  # let held calls end before the fake stops


async def gateway(make: MakeGatewayClient, **shadow_settings: Any) -> tuple[GatewayClient, CollectorRegistry]:
    client = await make(deployment(**shadow_settings))
    return client, client.server.app[SERVICES].current.metrics.registry


async def predict(client: GatewayClient) -> list[float]:
    async with asyncio.timeout(HANG_GUARD_SECONDS), client.post(URL, json=BODY) as response:
        body = await response.json()
        assert response.status == 200, body
        assert response.headers["X-Model-Version"] == "1"
        predictions: list[float] = body["predictions"]
        return predictions


async def settled(client: GatewayClient) -> None:
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        await client.server.app[SERVICES].current.shadows.wait()


def counts(registry: CollectorRegistry) -> dict[str, float | None]:
    name = "tfs_gateway_shadow_requests_total"
    return {r: registry.get_sample_value(name, {"deployment": "cand", "arm": ARM, "result": r}) for r in RESULTS}


def expect(agree: int = 0, disagree: int = 0, error: int = 0, dropped: int = 0) -> dict[str, float | None]:
    return {"agree": agree, "disagree": disagree, "error": error, "dropped": dropped}


def in_flight(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("tfs_gateway_shadow_requests_in_flight")


def shadow_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]
    return [line for line in lines if line.get("event") == "shadow"]


# --- hung and failing shadows --------------------------------------------------------------------


async def test_a_hung_shadow_adds_no_waiting_and_copies_beyond_the_cap_are_dropped(
    make_gateway_client: MakeGatewayClient, shadowed: Shadowed
) -> None:
    client, registry = await gateway(make_gateway_client, shadow_max_in_flight=2, shadow_timeout_seconds=3600)
    for _ in range(2):
        assert await predict(client) == [2.5, 3.0]
    await shadowed.until("arrived", 2)
    # Both copies are still held open by the fake, and the next answers come all the same.
    for _ in range(5):
        assert await predict(client) == [2.5, 3.0]
    assert not shadowed.release.is_set() and shadowed.cancelled == 0
    assert counts(registry) == expect(dropped=5)
    assert in_flight(registry) == 2
    shadowed.release.set()
    await settled(client)
    assert counts(registry) == expect(agree=2, dropped=5)  # the fake's v2 echoes like v1 does
    assert in_flight(registry) == 0


async def test_a_failing_shadow_costs_the_primary_nothing_and_trips_nothing(
    make_gateway_client: MakeGatewayClient,
    fake_backend: FakeModelServer,
    shadowed: Shadowed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    shadowed.fail = Abort(grpc.StatusCode.UNAVAILABLE, "shadow model is down")
    client, registry = await gateway(make_gateway_client)
    for _ in range(20):  # four times the breaker's failure_threshold
        assert await predict(client) == [2.5, 3.0]
    await settled(client)
    assert counts(registry) == expect(error=20)
    backend = client.server.app[SERVICES].current.backends["default"]
    assert backend.breaker.state == "closed"
    # One attempt per copy: a shadow never retries, so it spends none of the primary's retry budget.
    versions = [call.request.model_spec.version.value for call in fake_backend.calls("Predict")]
    assert (versions.count(1), versions.count(SHADOW)) == (20, 20)
    lines = shadow_lines(caplog)
    assert len(lines) == 20
    assert {(line["result"], line["reason"], line["arm"]) for line in lines} == {("error", "shadow model is down", ARM)}


async def test_the_shadow_deadline_ends_a_hung_shadow_as_an_error(
    make_gateway_client: MakeGatewayClient, shadowed: Shadowed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client, registry = await gateway(make_gateway_client, shadow_timeout_seconds=0.2)
    assert await predict(client) == [2.5, 3.0]
    await settled(client)  # never released: only the deadline can end the copy
    assert counts(registry) == expect(error=1)
    await shadowed.until("cancelled", 1)  # the backend saw the call given up
    ((line),) = shadow_lines(caplog)
    assert "Deadline Exceeded" in line["reason"], line


async def test_a_failed_primary_cancels_its_copies_uncounted(
    make_gateway_client: MakeGatewayClient, fake_backend: FakeModelServer, shadowed: Shadowed
) -> None:
    client, registry = await gateway(make_gateway_client, shadow_timeout_seconds=3600)
    primary_fails = Abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input for v1")

    async def predict_handler(request: Any, context: Any) -> Any:
        return primary_fails if request.model_spec.version.value == 1 else await shadowed(request, context)

    fake_backend.set_reply("Predict", predict_handler)
    async with client.post(URL, json=BODY) as response:
        assert response.status == 400, await response.text()
    await settled(client)
    assert counts(registry) == expect()
    assert in_flight(registry) == 0


# --- drain ---------------------------------------------------------------------------------------


async def test_sigterm_drain_does_not_wait_for_a_hung_shadow(fake_backend: FakeModelServer, shadowed: Shadowed) -> None:
    # The copy's deadline is an hour and the fake never answers it: only cancelling lets the
    # process exit within GatewayProcess's bound on waiting.
    config: Mapping[str, Any] = {**base_settings(fake_backend), **deployment(shadow_timeout_seconds=3600)}
    async with GatewayProcess(dict(config)) as gw, aiohttp.ClientSession() as session:
        async with session.post(gw.url + URL, json=BODY) as response:
            assert response.status == 200, await response.text()
        await shadowed.until("arrived", 1)
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0
    await shadowed.until("cancelled", 1)


# --- config ----------------------------------------------------------------------------------------

V2 = {"version": 2, "percent": 10}
INVALID_SHADOWS: list[tuple[dict[str, Any], str]] = [
    ({"version": 1, "shadow": [{"version": 1, "percent": 10}]}, "deployments.d.shadow[0]"),  # the pin itself
    ({"shadow": [{"model": "m", "percent": 10}]}, "deployments.d.shadow[0]"),  # the latest of m, as served
    ({"split": [{"label": "a", "weight": 1}], "shadow": [{"label": "a", "percent": 5}]}, "deployments.d.shadow[0]"),
    (  # a split arm, spelt with the backend it inherits
        {"split": [{"version": 2, "weight": 1}], "shadow": [{"version": 2, "backend": "default", "percent": 5}]},
        "deployments.d.shadow[0]",
    ),
    ({"shadow": [V2, {**V2, "percent": 50}]}, "deployments.d.shadow[1]"),
    ({"shadow": [{"version": 2}]}, "deployments.d.shadow[0].percent"),
    ({"shadow": [{"version": 2, "percent": 0}]}, "deployments.d.shadow[0].percent"),
    ({"shadow": [{"version": 2, "percent": 100.5}]}, "deployments.d.shadow[0].percent"),
    ({"shadow": [{"version": 2, "percent": "all"}]}, "deployments.d.shadow[0].percent"),
    ({"shadow": [{"version": 2, "label": "x", "percent": 1}]}, "deployments.d.shadow[0]"),
    ({"shadow": [{"percent": 1}]}, "deployments.d.shadow[0]"),
    ({"shadow": [{**V2, "weight": 1}]}, "deployments.d.shadow[0].weight"),
    ({"shadow": [{"model": "m2", "backend": "nope", "percent": 1}]}, "deployments.d.shadow[0].backend"),
    ({"shadow": []}, "deployments.d.shadow"),
    ({"shadow": V2}, "deployments.d.shadow"),
    ({"shadow": [V2], "shadow_tolerance": {"rtol": -1}}, "deployments.d.shadow_tolerance.rtol"),
    ({"shadow": [V2], "shadow_tolerance": {"atol": "tight"}}, "deployments.d.shadow_tolerance.atol"),
    ({"shadow": [V2], "shadow_tolerance": {"ulps": 4}}, "deployments.d.shadow_tolerance.ulps"),
    ({"shadow": [V2], "shadow_max_in_flight": 0}, "deployments.d.shadow_max_in_flight"),
    ({"shadow": [V2], "shadow_timeout_seconds": 0}, "deployments.d.shadow_timeout_seconds"),
]


@pytest.mark.parametrize(
    ("settings", "path"), INVALID_SHADOWS, ids=[f"{p}-{i}" for i, (_, p) in enumerate(INVALID_SHADOWS)]
)
def test_an_invalid_shadow_is_refused_at_its_key(settings: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"deployments": {"d": {"model": "m", **settings}}}, env={})
    assert caught.value.path == path


def test_an_invalid_shadow_file_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("deployments:\n  d:\n    model: m\n    version: 1\n    shadow: [{version: 1, percent: 100}]\n")
    assert main(["--config", str(config), "--check-config"]) == 2
    assert capsys.readouterr().err.startswith("tfs-gateway: config error at deployments.d.shadow[0]: ")


def test_a_valid_shadow_config_keeps_every_key() -> None:
    settings = Settings.from_mapping(
        {"deployments": {"d": {"model": "m", "version": 1, "shadow": [V2], "shadow_tolerance": {"rtol": 0.5}}}}, env={}
    )
    d = settings.deployments["d"]
    assert d.shadow is not None and [arm.name for arm in d.shadow] == ["v2"]
    assert (d.shadow_tolerance.rtol, d.shadow_tolerance.atol) == (0.5, 1.0e-6)  # a partial block keeps the rest
    assert (d.shadow_max_in_flight, d.shadow_timeout_seconds) == (16, 5.0)


# --- large replies -------------------------------------------------------------------------------


async def test_large_replies_are_compared_off_the_loop_to_the_element(
    make_gateway_client: MakeGatewayClient, fake_backend: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    size, wrong = 50_000, 31_337  # 200 KB replies: past offload's threshold, so compared on a decode thread

    def shadow_differs_once(request: Any, context: Any) -> Any:
        reply = fake_backend.registry.answer("Predict", request)
        if request.model_spec.version.value == SHADOW:
            values = to_ndarray(reply.outputs["y"])
            values[wrong] += 1.0
            reply.outputs["y"].CopyFrom(make_tensor(values, "DT_FLOAT", content=True))
        return reply

    fake_backend.set_reply("Predict", shadow_differs_once)
    client, registry = await gateway(make_gateway_client)
    body = {"instances": [float(i % 97) for i in range(size)]}
    async with client.post(URL, json=body) as response:
        assert response.status == 200, await response.text()
        answer = 0.5 * (wrong % 97) + 2  # the fake's half_plus_two
        assert (await response.json())["predictions"][wrong] == answer
    await settled(client)
    assert counts(registry) == expect(disagree=1)
    ((line),) = shadow_lines(caplog)
    assert (line["output"], line["index"], line["primary"], line["shadow"]) == ("y", [wrong], answer, answer + 1), line
    assert line["max_abs_diff"] == 1.0
