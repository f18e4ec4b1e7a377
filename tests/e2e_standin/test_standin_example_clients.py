"""The example clients in examples/clients/, run as a user runs them: a subprocess, its stdout, its status.

- rest_v1.py (requests) goes through the gateway's REST v1 front to the stand-in;
- tfs_grpc.py (tensorflow-serving-api's PredictionServiceStub) goes straight to the stand-in's
  gRPC port, and through the gateway's gRPC port;
- v2_http.py (tritonclient.http) and v2_kserve.py (kserve's InferenceRESTClient) go through the
  gateway's Open Inference Protocol REST front, binary and JSON, by model and under a deployment's
  base path;
- v2_grpc.py (tritonclient.grpc) goes through the gateway's gRPC port;
- every client starts and prints its usage.

Each answer is checked against TensorFlow's own reading of the same image.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devserver.testing import REPO_ROOT, DevServer
from examples.clients import common

from .conftest import Client, tf_outputs, version_dir
from .test_standin_oip_grpc import gateway_settings, start_gateway

CLIENTS = REPO_ROOT / "examples" / "clients"
ALL_CLIENTS = ("rest_v1", "tfs_grpc", "v2_http", "v2_grpc", "v2_kserve")
CLIENT_SECONDS = 120  # a bound on a hang, not a timing assertion: tfs_grpc.py imports TensorFlow


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str


async def run_client(name: str, *args: str) -> Run:
    """python examples/clients/<name>.py args, without blocking the loop the in-process gateway serves on."""
    env = {key: value for key, value in os.environ.items() if key.lower() not in {"http_proxy", "https_proxy"}}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENTS / f"{name}.py"),
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLIENT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def expected_line(models: Path, image: Path = common.DEFAULT_IMAGE) -> str:
    """What a client must print for image: TensorFlow's class and probability, in the clients' format."""
    outputs = tf_outputs(version_dir(models, "mnist"), {"images": common.load_image(image)})
    return common.answer(outputs["classes"], outputs["probabilities"])


def test_the_demo_image_reads_as_5(standin_models: Path) -> None:
    assert expected_line(standin_models).startswith("digit 5 ")


@pytest.mark.slow
@pytest.mark.parametrize("target", [("--model", "mnist"), ("--deployment", "digits")])
async def test_rest_v1_client_prints_the_digit(
    standin_gateway: Client, standin_models: Path, target: tuple[str, str]
) -> None:
    url = str(standin_gateway.make_url("")).rstrip("/")
    run = await run_client("rest_v1", "--url", url, *target)
    assert (run.status, run.stdout) == (0, expected_line(standin_models) + "\n"), run.stderr


@pytest.mark.slow
async def test_rest_v1_client_prints_the_gateways_error(standin_gateway: Client) -> None:
    url = str(standin_gateway.make_url("")).rstrip("/")
    run = await run_client("rest_v1", "--url", url, "--model", "no_such_model")
    assert run.status == 1 and run.stdout == "", run
    assert run.stderr == "HTTP 404: Servable not found for request: Latest(no_such_model)\n"


@pytest.mark.slow
async def test_tfs_grpc_client_prints_the_digit(standin: DevServer, standin_models: Path) -> None:
    run = await run_client("tfs_grpc", "--url", standin.address, "--model", "mnist")
    assert (run.status, run.stdout) == (0, expected_line(standin_models) + "\n"), run.stderr


@pytest.mark.slow
async def test_tfs_grpc_client_prints_the_status(standin: DevServer) -> None:
    run = await run_client("tfs_grpc", "--url", standin.address, "--model", "no_such_model")
    assert run.status == 1 and run.stdout == "", run
    assert run.stderr.endswith("NOT_FOUND: Servable not found for request: Latest(no_such_model)\n"), run.stderr


@pytest.fixture
async def grpc_port(standin: DevServer, aiohttp_server: Callable[..., Any]) -> AsyncIterator[int]:
    """The gateway's gRPC port in front of the stand-in (with its REST app, as the process runs them)."""
    _rest, server = await start_gateway(gateway_settings(standin.address), aiohttp_server)
    try:
        yield server.port
    finally:
        await server.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["v2_grpc", "tfs_grpc"])
async def test_grpc_clients_print_the_digit_through_the_gateway(
    grpc_port: int, standin_models: Path, name: str
) -> None:
    run = await run_client(name, "--url", f"127.0.0.1:{grpc_port}", "--model", "mnist")
    assert (run.status, run.stdout) == (0, expected_line(standin_models) + "\n"), run.stderr


@pytest.mark.slow
async def test_v2_grpc_client_prints_the_gateways_error(grpc_port: int) -> None:
    run = await run_client("v2_grpc", "--url", f"127.0.0.1:{grpc_port}", "--model", "no_such_model")
    assert run.status == 1 and run.stdout == "", run
    assert run.stderr == "Servable not found for request: Latest(no_such_model)\n", run.stderr


@pytest.mark.parametrize("name", ALL_CLIENTS)
async def test_every_client_prints_its_usage(name: str) -> None:
    run = await run_client(name, "--help")
    assert run.status == 0, run.stderr
    assert run.stdout.startswith(f"usage: {name}.py "), run.stdout
    for flag in ("--url", "--model", "--image"):
        assert flag in run.stdout, (name, flag)


@pytest.mark.parametrize("name", ALL_CLIENTS)
def test_every_client_is_in_the_readme_and_the_demo_banner(name: str) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    demo = (REPO_ROOT / "examples" / "demo.sh").read_text()
    assert f"examples/clients/{name}.py" in readme and f"examples/clients/{name}.py" in demo


def test_the_readme_shows_what_rest_v1_prints(standin_models: Path) -> None:
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    (index,) = [i for i, line in enumerate(lines) if line.startswith("python examples/clients/rest_v1.py --url")][:1]
    assert lines[index + 1] == f"# {expected_line(standin_models)}"


# --------------------------------------------------------------------------- Open Inference Protocol over REST


def v2_rest_url(client: Client, name: str, base: str = "") -> str:
    """The --url each V2 REST client takes: tritonclient host:port[/base] with no scheme, kserve a full URL."""
    url = str(client.make_url(base)).rstrip("/")
    return url.removeprefix("http://") if name == "v2_http" else url


@pytest.mark.slow
@pytest.mark.parametrize("name", ["v2_http", "v2_kserve"])
@pytest.mark.parametrize("mode", [(), ("--json",)], ids=["binary", "json"])
@pytest.mark.parametrize("target", [("", "mnist"), ("/model-serving/digits", "digits")], ids=["model", "deployment"])
async def test_v2_rest_clients_print_the_digit(
    standin_gateway: Client, standin_models: Path, name: str, mode: tuple[str, ...], target: tuple[str, str]
) -> None:
    base, model = target
    run = await run_client(name, "--url", v2_rest_url(standin_gateway, name, base), "--model", model, *mode)
    assert (run.status, run.stdout) == (0, expected_line(standin_models) + "\n"), run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ["v2_http", "v2_kserve"])
async def test_v2_rest_clients_print_the_gateways_error(standin_gateway: Client, name: str) -> None:
    run = await run_client(name, "--url", v2_rest_url(standin_gateway, name), "--model", "nope")
    assert run.status == 1 and run.stdout == "", run
    assert "Servable not found for request: Latest(nope)" in run.stderr, run.stderr
