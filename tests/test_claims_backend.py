"""The README's backend claims, through real sockets: retries, deadlines, ``dns:///`` targets, TLS.

Each test sends real HTTP into an in-process gateway and lets it speak real gRPC to the
programmable fake (or to the fake's handlers behind a TLS port). Assertions are on what the
backend recorded (calls, the deadline each call carried), never on how long anything took.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from certs import make_cert
from conftest import AiohttpClient
from fake_backend import Abort, FakeModelServer
from google.protobuf.message import Message
from harness import MODEL, MakeGatewayClient, build_app, install_models

PREDICT = f"/v1/models/{MODEL}:predict"
BODY = {"instances": [1.0, 2.0, 5.0]}
ANSWER = {"predictions": [2.5, 3.0, 4.5]}
# Far above every deadline below: reaching it means the gateway never answered.
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=60)


async def post_predict(client: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with client.post(PREDICT, json=BODY, headers=headers or {}, timeout=CLIENT_TIMEOUT) as resp:
        return resp.status, await resp.json()


class DeadlineRecorder:
    """A fake reply that records the deadline each call carried, then answers with ``then``."""

    def __init__(self, then: Any = None) -> None:
        self.remaining: list[float] = []
        self.then = then

    def __call__(self, request: Message, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        remaining = context.time_remaining()
        self.remaining.append(float("inf") if remaining is None else remaining)
        return self.then


# --------------------------------------------------------------------------- retries


async def test_one_unavailable_is_retried_then_answered_200(
    fake_backend: FakeModelServer, make_gateway_client: MakeGatewayClient
) -> None:
    """README: "Retries only on UNAVAILABLE": the second attempt's answer is the client's answer."""
    client = await make_gateway_client()
    fake_backend.enqueue("Predict", Abort(grpc.StatusCode.UNAVAILABLE, "warming up"))
    status, body = await post_predict(client, {"X-Request-ID": "retry-me"})
    assert (status, body) == (200, ANSWER)
    calls = fake_backend.calls("Predict")
    assert len(calls) == 2, fake_backend.methods()
    assert calls[0].request == calls[1].request  # the same request, sent again
    assert [call.metadata.get("x-request-id") for call in calls] == ["retry-me", "retry-me"]


async def test_other_codes_are_not_retried(
    fake_backend: FakeModelServer, make_gateway_client: MakeGatewayClient
) -> None:
    """The counterpart: an answer such as INVALID_ARGUMENT is final, sent to the client after one call."""
    client = await make_gateway_client()
    fake_backend.enqueue("Predict", Abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input"))
    status, body = await post_predict(client)
    assert status == 400 and body["error"] == "bad input", body
    assert len(fake_backend.calls("Predict")) == 1


# Retries limited by nothing but the deadline: many attempts allowed, a breaker that never opens,
# a budget floor far above what one request can spend, and backoffs short next to the deadline.
UNBOUNDED_RETRIES = {
    "backends": {
        "default": {
            "retry": {
                "max_attempts": 1000,
                "initial_backoff_seconds": 0.05,
                "max_backoff_seconds": 0.2,
                "min_retries_per_second": 1000.0,
            },
            "circuit_breaker": {"failure_threshold": 100_000},
        }
    }
}
RETRY_DEADLINE_SECONDS = 1.5
WIRE_SLACK_SECONDS = 0.1


async def test_retries_stop_at_the_deadline(
    fake_backend: FakeModelServer, make_gateway_client: MakeGatewayClient
) -> None:
    """README: retries are "never past the deadline". A backend that is always UNAVAILABLE, with
    1000 attempts allowed (minutes of backoff), still gets a 503 (the last UNAVAILABLE, when the
    next backoff would end past the deadline) or a 504 (the deadline ran out first) well before
    the client gives up; and every attempt carried what was left of one deadline, not a fresh one.
    """
    client = await make_gateway_client(UNBOUNDED_RETRIES)
    recorder = DeadlineRecorder(then=Abort(grpc.StatusCode.UNAVAILABLE, "still down"))
    fake_backend.set_reply("Predict", recorder)
    status, body = await post_predict(client, {"X-Request-Timeout": str(RETRY_DEADLINE_SECONDS)})
    assert status in (503, 504), body
    assert body["reason"] in ("backend_unavailable", "backend_error", "deadline_exceeded"), body
    attempts = len(fake_backend.calls("Predict"))
    assert 2 <= attempts < 1000, f"{attempts} attempts: retried, but bounded by the deadline"
    remaining = recorder.remaining
    assert len(remaining) == attempts
    # gRPC rounds the timeout it puts on the wire up to its own granularity, hence the slack.
    assert all(0 < left <= RETRY_DEADLINE_SECONDS + WIRE_SLACK_SECONDS for left in remaining), remaining
    shrinking = all(later <= earlier + WIRE_SLACK_SECONDS for earlier, later in itertools.pairwise(remaining))
    assert shrinking and remaining[-1] < remaining[0], f"each attempt gets what is left of one deadline: {remaining}"


# --------------------------------------------------------------------------- targets


async def test_a_dns_target_serves_predicts(
    fake_backend: FakeModelServer, make_gateway_client: MakeGatewayClient
) -> None:
    """README: a backend may be "one dns:/// target such as a Kubernetes headless Service".

    ``localhost`` may resolve to ::1 too, where nothing listens; gRPC's round_robin over the
    resolved addresses must still reach the one that serves.
    """
    target = f"dns:///localhost:{fake_backend.port}"
    client = await make_gateway_client({"backends": {"default": {"targets": [target]}}})
    for _ in range(3):
        assert await post_predict(client) == (200, ANSWER)
    assert len(fake_backend.calls("Predict")) == 3
    assert fake_backend.calls("GetModelMetadata"), "the signature came through the dns target too"


# --------------------------------------------------------------------------- TLS


@pytest.fixture
async def tls_only_backend(tmp_path: Path) -> AsyncIterator[tuple[FakeModelServer, int, Path]]:
    """The fake's handlers on a TLS port that authenticates itself and asks nothing of clients."""
    cert, key = make_cert(tmp_path, "backend")
    fake = FakeModelServer()
    install_models(fake)
    creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())], require_client_auth=False)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(fake._handlers())
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    yield fake, port, cert
    await server.stop(None)


def tls_settings(port: int, tls: dict[str, Any]) -> dict[str, Any]:
    return {"backends": {"default": {"targets": [f"127.0.0.1:{port}"], "tls": tls}}}


async def test_backend_tls_with_server_authentication_only(
    aiohttp_client: AiohttpClient, tls_only_backend: tuple[FakeModelServer, int, Path], tmp_path: Path
) -> None:
    """README: ``backends.<name>.tls`` "speaks TLS or mTLS": TLS without a client certificate works,
    and the server certificate is really checked (another CA fails without leaking the address)."""
    fake, port, ca = tls_only_backend
    tls = {"enabled": True, "ca_file": str(ca), "server_name": "localhost"}
    client = await aiohttp_client(build_app(tls_settings(port, tls)))
    assert await post_predict(client) == (200, ANSWER)
    assert len(fake.calls("Predict")) == 1

    other_ca, _ = make_cert(tmp_path, "stranger")
    wrong = {"enabled": True, "ca_file": str(other_ca), "server_name": "localhost"}
    refused = await aiohttp_client(build_app(tls_settings(port, wrong)))
    status, body = await post_predict(refused, {"X-Request-Timeout": "2"})
    assert status in (503, 504), body
    assert str(port) not in str(body)
    assert len(fake.calls("Predict")) == 1, "nothing reached the backend over an unverified connection"
