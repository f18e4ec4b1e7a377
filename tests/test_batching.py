"""Micro-batching through a real gateway in front of the fake ModelServer.

Batches are made to close by size, never by the clock: ``max_batch_size`` is the sum of the
rows sent and the window is long, so which requests merge is deterministic. The one test of
the window itself asserts only what a timer guarantees (nothing is sent before the window
ends) and that the window, not a full batch, released the requests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from fake_backend import Abort, FakeModelServer, signature
from harness import base_settings, build_app, install_models, merge
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

WIDE = signature(inputs={"x": ("DT_FLOAT", [-1, -1])}, outputs={"y": ("DT_FLOAT", [-1, -1])})
FIXED_OUT = signature(inputs={"x": ("DT_FLOAT", [-1, 2])}, outputs={"y": ("DT_FLOAT", [2, 2])})
LONG_WINDOW = 30.0


@asynccontextmanager
async def gateway(
    max_batch_size: int, window: float = LONG_WINDOW
) -> AsyncIterator[tuple[TestClient[Any, Any], FakeModelServer, CollectorRegistry]]:
    async with FakeModelServer() as fake:
        install_models(fake)
        fake.add_model("wide", versions={1: {"serving_default": WIDE}})
        fake.add_model("fixed", versions={1: {"serving_default": FIXED_OUT}})
        batching = {"enabled": True, "max_batch_size": max_batch_size, "window_seconds": window}
        deployments = {name: {"model": name, "batching": batching} for name in ("wide", "fixed")}
        registry = CollectorRegistry()
        app = build_app(merge(base_settings(fake), {"deployments": deployments}), registry)
        async with TestClient(TestServer(app)) as client:
            yield client, fake, registry


async def predict(client: TestClient[Any, Any], deployment: str, rows: Any, columnar: bool) -> tuple[int, Any]:
    body = {"inputs" if columnar else "instances": rows}
    async with client.post(f"/model-serving/{deployment}:predict", data=json.dumps(body)) as response:
        return response.status, json.loads(await response.read())


def expected(rows: Sequence[Sequence[float]]) -> np.ndarray[Any, Any]:
    x = np.asarray(rows, dtype=np.float32)
    return x * np.float32(0.5) + np.float32(2)


def answer(doc: Any, columnar: bool) -> np.ndarray[Any, Any]:
    return np.asarray(doc["outputs" if columnar else "predictions"], dtype=np.float32)


async def warm(client: TestClient[Any, Any], fake: FakeModelServer, deployment: str) -> None:
    """Fetch the signature once, so the requests under test arrive together."""
    async with client.get(f"/model-serving/{deployment}/metadata") as response:
        assert response.status == 200
    fake.clear_calls()


floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


@st.composite
def requests(draw: st.DrawFn) -> list[tuple[list[list[float]], bool]]:
    width = draw(st.integers(1, 4))
    row = st.lists(floats, min_size=width, max_size=width)
    return draw(st.lists(st.tuples(st.lists(row, min_size=1, max_size=4), st.booleans()), min_size=2, max_size=8))


@settings(max_examples=25, deadline=None)
@given(batch=requests())
def test_each_client_gets_exactly_its_own_rows(batch: list[tuple[list[list[float]], bool]]) -> None:
    async def scenario() -> None:
        async with gateway(sum(len(rows) for rows, _ in batch)) as (client, fake, registry):
            await warm(client, fake, "wide")
            answers = await asyncio.gather(*(predict(client, "wide", rows, col) for rows, col in batch))
            for (rows, columnar), (status, doc) in zip(batch, answers, strict=True):
                assert status == 200, doc
                assert np.array_equal(answer(doc, columnar), expected(rows))
            assert len(fake.calls("Predict")) == 1
            assert registry.get_sample_value("tfs_gateway_batch_size_count", {"model": "wide"}) == 1

    asyncio.run(scenario())


async def test_a_request_that_fails_validation_never_joins_a_batch() -> None:
    good = [[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]]
    async with gateway(3) as (client, fake, _):
        await warm(client, fake, "wide")
        bad, *answers = await asyncio.gather(
            predict(client, "wide", [["a", 1.0]], False), *(predict(client, "wide", rows, False) for rows in good)
        )
        assert bad[0] == 400
        for rows, (status, doc) in zip(good, answers, strict=True):
            assert status == 200 and np.array_equal(answer(doc, False), expected(rows))
        (call,) = fake.calls("Predict")
        assert call.request.inputs["x"].tensor_shape.dim[0].size == 3


async def test_a_failed_merged_call_falls_back_to_one_call_per_request() -> None:
    batch = [[[1.0]], [[2.0]], [[3.0], [4.0]]]
    async with gateway(4) as (client, fake, _):
        await warm(client, fake, "wide")
        fake.enqueue("Predict", Abort(grpc.StatusCode.INVALID_ARGUMENT, "merged batch refused"))
        answers = await asyncio.gather(*(predict(client, "wide", rows, True) for rows in batch))
        for rows, (status, doc) in zip(batch, answers, strict=True):
            assert status == 200 and np.array_equal(answer(doc, True), expected(rows))
        sizes = [c.request.inputs["x"].tensor_shape.dim[0].size for c in fake.calls("Predict")]
        assert sizes[0] == 4 and sorted(sizes[1:]) == [1, 1, 2]


async def test_models_whose_outputs_are_not_batch_major_are_never_batched() -> None:
    batch = [[[1.0, 2.0]], [[3.0, 4.0]]]
    async with gateway(2) as (client, fake, _):
        await warm(client, fake, "fixed")
        answers = await asyncio.gather(*(predict(client, "fixed", rows, False) for rows in batch))
        assert all(status == 200 for status, _ in answers)
        assert len(fake.calls("Predict")) == 2


async def test_only_identical_non_batch_shapes_merge() -> None:
    """Two shapes, each filling its own batch exactly (closed by size, never by the clock): two
    merged calls of three rows each, one per shape, and every client gets its own rows back."""
    narrow = [[[1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]]
    wide = [[[7.0, 8.0, 9.0]], [[10.0, 11.0, 12.0], [13.0, 14.0, 15.0]]]
    batch = [narrow[0], wide[0], narrow[1], wide[1]]  # interleaved on purpose
    async with gateway(3) as (client, fake, registry):
        await warm(client, fake, "wide")
        answers = await asyncio.gather(*(predict(client, "wide", rows, False) for rows in batch))
        for rows, (status, doc) in zip(batch, answers, strict=True):
            assert status == 200 and np.array_equal(answer(doc, False), expected(rows)), doc
        shapes = sorted(tuple(d.size for d in c.request.inputs["x"].tensor_shape.dim) for c in fake.calls("Predict"))
        assert shapes == [(3, 2), (3, 3)]
        assert registry.get_sample_value("tfs_gateway_batch_size_count", {"model": "wide"}) == 2
        assert registry.get_sample_value("tfs_gateway_batch_size_sum", {"model": "wide"}) == 4  # members


WINDOW_SECONDS = 1.0  # long enough that two requests sent together always meet inside it
# Timers never fire early, but asyncio may run a callback up to one clock tick before its time.
TIMER_TOLERANCE_SECONDS = 0.01
# A batch that the window failed to close would wait for max_batch_size rows that never come: the
# test's cap on the wait is far beyond any scheduling delay.
NEVER_SECONDS = 30.0


class Arrivals:
    """A Predict reply that notes when each call reached the backend, then lets the registry answer."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, request: Any, context: Any) -> None:
        self.times.append(asyncio.get_running_loop().time())


