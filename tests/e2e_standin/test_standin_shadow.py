"""Shadow traffic end to end: real HTTP (and gRPC) into the gateway, real gRPC into the ModelServer
stand-in, where version 1 of half_plus_two computes 0.5x + 2 and version 2 0.5x + 3. A shadow on
the ``stable`` label computes what version 1 computes (the same function under another name), and
a shadow on version 2 a different one, so agreement and disagreement are known in advance.

Counts are read once every copy has ended: ``Shadows.wait`` is an event, not a sleep. Random
draws (a split's arm, a shadow's percent) come from ``Services.rng``, which the tests seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
import tensorflow as tf
from gateway_process import GatewayProcess
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub
from tritonclient.grpc import service_pb2, service_pb2_grpc

from devserver.testing import DevServer
from gateway.config import ServerSettings, Settings
from gateway.grpcfront.server import GrpcServer
from gateway.ops.accesslog import ACCESS_LOGGER
from gateway.web.app import create_app
from gateway.web.keys import HEALTH, SERVICES

from .conftest import CLASSIFY, REGRESS, AiohttpClient, Client, examples_body
from .test_standin_split import VERSION_OF_ANSWER, bounded

HP2 = "half_plus_two"
SAME = {"label": "stable", "percent": 100}  # version 1 under its label: the same function
OTHER = {"version": 2, "percent": 100}  # 0.5x + 3: one more than version 1, everywhere
RESULTS = ("agree", "disagree", "error", "dropped")

Gateway = tuple[Client, CollectorRegistry]
MakeGateway = Callable[[Mapping[str, Any]], Awaitable[Gateway]]


@pytest.fixture
def make_gateway(aiohttp_client: AiohttpClient, standin: DevServer) -> MakeGateway:
    async def make(deployments: Mapping[str, Any]) -> Gateway:
        registry = CollectorRegistry()
        settings = {"backends": {"default": {"targets": [standin.address]}}, "deployments": dict(deployments)}
        client = await aiohttp_client(create_app(Settings.from_mapping(settings), registry=registry))
        client.server.app[SERVICES].current.rng.seed(12)
        return client, registry

    return make


async def settled(client: Client) -> None:
    """Every shadow copy started so far has been compared and counted."""
    await client.server.app[SERVICES].current.shadows.wait()


def counts(registry: CollectorRegistry, deployment: str, arm: str) -> dict[str, float]:
    labels = {"deployment": deployment, "arm": arm}
    return {
        result: registry.get_sample_value("tfs_gateway_shadow_requests_total", {**labels, "result": result})
        for result in RESULTS
    }  # type: ignore[misc]


def expect(agree: int = 0, disagree: int = 0, error: int = 0, dropped: int = 0) -> dict[str, float]:
    return {"agree": agree, "disagree": disagree, "error": error, "dropped": dropped}


def diff_bucket(registry: CollectorRegistry, deployment: str, arm: str, le: str) -> float | None:
    labels = {"deployment": deployment, "arm": arm, "le": le}
    return registry.get_sample_value("tfs_gateway_shadow_max_abs_diff_bucket", labels)


def shadow_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]
    return [line for line in lines if line.get("event") == "shadow"]


async def predict(client: Client, path: str, xs: list[float]) -> tuple[list[float], str, str]:
    """(predictions, X-Model-Version, X-Request-ID) of a predict that must succeed."""
    async with client.post(path, json={"instances": xs}) as response:
        body = await response.json()
        assert response.status == 200, body
        return body["predictions"], response.headers["X-Model-Version"], response.headers["X-Request-ID"]


# --- agreement -------------------------------------------------------------------------------


async def test_a_shadow_computing_the_same_function_agrees_every_time(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client, registry = await make_gateway({"same": {"model": HP2, "version": 1, "shadow": [SAME]}})
    answers = await bounded(40, 8, lambda i: predict(client, "/model-serving/same:predict", [float(i), -1.5]))
    assert all(version == "1" and values[1] == 1.25 for values, version, _ in answers)
    await settled(client)
    assert counts(registry, "same", "label:stable") == expect(agree=40)
    # Equal to the last bit: every compared reply lands in the lowest bucket.
    assert diff_bucket(registry, "same", "label:stable", "1e-09") == 40
    assert shadow_lines(caplog) == []


async def test_a_shadow_computing_another_function_disagrees_and_the_log_names_the_first_difference(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client, registry = await make_gateway({"cand": {"model": HP2, "version": 1, "shadow": [OTHER]}})
    answers = await bounded(30, 8, lambda _: predict(client, "/model-serving/cand:predict", [4.0, 0.0]))
    # The client's answers are version 1's, untouched by the shadow.
    assert {(tuple(values), version) for values, version, _ in answers} == {((4.0, 2.0), "1")}
    await settled(client)
    assert counts(registry, "cand", "v2") == expect(disagree=30)
    assert diff_bucket(registry, "cand", "v2", "0.1") == 0
    assert diff_bucket(registry, "cand", "v2", "1.0") == 30
    lines = shadow_lines(caplog)
    assert sorted(line["request_id"] for line in lines) == sorted(request_id for _, _, request_id in answers)
    for line in lines:
        assert line["deployment"] == "cand" and line["arm"] == "v2" and line["result"] == "disagree", line
        assert (line["rpc"], line["reason"], line["output"], line["index"]) == ("Predict", "value", "y", [0]), line
        assert (line["primary"], line["shadow"], line["max_abs_diff"]) == (4.0, 5.0, 1.0), line


async def test_with_a_split_each_arm_is_compared_with_the_shadow(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    split = [{"version": 1, "weight": 1}, {"label": "canary", "weight": 1}]
    client, registry = await make_gateway({"ab": {"model": HP2, "split": split, "shadow": [SAME]}})
    answers = await bounded(60, 8, lambda _: predict(client, "/model-serving/ab:predict", [4.0]))
    served = Counter(VERSION_OF_ANSWER[values[0]] for values, _, _ in answers)
    assert served[1] and served[2], served
    await settled(client)
    # The shadow is version 1: it agrees with the v1 arm and disagrees with the canary, exactly.
    assert counts(registry, "ab", "label:stable") == expect(agree=served[1], disagree=served[2])
    assert {line["primary_arm"] for line in shadow_lines(caplog)} == {"label:canary"}


async def test_a_percent_copies_that_share_of_requests(make_gateway: MakeGateway) -> None:
    client, registry = await make_gateway({"some": {"model": HP2, "version": 1, "shadow": [{**OTHER, "percent": 25}]}})
    await bounded(400, 8, lambda _: predict(client, "/model-serving/some:predict", [1.0]))
    await settled(client)
    seen = counts(registry, "some", "v2")
    assert seen["agree"] == seen["error"] == seen["dropped"] == 0, seen
    assert abs(seen["disagree"] / 400 - 0.25) <= 0.06, seen  # a seeded draw: fixed, not flaky


async def test_a_url_naming_the_shadows_own_version_is_not_copied(make_gateway: MakeGateway) -> None:
    client, registry = await make_gateway({"cand": {"model": HP2, "version": 1, "shadow": [OTHER]}})
    assert (await predict(client, "/model-serving/cand/versions/2:predict", [4.0]))[:2] == ([5.0], "2")
    await settled(client)
    assert counts(registry, "cand", "v2") == expect()


# --- every verb and front ----------------------------------------------------------------------


VERBS = [("classify", CLASSIFY, "scores"), ("regress", REGRESS, "values")]


@pytest.mark.parametrize(("verb", "signature", "output"), VERBS)
async def test_classify_and_regress_are_compared_too(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture, verb: str, signature: str, output: str
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    deployments = {
        "same": {"model": HP2, "version": 1, "shadow": [SAME]},
        "cand": {"model": HP2, "version": 1, "shadow": [OTHER]},
    }
    client, registry = await make_gateway(deployments)
    for name in deployments:
        async with client.post(f"/model-serving/{name}:{verb}", json=examples_body(signature, [1.0, 2.0])) as response:
            assert response.status == 200, await response.text()
    await settled(client)
    assert counts(registry, "same", "label:stable") == expect(agree=1)
    assert counts(registry, "cand", "v2") == expect(disagree=1)
    (line,) = shadow_lines(caplog)
    assert (line["rpc"], line["output"], line["index"], line["primary"], line["shadow"]) == (
        verb.capitalize(),
        output,
        [0],
        2.5,
        3.5,
    )


async def test_the_open_inference_protocol_front_is_shadowed(make_gateway: MakeGateway) -> None:
    client, registry = await make_gateway({"cand": {"model": HP2, "version": 1, "shadow": [OTHER]}})
    body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [4.0, 0.0]}]}
    async with client.post(f"/model-serving/cand/v2/models/{HP2}/infer", json=body) as response:
        answer = await response.json()
        assert response.status == 200, answer
    assert answer["outputs"][0]["data"] == [4.0, 2.0]
    await settled(client)
    assert counts(registry, "cand", "v2") == expect(disagree=1)


@contextlib.asynccontextmanager
async def grpc_channel(client: Client) -> AsyncIterator[grpc.aio.Channel]:
    """The gRPC port on the test app's services, and a channel to it."""
    app = client.server.app
    server = await GrpcServer.start(app[SERVICES], app[HEALTH], ServerSettings(host="127.0.0.1"), 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield channel
    finally:
        await server.close()


async def test_the_tf_serving_grpc_front_is_shadowed(make_gateway: MakeGateway) -> None:
    client, registry = await make_gateway({"cand": {"model": HP2, "version": 1, "shadow": [OTHER]}})
    request = predict_pb2.PredictRequest()
    request.model_spec.name = HP2
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([4.0], dtype=tf.float32))
    async with grpc_channel(client) as channel:
        reply = await PredictionServiceStub(channel).Predict(request, metadata=(("x-deployment-id", "cand"),))
        assert list(reply.outputs["y"].float_val) == [4.0]
        await settled(client)
    assert counts(registry, "cand", "v2") == expect(disagree=1)


