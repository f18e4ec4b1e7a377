"""Security through real sockets: auth bypass attempts, URL tricks, header limits, leaks, CORS, TLS."""

from __future__ import annotations

import base64
import gzip
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from certs import make_cert
from conftest import MakeGatewayClient, build_app
from fake_backend import FakeModelServer
from harness import MODEL, base_settings, install_models, raw_url

KEY = "k3y-For-my-dep"
PASSWORD = "s3cret pass:word"
AUTH = {
    "deployments": {
        "my-dep": {"auth": {"type": "api_key", "api_keys": [{"env": "GW_TEST_KEY"}]}},
        "pinned-dep": {"auth": {"type": "basic", "basic_users": {"alice": {"password_env": "GW_TEST_PASSWORD"}}}},
    }
}


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_KEY", KEY)
    monkeypatch.setenv("GW_TEST_PASSWORD", PASSWORD)


def basic(user: str, password: str, scheme: str = "Basic") -> dict[str, str]:
    return {"Authorization": f"{scheme} " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def status_of(client: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    async with client.session.get(raw_url(client, path), headers=headers or {}) as resp:
        return resp.status, resp.headers, await resp.json(content_type=None)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 401),
        ({"X-API-Key": KEY}, 200),
        ({"x-api-key": KEY}, 200),  # header names are case-insensitive
        ({"Authorization": f"Bearer {KEY}"}, 200),
        ({"Authorization": f"bEARER {KEY}"}, 200),  # so are schemes (RFC 7235)
        ({"Authorization": f"Bearer {KEY.upper()}"}, 401),  # credentials are not
        ({"Authorization": f"Bearer {KEY} "}, 200),
        ({"Authorization": f"Token {KEY}"}, 401),
        ({"Authorization": KEY}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": f"Bearer {KEY[:-1]}"}, 401),
        ({"X-API-Key": ""}, 401),
        (basic("alice", PASSWORD), 403),  # valid elsewhere, not here
        (basic(KEY, ""), 401),
        ({"Authorization": "Basic !!!notbase64"}, 401),
    ],
)
async def test_api_key_route(make_gateway_client: MakeGatewayClient, headers: dict[str, str], expected: int) -> None:
    client = await make_gateway_client(AUTH)
    status, resp_headers, body = await status_of(client, "/model-serving/my-dep", headers)
    assert status == expected, body
    if expected == 401:
        assert resp_headers["WWW-Authenticate"] == 'Bearer realm="tfserving-gateway"'
        assert body["reason"] == "unauthenticated"


@pytest.mark.parametrize(
    "path",
    [
        "/model-serving/%6dy-dep",
        "/model-serving/%6D%79-dep",
        "/MODEL-SERVING/my-dep",
        "/Model-Serving/my-dep/metadata",
        "/model-serving/my-dep/versions/1",
        "/model-serving/my-dep/labels/stable",
        "/model-serving/my-dep?x=1",
        "/model-serving/my-dep#frag",
        "//model-serving/my-dep",
        "/model-serving//my-dep",
        "/model-serving/my-dep/",
        "/model-serving/./my-dep",
        "/model-serving/x/../my-dep",
        "/model-serving/my-dep%2F..%2Fpinned-dep",
        "/model-serving/my-dep%00",
    ],
)
async def test_encoded_paths_do_not_bypass_auth(make_gateway_client: MakeGatewayClient, path: str) -> None:
    client = await make_gateway_client(AUTH)
    status, _, body = await status_of(client, path)
    assert status != 200 and 400 <= status < 500, (status, body)
    assert next(iter(body)) == "error"


