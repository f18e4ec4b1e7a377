"""Fuzzing: Hypothesis over routes, JSON bodies and the codec; a brief atheris run of the parser.

Whatever comes in, the answer is a value or the error envelope with a 4xx, never a 500.
The HTTP properties run against a real gateway and fake ModelServer served on loopback by
a background event loop, so Hypothesis' synchronous tests can drive them with ``requests``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from conftest import build_app
from fake_backend import FakeModelServer
from harness import MODEL, base_settings, install_models
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))
from fuzz_request import check_one  # noqa: E402

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=24,
)
KEYS = st.sampled_from(["instances", "inputs", "signature_name", "examples", "context", "x", "b64"])
BODIES = st.dictionaries(KEYS, JSON, max_size=3)
SEGMENTS = st.sampled_from(
    [
        "v1",
        "models",
        MODEL,
        "my-dep",
        "model-serving",
        "versions",
        "labels",
        "1",
        "stable",
        "metadata",
        ":predict",
        ":classify",
        ":regress",
        ":PREDICT",
        "%2F",
        "%00",
        "..",
        "",
        "x" * 300,
        "%zz",
        "9" * 25,
    ]
)
PATHS = st.lists(SEGMENTS, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts).replace("/:", ":"))


def assert_envelope_4xx(resp: requests.Response) -> None:
    if resp.status_code == 200:
        return
    assert 400 <= resp.status_code < 500 or resp.status_code == 501, (resp.status_code, resp.text)
    body = resp.json()
    assert next(iter(body)) == "error" and isinstance(body["error"], str), resp.text


@pytest.fixture(scope="module")
def live_gateway() -> Iterator[str]:
    """A gateway and fake on a background loop; yields the base URL."""
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()

    async def start() -> None:
        fake = FakeModelServer()
        await fake.start()
        install_models(fake)
        runner = web.AppRunner(build_app(base_settings(fake)))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        started.update(fake=fake, runner=runner, url=f"http://127.0.0.1:{runner.addresses[0][1]}")

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    yield started["url"]

    async def stop() -> None:
        await started["runner"].cleanup()
        await started["fake"].stop(None)

    asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]), path=PATHS)
def test_routes(live_gateway: str, method: str, path: str) -> None:
    resp = requests.request(method, live_gateway + path, data=b"{}", timeout=10)
    if method != "HEAD":
        assert_envelope_4xx(resp)
    else:
        assert resp.status_code < 500


@FUZZ
@given(body=BODIES, verb=st.sampled_from(["predict", "classify", "regress"]))
def test_json_bodies(live_gateway: str, body: dict[str, Any], verb: str) -> None:
    data = json.dumps(body, allow_nan=True).encode()
    resp = requests.post(f"{live_gateway}/v1/models/{MODEL}:{verb}", data=data, timeout=10)
    assert_envelope_4xx(resp)


@FUZZ
@given(data=st.binary(max_size=64) | BODIES.map(lambda b: json.dumps(b, allow_nan=True).encode()))
def test_raw_bodies(live_gateway: str, data: bytes) -> None:
    resp = requests.post(f"{live_gateway}/model-serving/my-dep:predict", data=data, timeout=10)
    assert_envelope_4xx(resp)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=128) | BODIES.map(lambda b: json.dumps(b, allow_nan=True).encode()))
def test_codec_only_raises_client_errors(data: bytes) -> None:
    check_one(data)


def test_atheris_parser_target(tmp_path: Path) -> None:
    """A brief coverage-guided run over the committed corpus (new inputs go to tmp_path)."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / "fuzz_request.py"),
            str(tmp_path),
            str(ROOT / "fuzz" / "corpus"),
            "-atheris_runs=2000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 2000" in result.stderr