async def test_the_oip_grpc_front_is_shadowed(make_gateway: MakeGateway) -> None:
    client, registry = await make_gateway({"cand": {"model": HP2, "version": 1, "shadow": [OTHER]}})
    request = service_pb2.ModelInferRequest(model_name=HP2)
    request.inputs.add(name="x", datatype="FP32", shape=[1])
    request.raw_input_contents.append(np.array([4.0], dtype="<f4").tobytes())
    async with grpc_channel(client) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        reply = await stub.ModelInfer(request, metadata=(("x-deployment-id", "cand"),))
        assert np.frombuffer(reply.raw_output_contents[0], dtype="<f4").tolist() == [4.0]
        await settled(client)
    assert counts(registry, "cand", "v2") == expect(disagree=1)


# --- reload under load ---------------------------------------------------------------------------


def scraped(text: str, deployment: str, arm: str) -> dict[str, float]:
    """The shadow counts on a metrics page."""
    found = dict.fromkeys(RESULTS, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "tfs_gateway_shadow_requests_total" and (labels["deployment"], labels["arm"]) == (
                deployment,
                arm,
            ):
                found[labels["result"]] = sample.value
    return found


@pytest.mark.slow
async def test_a_sighup_reload_adding_then_removing_a_shadow_under_load_loses_nothing(standin: DevServer) -> None:
    def config(shadow: bool) -> dict[str, Any]:
        deployment: dict[str, Any] = {"model": HP2, "version": 1}
        if shadow:
            deployment["shadow"] = [OTHER]
        return {
            "server": {"log_level": "info"},
            "backends": {"default": {"targets": [standin.address]}},
            "deployments": {"cand": deployment},
        }

    async with GatewayProcess(config(False)) as gw, aiohttp.ClientSession() as session:
        statuses: Counter[int] = Counter()
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                async with session.post(gw.url + "/model-serving/cand:predict", json={"instances": [4.0]}) as response:
                    body = await response.json()
                    statuses[response.status] += 1
                    assert response.status == 200, body
                    assert body["predictions"] == [4.0] and response.headers["X-Model-Version"] == "1"

        async def answered(more: int) -> None:
            goal = sum(statuses.values()) + more
            while sum(statuses.values()) < goal:
                await asyncio.sleep(0.01)

        async def reload(shadow: bool, times: int) -> None:
            gw.write_config(config(shadow))
            gw.send(signal.SIGHUP)
            await gw.wait_for(lambda: gw.stderr().count("config reloaded") >= times, "the reload")

        async def metrics() -> dict[str, float]:
            async with session.get(gw.url + "/metrics") as response:
                return scraped(await response.text(), "cand", "v2")

        async def drive() -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
            try:
                await answered(50)
                before = await metrics()
                await reload(True, 1)
                await answered(100)
                await reload(False, 2)
                await answered(100)
                during = await metrics()
                await answered(50)
                return before, during, await metrics()
            finally:
                stop.set()

        results = await asyncio.gather(*(client() for _ in range(4)), drive())
        before, during, after = results[-1]  # type: ignore[misc]
        assert set(statuses) == {200}, statuses  # nothing lost: every request answered, none failed
        assert before == dict.fromkeys(RESULTS, 0.0)
        # Copies in flight at the second reload finished on the old generation: none cut short.
        assert during["disagree"] >= 100 and during["error"] == during["dropped"] == during["agree"] == 0, during
        assert after == during  # the shadow is gone: no more copies
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0