async def test_basic_auth(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client(AUTH)
    assert (await status_of(client, "/model-serving/pinned-dep", basic("alice", PASSWORD)))[0] == 200
    assert (await status_of(client, "/model-serving/pinned-dep", basic("alice", PASSWORD, "basic")))[0] == 200
    status, headers, _ = await status_of(client, "/model-serving/pinned-dep", basic("alice", PASSWORD + "x"))
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="tfserving-gateway"'
    assert (await status_of(client, "/model-serving/pinned-dep", basic("ALICE", PASSWORD)))[0] == 401
    assert (await status_of(client, "/model-serving/pinned-dep", basic("bob", PASSWORD)))[0] == 401
    assert (await status_of(client, "/model-serving/pinned-dep", {"X-API-Key": KEY}))[0] == 403


async def test_health_and_metrics_open_unless_protected(make_gateway_client: MakeGatewayClient) -> None:
    protected = {"auth": {"type": "api_key", "api_keys": [{"env": "GW_TEST_KEY"}]}}
    client = await make_gateway_client(protected)
    assert (await status_of(client, "/healthz"))[0] == 200
    assert (await status_of(client, f"/v1/models/{MODEL}"))[0] == 401
    async with client.get("/metrics") as resp:
        assert resp.status == 200
    locked = await make_gateway_client({**protected, "auth": {**protected["auth"], "protect_health": True}})
    assert (await status_of(locked, "/healthz"))[0] == 401
    assert (await status_of(locked, "/healthz", {"X-API-Key": KEY}))[0] == 200
    assert (await status_of(locked, "/nowhere"))[0] == 401  # unknown paths get the global policy


async def test_model_name_tricks(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client()
    for path in ("/v1/models/..%2F..%2Fetc%2Fpasswd", "/v1/models/%2e%2e", "/v1/models/a%00b", "/v1/models/%ff%fe"):
        status, _, body = await status_of(client, path)
        assert 400 <= status < 500 and next(iter(body)) == "error", (path, status, body)


async def test_oversized_headers_are_refused_cleanly(make_gateway_client: MakeGatewayClient) -> None:
    # aiohttp's parser refuses these before any middleware runs: 400 text/plain, never a traceback.
    client = await make_gateway_client({"server": {"max_header_bytes": 2048}})
    for headers in ({"X-Big": "a" * 4096}, {f"X-H{i}": "v" for i in range(300)}):
        async with client.get("/healthz", headers=headers) as resp:
            text = await resp.text()
            assert resp.status in (400, 431), text
            assert "Traceback" not in text and 'File "' not in text


async def test_no_traces_or_addresses_leak(
    make_gateway_client: MakeGatewayClient, fake_backend: FakeModelServer
) -> None:
    client = await make_gateway_client()
    requests = [
        ("POST", f"/v1/models/{MODEL}:predict", b'{"instances": [1.0]}'),
        ("POST", f"/v1/models/{MODEL}:predict", b"{not json"),
        ("GET", f"/v1/models/{MODEL}", None),
        ("GET", "/model-serving/my-dep/metadata", None),
        ("POST", "/model-serving/my-dep:classify", b'{"examples": [{"x": 1}]}'),
        ("GET", "/readyz", None),
    ]
    await fake_backend.stop()
    for method, path, body in requests:
        async with client.request(method, path, data=body, headers={"X-Request-Timeout": "0.5"}) as resp:
            text = await resp.text()
            assert resp.status < 500 or resp.status in (502, 503, 504), (path, resp.status, text)
            assert "Traceback" not in text and "127.0.0.1" not in text and str(fake_backend.port) not in text, text


CORS = {"cors": {"enabled": True, "allow_origins": ["https://app.example"]}}


async def test_cors_preflight_and_headers(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client(CORS)
    ask = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with client.options(
        f"/v1/models/{MODEL}:predict", headers={**ask, "Access-Control-Request-Headers": "content-type, x-api-key"}
    ) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert resp.headers["Vary"] == "Origin"
    for bad in (
        {"Origin": "https://evil.example"},
        {"Access-Control-Request-Method": "DELETE"},
        {"Access-Control-Request-Headers": "X-Evil"},
    ):
        async with client.options(f"/v1/models/{MODEL}:predict", headers={**ask, **bad}) as resp:
            assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
    async with client.get("/v1/models/missing_model", headers={"Origin": "https://app.example"}) as resp:
        assert resp.status == 404 and resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
        # Browser code may read the request id and, for canaries, which version answered.
        assert resp.headers["Access-Control-Expose-Headers"] == "X-Request-ID, X-Model-Version"
    async with client.get(f"/v1/models/{MODEL}", headers={"Origin": "https://evil.example"}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_off_by_default(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client()
    ask = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with client.options(f"/v1/models/{MODEL}:predict", headers=ask) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_limits(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client(
        {"server": {"max_request_bytes": 4096, "max_json_depth": 8, "max_tensor_elements": 100}}
    )
    url = f"/v1/models/{MODEL}:predict"
    cases = [
        (b'{"instances": [' + b"1.0," * 2000 + b"1.0]}", {}, 413),
        (gzip.compress(b'{"instances": [' + b"1.0," * 200_000 + b"1.0]}"), {"Content-Encoding": "gzip"}, 413),
        (b'{"instances": ' + b"[" * 20 + b"1.0" + b"]" * 20 + b"}", {}, 400),
        (b'{"instances": [' + b"1.0," * 200 + b"1.0]}", {}, 400),
    ]
    for body, headers, expected in cases:
        async with client.post(url, data=body, headers=headers) as resp:
            envelope = await resp.json(content_type=None)
            assert resp.status == expected and next(iter(envelope)) == "error", (expected, envelope)


async def test_gzip_responses(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client()
    big = b'{"instances": [' + b"1.0," * 2000 + b"1.0]}"
    url = f"/v1/models/{MODEL}:predict"
    async with client.post(url, data=big, headers={"Accept-Encoding": "gzip"}, auto_decompress=False) as resp:
        assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
        assert b"predictions" in gzip.decompress(await resp.read())
    async with client.post(url, data=big, headers={"Accept-Encoding": "gzip;q=0"}, auto_decompress=False) as resp:
        assert "Content-Encoding" not in resp.headers
    async with client.post(url, data=b'{"instances": [1.0]}', headers={"Accept-Encoding": "gzip"}) as resp:
        assert "Content-Encoding" not in resp.headers  # too small to be worth it


# --------------------------------------------------------------------------- TLS


async def test_serves_https(tmp_path: Path, fake_backend: FakeModelServer) -> None:
    from gateway.config import Settings
    from gateway.config.tls import server_ssl_context

    cert, key = make_cert(tmp_path, "server")
    settings = {**base_settings(fake_backend), "server": {"tls": {"cert_file": str(cert), "key_file": str(key)}}}
    context = server_ssl_context(Settings.from_mapping(settings).server.tls)
    runner = web.AppRunner(build_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://localhost:{port}/v1/models/{MODEL}", ssl=trust) as resp:
                assert resp.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    await resp.read()
    finally:
        await runner.cleanup()


@pytest.fixture
async def tls_backend(tmp_path: Path) -> AsyncIterator[tuple[FakeModelServer, int, Path, Path, Path]]:
    """The fake's handlers on a second, mTLS-only gRPC server."""
    server_cert, server_key = make_cert(tmp_path, "backend")
    client_cert, client_key = make_cert(tmp_path, "client")
    fake = FakeModelServer()
    install_models(fake)
    creds = grpc.ssl_server_credentials(
        [(server_key.read_bytes(), server_cert.read_bytes())],
        root_certificates=client_cert.read_bytes(),
        require_client_auth=True,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(fake._handlers())
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    yield fake, port, server_cert, client_cert, client_key
    await server.stop(None)


async def test_mtls_to_backend(aiohttp_client: Any, tls_backend: tuple[FakeModelServer, int, Path, Path, Path]) -> None:
    _fake, port, ca, cert, key = tls_backend
    tls = {
        "enabled": True,
        "ca_file": str(ca),
        "cert_file": str(cert),
        "key_file": str(key),
        "server_name": "localhost",
    }
    settings = {"backends": {"default": {"targets": [f"127.0.0.1:{port}"], "tls": tls}}}
    client = await aiohttp_client(build_app(settings))
    async with client.post(f"/v1/models/{MODEL}:predict", json={"instances": [1.0]}) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["predictions"] == [2.5]
    no_cert = {
        "backends": {"default": {"targets": [f"127.0.0.1:{port}"], "tls": {"enabled": True, "ca_file": str(ca)}}}
    }
    refused = await aiohttp_client(build_app(no_cert))
    async with refused.get(f"/v1/models/{MODEL}", headers={"X-Request-Timeout": "1"}) as resp:
        text = await resp.text()
        assert resp.status in (503, 504), text
        assert str(port) not in text
