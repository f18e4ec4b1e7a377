"""Helpers for test suites: build the example models and run the stand-in as a subprocess.

Importing this module does not import TensorFlow; the build and the server each run in
their own process. Typical session fixture::

    models = build_example_models(tmp_path_factory.mktemp("models"))
    config = write_example_config(models, models / "models.config")
    with running_devserver(config) as server:
        channel = grpc.insecure_channel(server.address)
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "examples" / "build_models.py"
EXAMPLE_CONFIG = REPO_ROOT / "examples" / "models.config"
P = ParamSpec("P")
READY_LINE = re.compile(r"^devserver listening on (?P<host>\S+):(?P<port>\d+)\s*$")


@dataclass
class DevServer:
    """A running stand-in. `address` is what grpc.insecure_channel wants."""

    host: str
    port: int
    process: subprocess.Popen[str]
    # Everything the server printed on stderr (its log), kept for failure messages.
    log_lines: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def log(self) -> str:
        return "".join(self.log_lines)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send sig (SIGTERM by default), wait, SIGKILL if it hangs; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # The readers end at EOF once the process is gone; then the pipes can be closed.
        for reader in self.readers:
            reader.join(timeout)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode


def build_example_models(out_dir: Path, force: bool = False, timeout: float = 300.0) -> Path:
    """Run examples/build_models.py into out_dir (skips what exists); return out_dir."""
    command = [sys.executable, str(BUILD_SCRIPT), str(out_dir)] + (["--force"] if force else [])
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"building example models failed:\n{completed.stderr}")
    return out_dir


def write_example_config(models_dir: Path, config_path: Path) -> Path:
    """Write examples/models.config with its base paths pointing into models_dir.

    The committed config says `models/<name>`; keeping it the one source of truth means
    tests serve exactly what developers serve.
    """
    text = EXAMPLE_CONFIG.read_text()
    absolute = models_dir.resolve()
    text = re.sub(r"base_path:\s*'models/([^']+)'", lambda m: f"base_path: '{absolute / m.group(1)}'", text)
    config_path.write_text(text)
    return config_path


def _pump_stderr(stream: Iterator[str], sink: list[str]) -> None:
    # Drain the log continuously so a chatty server never blocks on a full pipe.
    for line in stream:
        sink.append(line)


def _wait_for_ready(
    process: subprocess.Popen[str], timeout: float, log_lines: list[str], readers: list[threading.Thread]
) -> tuple[str, int]:
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    readers.append(threading.Thread(target=read_stdout, daemon=True))
    readers[-1].start()
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            process.wait()
            raise RuntimeError(f"devserver exited with {process.returncode} before ready:\n{''.join(log_lines)}")
        if match := READY_LINE.match(line):
            return match["host"], int(match["port"])
    raise TimeoutError(f"devserver not ready after {timeout}s:\n{''.join(log_lines)}")


def start_devserver(
    config_file: Path | None = None,
    *,
    model_name: str | None = None,
    model_base_path: Path | None = None,
    extra_args: Sequence[str] = (),
    host: str = "127.0.0.1",
    poll_wait_seconds: float = 1.0,
    timeout: float = 120.0,
) -> DevServer:
    """Start `python -m devserver ... --port 0` and return once it printed its ready line.

    Give either config_file or model_name + model_base_path. The caller must stop() it
    (or use running_devserver).
    """
    command = [sys.executable, "-m", "devserver", "--port", "0", "--host", host]
    command += ["--file_system_poll_wait_seconds", str(poll_wait_seconds)]
    if config_file is not None:
        command += ["--model_config_file", str(config_file)]
    if model_base_path is not None:
        command += ["--model_name", model_name or "default", "--model_base_path", str(model_base_path)]
    command += list(extra_args)
    env = dict(os.environ)
    # `python -m devserver` must find this package whatever the caller's cwd is.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    server = DevServer("", 0, process)
    server.readers.append(threading.Thread(target=_pump_stderr, args=(process.stderr, server.log_lines), daemon=True))
    server.readers[-1].start()
    try:
        server.host, server.port = _wait_for_ready(process, timeout, server.log_lines, server.readers)
    except BaseException:
        server.stop(signal.SIGKILL)
        raise
    return server


def _stopped_on_exit(start: Callable[P, DevServer]) -> Callable[P, AbstractContextManager[DevServer]]:
    """Turn a start function into a context manager taking the same arguments."""

    @contextlib.contextmanager
    def manage(*args: P.args, **kwargs: P.kwargs) -> Iterator[DevServer]:
        server = start(*args, **kwargs)
        try:
            yield server
        finally:
            server.stop()

    return manage


# running_devserver(config_file, *, model_name=..., ...) -> context manager yielding DevServer
running_devserver = _stopped_on_exit(start_devserver)
