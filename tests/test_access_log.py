"""One JSON access-log line per request: the fields, the request id round trip, and no secrets."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest
from conftest import GatewayClient, MakeGatewayClient
from fake_backend import FakeModelServer
from gateway_process import GatewayProcess, gateway_config

from gateway.ops.accesslog import ACCESS_LOGGER

SECRET = "s3cr3t-token-value"
FIELDS = {
    "arm",
    "time",
    "request_id",
    "method",
    "path",
    "route",
    "model",
    "version",
    "status",
    "duration_seconds",
    "bytes_in",
    "bytes_out",
    "backend",
    "grpc_code",
    "reason",
}


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]


@pytest.fixture(autouse=True)
def capture_access(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)


async def test_one_line_per_request_with_every_field(
    gateway_client: GatewayClient, caplog: pytest.LogCaptureFixture, fake_backend: FakeModelServer
) -> None:
    body = {"instances": [1.0, 2.0], "note": SECRET}
    headers = {"X-Request-ID": "req-42", "Authorization": f"Bearer {SECRET}", "X-API-Key": SECRET}
    async with gateway_client.post(
        f"/v1/models/half_plus_two/versions/2:predict?key={SECRET}", json=body, headers=headers
    ) as resp:
        answer = await resp.read()
        assert resp.headers["X-Request-ID"] == "req-42"
    (line,) = access_lines(caplog)
    assert set(line) == FIELDS
    assert line["request_id"] == "req-42"
    assert (line["method"], line["path"], line["route"]) == (
        "POST",
        "/v1/models/half_plus_two/versions/2:predict",
        "v1_predict",
    )
    assert (line["model"], line["version"], line["backend"]) == ("half_plus_two", "2", "default")
    assert line["arm"] == ""  # no split on this route
    assert (line["status"], line["grpc_code"], line["reason"]) == (resp.status, "OK", None)
    assert line["bytes_in"] == len(json.dumps(body).encode())
    assert line["bytes_out"] == len(answer)
    assert 0 < line["duration_seconds"] < 60
    assert SECRET not in caplog.text
    assert fake_backend.last("Predict").metadata["x-request-id"] == "req-42"


async def test_errors_carry_the_grpc_code_and_reason(
    gateway_client: GatewayClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with gateway_client.get("/model-serving/pinned-dep/versions/9") as resp:
        assert resp.status == 404
    async with gateway_client.get("/nowhere") as resp:
        assert resp.status == 404
    first, second = access_lines(caplog)
    assert (first["route"], first["model"], first["grpc_code"]) == ("deployment_status", "pinned-dep", "NOT_FOUND")
    assert first["reason"] is not None
    assert (second["route"], second["model"], second["backend"], second["grpc_code"]) == ("unmatched", "", "", "")


async def test_a_request_id_is_generated_when_the_client_sends_none(
    gateway_client: GatewayClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with gateway_client.get("/healthz") as resp:
        generated = resp.headers["X-Request-ID"]
    (line,) = access_lines(caplog)
    assert line["request_id"] == generated
    assert len(generated) == 32


async def test_access_log_can_be_switched_off(
    make_gateway_client: MakeGatewayClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_gateway_client({"server": {"access_log": False}})
    async with client.get("/healthz") as resp:
        assert resp.status == 200
    assert access_lines(caplog) == []


async def test_a_serving_process_writes_one_line_per_request_to_stdout(fake_backend: FakeModelServer) -> None:
    """In a real process the lines skip ``logging`` and go to stdout directly; each is whole JSON."""
    async with GatewayProcess(gateway_config(fake_backend.target)) as gw:
        async with aiohttp.ClientSession() as session:
            for rid in ("stdout-1", "stdout-2"):
                async with session.post(
                    gw.url + "/v1/models/half_plus_two:predict",
                    json={"instances": [1.0]},
                    headers={"X-Request-ID": rid},
                ) as resp:
                    assert resp.status == 200

        def lines() -> list[dict[str, Any]]:
            return [json.loads(line) for line in gw.stdout().splitlines() if line.startswith("{")]

        await gw.wait_for(lambda: len(lines()) >= 2, "two access lines on stdout")
        first, second = lines()[:2]
        assert [first["request_id"], second["request_id"]] == ["stdout-1", "stdout-2"]
        assert first["status"] == 200 and first["route"] == "v1_predict"
        assert first["time"].endswith("+00:00") and "T" in first["time"]