async def test_the_window_releases_a_batch_that_never_fills() -> None:
    """``window_seconds`` is how long the first request waits for others: requests that arrive
    within it share one call (the backend sees their summed rows), a request alone goes by itself
    once its window ends, and neither is sent before the window is over. Nothing here races the
    clock: the lower bound holds because timers never fire early, and the upper bound is the
    difference between "the window closed the batch" and "nothing ever closes it"."""
    async with gateway(100, window=WINDOW_SECONDS) as (client, fake, registry):
        await warm(client, fake, "wide")
        arrivals = Arrivals()
        fake.set_reply("Predict", arrivals)
        loop = asyncio.get_running_loop()

        sent = loop.time()
        status, doc = await asyncio.wait_for(predict(client, "wide", [[1.0, 2.0]], False), NEVER_SECONDS)
        assert status == 200 and np.array_equal(answer(doc, False), expected([[1.0, 2.0]])), doc
        (alone,) = fake.calls("Predict")
        assert alone.request.inputs["x"].tensor_shape.dim[0].size == 1
        assert arrivals.times[0] - sent >= WINDOW_SECONDS - TIMER_TOLERANCE_SECONDS, "held for its window"

        fake.clear_calls()
        pair = [[[3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]
        sent = loop.time()
        answers = await asyncio.wait_for(
            asyncio.gather(*(predict(client, "wide", rows, False) for rows in pair)), NEVER_SECONDS
        )
        for rows, (status, doc) in zip(pair, answers, strict=True):
            assert status == 200 and np.array_equal(answer(doc, False), expected(rows)), doc
        (merged,) = fake.calls("Predict")
        assert merged.request.inputs["x"].tensor_shape.dim[0].size == 3, "one call with the summed rows"
        assert arrivals.times[1] - sent >= WINDOW_SECONDS - TIMER_TOLERANCE_SECONDS
        assert registry.get_sample_value("tfs_gateway_batch_size_count", {"model": "wide"}) == 1
