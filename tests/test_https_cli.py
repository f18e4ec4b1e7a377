"""HTTPS through the real CLI process: server.tls makes `python -m gateway` serve TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
from certs import make_cert
from fake_backend import FakeModelServer
from gateway_process import GatewayProcess, gateway_config


async def test_cli_serves_https_from_server_tls(tmp_path: Path, fake_backend: FakeModelServer) -> None:
    cert, key = make_cert(tmp_path, "server")
    config = gateway_config(fake_backend.target, server={"tls": {"cert_file": str(cert), "key_file": str(key)}})
    async with GatewayProcess(config) as gateway:
        assert "serving https://" in gateway.stderr()
        trust = ssl.create_default_context(cafile=str(cert))
        url = f"https://localhost:{gateway.port}/v1/models/half_plus_two:predict"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=b'{"instances": [1.0, 3.0]}', ssl=trust) as resp:
                assert resp.status == 200
                assert await resp.json() == {"predictions": [2.5, 3.5]}
            plain = f"http://127.0.0.1:{gateway.port}/healthz"
            try:
                async with http.get(plain) as resp:
                    answered_plain = resp.status
            except aiohttp.ClientError:
                answered_plain = None
            assert answered_plain != 200, "plain HTTP must not be served on the TLS port"
