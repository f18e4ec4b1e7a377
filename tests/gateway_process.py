"""``python -m gateway`` as a child process on loopback, for lifecycle and Prometheus tests.

Output goes to files, not pipes, so a chatty child can never block on a full pipe; the test
reads the files to find the bound port (the ``serving http://...`` line) and log lines.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEADLINE_SECONDS = 30.0
_SERVING = re.compile(r"tfs-gateway: serving https?://127\.0\.0\.1:(\d+) \(pid (\d+)\)")
_GRPC_SERVING = re.compile(r"tfs-gateway: serving grpc 127\.0\.0\.1:(\d+) ")


class GatewayProcess:
    """``async with GatewayProcess(config) as gw: ... gw.url ...``: serving on entry, killed on exit if running.

    ``args`` are extra command-line flags; ``processes`` is how many serving processes to wait
    for (``--workers N``); ``workdir`` holds the config and the output files (default: a temp dir).
    """

    # What runs: ``python -m gateway``; a subclass may run another entry point with the same CLI.
    program: tuple[str, ...] = ("-m", "gateway")

    def __init__(self, config: dict[str, Any], *args: str, workdir: Path | None = None, processes: int = 1) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="tfs-gateway-test-")) if workdir is None else workdir
        self.processes = processes
        self.config_path = self.workdir / "config.yaml"
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        self.args = args
        self.write_config(config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def write_config(self, config: dict[str, Any] | str) -> None:
        """Write the config; a mapping without ``server.grpc_port`` gets ``null``, so parallel
        gateways never fight over the default 8001 (tests that want the port give ``0``)."""
        if not isinstance(config, str) and "grpc_port" not in config.get("server", {}):
            config = {**config, "server": {**config.get("server", {}), "grpc_port": None}}
        text = config if isinstance(config, str) else yaml.safe_dump(config)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.config_path)  # atomic, so a reload never reads half a file

    async def __aenter__(self) -> GatewayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TFS_GATEWAY__", "PROMETHEUS_MULTIPROC"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        command = [sys.executable, *self.program, "--config", str(self.config_path), "--host", "127.0.0.1"]
        command += ["--port", "0"]  # a free port, read back from the serving line; a later --port wins
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen([*command, *self.args], stdout=out, stderr=err, cwd=self.workdir, env=env)
        try:
            await self.wait_serving(self.processes)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            await self.wait_exit()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory_kib(self) -> tuple[int, int]:
        """(resident, peak resident) memory of the gateway process, in KiB."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="utf-8")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def serving_lines(self) -> list[tuple[int, int]]:
        """(port, pid) of every process that announced it serves."""
        return [(int(port), int(pid)) for port, pid in _SERVING.findall(self.stderr())]

    async def wait_serving(self, processes: int = 1) -> int:
        """Wait until ``processes`` processes announce they serve; the port."""
        await self.wait_for(lambda: len(self.serving_lines()) >= processes, "the gateway to serve")
        self.port = self.serving_lines()[0][0]
        return self.port

    async def wait_log(self, text: str) -> None:
        await self.wait_for(lambda: text in self.stderr(), repr(text))

    async def wait_for(self, condition: Any, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        while not condition():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode} waiting for {what}:\n{self.stderr()}")
            assert loop.time() < deadline, f"timed out waiting for {what}:\n{self.stderr()}"
            await asyncio.sleep(0.02)

    def send(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait_exit(self) -> int:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        while self.proc.poll() is None:
            assert loop.time() < deadline, f"gateway did not exit:\n{self.stderr()}"
            await asyncio.sleep(0.02)
        return self.proc.returncode


class GrpcGateway(GatewayProcess):
    """A gateway process whose gRPC port (give ``server.grpc_port: 0``) is read back from its
    ``serving grpc`` line into ``grpc_port``."""

    grpc_port = 0

    async def __aenter__(self) -> GrpcGateway:
        await super().__aenter__()
        await self.wait_for(lambda: _GRPC_SERVING.search(self.stderr()), "the gRPC port")
        match = _GRPC_SERVING.search(self.stderr())
        assert match is not None
        self.grpc_port = int(match.group(1))
        return self


def gateway_config(backend_target: str, **sections: Any) -> dict[str, Any]:
    """A config for the fake at ``backend_target`` with fast probes and one deployment."""
    config: dict[str, Any] = {
        "server": {"shutdown_grace_seconds": 20.0, "log_level": "info"},
        "backends": {
            "default": {
                "targets": [backend_target],
                "health_check": {"interval_seconds": 0.2, "timeout_seconds": 0.2},
            }
        },
        "deployments": {"my-dep": {"model": "half_plus_two"}},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config
