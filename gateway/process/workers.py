"""``--workers N``: a supervisor that runs N serving processes on one port.

The kernel spreads connections over them (SO_REUSEPORT); the supervisor forwards signals and
sums their metrics through prometheus_client's multiprocess mode. A worker that dies stops the
whole group (exit 1), so the orchestrator restarts it cleanly rather than the pod running on a
fraction of its cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

from gateway.config import Settings
from gateway.ops.accesslog import configure_logging
from gateway.process.serve import STOP_SIGNALS, Reload, announce, serve

log = logging.getLogger("tfs_gateway.workers")

SUPERVISOR_SIGNALS = {*STOP_SIGNALS, signal.SIGHUP}
# Workers get the grace period plus this before the supervisor kills them.
KILL_MARGIN_SECONDS = 10.0


def supervise(settings: Settings, reload: Reload | None) -> int:
    """Run ``server.workers`` serving processes on one port until SIGTERM/SIGINT."""
    with _multiprocess_dir(settings.metrics.multiprocess_dir) as metrics_dir:
        # Set before any worker starts: prometheus_client picks its value store at import time.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        with _reserved_ports(settings) as mapping:
            received = _queue_signals()
            workers = _spawn(mapping, reload, settings.server.workers)
            port = mapping["server"]["port"]
            announce(f"supervising {len(workers)} workers on http://{settings.server.host}:{port}")
            failed = _watch(workers, received, settings.server.shutdown_grace_seconds + KILL_MARGIN_SECONDS)
        _forget(workers, metrics_dir)
    codes = [worker.exitcode for worker in workers]
    log.info("workers exited with %s", codes)
    return 1 if failed or any(code != 0 for code in codes) else 0


@contextlib.contextmanager
def _multiprocess_dir(configured: str | None) -> Iterator[str]:
    if configured is None:
        path = tempfile.mkdtemp(prefix="tfs-gateway-metrics-")
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
        return
    directory = Path(configured)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # a previous run's values would be summed in otherwise
        stale.unlink()
    yield str(directory)


@contextlib.contextmanager
def _reserved_ports(settings: Settings) -> Iterator[dict[str, Any]]:
    """The settings as plain data, with port 0 replaced by a free port that all workers share.

    The reserving socket joins the SO_REUSEPORT group without listening, so it holds the port
    and receives no connections.
    """
    mapping = settings.to_mapping()
    server = mapping["server"]
    with contextlib.ExitStack() as stack:
        for key in ("port", "metrics_port"):
            if server[key] == 0:
                server[key] = _reserve(stack, settings.server.host)
        yield mapping


def _reserve(stack: contextlib.ExitStack, host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    port: int = sock.getsockname()[1]
    return port


def _spawn(mapping: dict[str, Any], reload: Reload | None, count: int) -> list[BaseProcess]:
    # spawn, not fork: a forked child would inherit the supervisor's imported prometheus_client
    # (single-process mode) and any threads grpc started.
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = [
        context.Process(target=worker_main, args=(mapping, reload), name=f"tfs-gateway-worker-{index}")
        for index in range(count)
    ]
    for worker in workers:
        worker.start()
    return workers


def worker_main(mapping: dict[str, Any], reload: Reload | None) -> None:
    """One serving process of ``--workers N``."""
    settings = Settings.from_mapping(mapping)
    configure_logging(settings.server)
    sys.exit(asyncio.run(serve(settings, reload, reuse_port=True)))


def _queue_signals() -> list[int]:
    """Record signals for the watch loop. Python handlers, not a blocked mask: grpc's threads
    would not share the mask, and a signal delivered to one of them would kill the supervisor."""
    received: list[int] = []
    for signum in SUPERVISOR_SIGNALS:
        signal.signal(signum, lambda number, _frame: received.append(number))
    return received


def _watch(workers: list[BaseProcess], received: list[int], stop_timeout: float) -> bool:
    """Forward signals until every worker has exited; True if one died on its own."""
    deadline: float | None = None
    failed = False
    while any(worker.is_alive() for worker in workers):
        time.sleep(0.1)  # a signal cuts it short; its handler has queued the number by then
        signum = received.pop(0) if received else None
        if signum == signal.SIGHUP:
            _signal_all(workers, signal.SIGHUP)
        elif deadline is None and (signum is not None or not all(w.is_alive() for w in workers)):
            failed = signum is None
            if failed:
                log.error("a worker exited unexpectedly; stopping the others")
            _signal_all(workers, signal.SIGTERM)
            deadline = time.monotonic() + stop_timeout
        elif deadline is not None and time.monotonic() > deadline:
            log.error("workers still running %gs after SIGTERM; killing them", stop_timeout)
            _signal_all(workers, signal.SIGKILL)
    for worker in workers:
        worker.join()
    return failed


def _signal_all(workers: list[BaseProcess], signum: int) -> None:
    for worker in workers:
        if worker.pid is not None and worker.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signum)


def _forget(workers: list[BaseProcess], metrics_dir: str) -> None:
    for worker in workers:
        if worker.pid is not None:
            multiprocess.mark_process_dead(worker.pid, metrics_dir)  # type: ignore[no-untyped-call]
