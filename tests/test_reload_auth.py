"""A SIGHUP reload that changes auth applies to the next request in the running process."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import pytest
from fake_backend import FakeModelServer
from gateway_process import GatewayProcess, gateway_config

pytestmark = pytest.mark.slow


async def test_reload_turns_on_api_keys(tmp_path: Path, fake_backend: FakeModelServer) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("s3cret\n")
    config = gateway_config(fake_backend.target)
    url_path = "/model-serving/my-dep:predict"
    async with GatewayProcess(config) as gw, aiohttp.ClientSession() as session:

        async def predict(headers: dict[str, str]) -> int:
            async with session.post(gw.url + url_path, json={"instances": [1.0]}, headers=headers) as resp:
                await resp.read()
                return resp.status

        assert await predict({}) == 200
        gw.write_config({**config, "auth": {"type": "api_key", "api_keys": [{"file": str(key_file)}]}})
        gw.send(signal.SIGHUP)
        await gw.wait_log("config reloaded")
        assert await predict({}) == 401
        assert await predict({"X-API-Key": "wrong"}) == 401
        assert await predict({"X-API-Key": "s3cret"}) == 200
        assert await predict({"Authorization": "Bearer s3cret"}) == 200
        gw.send(signal.SIGTERM)
        assert await gw.wait_exit() == 0
