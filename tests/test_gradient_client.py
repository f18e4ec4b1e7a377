"""A client written like Gradient's mnist sample, run unchanged against the gateway.

The sample (docs/spec/gradient-deployment-rest-api.md, end) flattens an image into a
vector and posts ``{"inputs": [vector]}`` with ``requests`` to
``/model-serving/{deployment-id}:predict``. Here ``requests`` runs in a worker thread
against a real gateway server, which talks to the fake ModelServer over gRPC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import requests
from aiohttp import web
from aiohttp.test_utils import TestServer
from fake_backend import FakeModelServer, signature
from harness import build_app, merge

DEPLOYMENT = "mnist-sample"
IMAGE_SIDE = 28
MNIST = signature(
    inputs={"images": ("DT_FLOAT", [-1, IMAGE_SIDE * IMAGE_SIDE])},
    outputs={"scores": ("DT_FLOAT", [-1, IMAGE_SIDE * IMAGE_SIDE])},
)
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def make_vector(image: np.ndarray[Any, Any]) -> list[float]:
    """Exactly the sample's flattening."""
    vector: list[float] = []
    for item in image.tolist():
        vector.extend(item)
    return vector


def make_prediction_request(image: np.ndarray[Any, Any], prediction_url: str) -> requests.Response:
    """The sample's request, returning the response instead of printing it."""
    vector = make_vector(image)
    json = {"inputs": [vector]}
    return requests.post(prediction_url, json=json, timeout=30)


def sample_image() -> np.ndarray[Any, Any]:
    pixels = np.arange(IMAGE_SIDE * IMAGE_SIDE, dtype=np.float32) % 256 / np.float32(255)
    return pixels.reshape(IMAGE_SIDE, IMAGE_SIDE)


async def gradient_server(fake: FakeModelServer, settings: dict[str, Any], aiohttp_server: ServerFactory) -> TestServer:
    fake.add_model("mnist", versions={1: {"serving_default": MNIST}})
    deployment = {"deployments": {DEPLOYMENT: {"model": "mnist"}}}
    return await aiohttp_server(build_app(merge(settings, deployment)))


async def test_gradient_sample_client_gets_the_numbers(
    fake_backend: FakeModelServer, gateway_settings: dict[str, Any], aiohttp_server: ServerFactory
) -> None:
    server = await gradient_server(fake_backend, gateway_settings, aiohttp_server)
    image = sample_image()
    url = str(server.make_url(f"/model-serving/{DEPLOYMENT}:predict"))

    response = await asyncio.to_thread(make_prediction_request, image, url)

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    outputs = response.json()["outputs"]
    expected = image.reshape(1, -1) * np.float32(0.5) + np.float32(2)
    assert np.asarray(outputs, dtype=np.float32).shape == (1, IMAGE_SIDE * IMAGE_SIDE)
    np.testing.assert_array_equal(np.asarray(outputs, dtype=np.float32), expected)
    sent = fake_backend.last("Predict").request
    assert sent.model_spec.name == "mnist"  # type: ignore[attr-defined]
    assert list(sent.inputs) == ["images"]  # type: ignore[attr-defined]


async def test_gradient_sample_client_sees_the_error_envelope(
    fake_backend: FakeModelServer, gateway_settings: dict[str, Any], aiohttp_server: ServerFactory
) -> None:
    server = await gradient_server(fake_backend, gateway_settings, aiohttp_server)
    url = str(server.make_url("/model-serving/no-such-deployment:predict"))

    response = await asyncio.to_thread(make_prediction_request, sample_image(), url)

    assert response.status_code == 404
    body = response.json()
    assert next(iter(body)) == "error"
    assert "no-such-deployment" in body["error"]
