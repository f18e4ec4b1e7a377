"""The process: serve, drain on SIGTERM/SIGINT, reload on SIGHUP, and ``--workers N``.

Drain, in order: ``/readyz`` fails at once; the listening sockets close (new connections are
refused); requests in flight finish, for up to ``server.shutdown_grace_seconds``, while kept-alive
connections still get answers (with ``Connection: close``); then whatever is left is cancelled,
the backends close, and the process exits 0. If the event loop itself is stuck and does not come
back within the grace period, the watchdog (``gateway.process.watchdog``) ends the process with status 70.

Reload (SIGHUP) re-reads the same config file (and the same flags and environment). A valid
config replaces the services (deployments, limits, backends) for new requests; requests in flight
finish on the old ones, which then close. An invalid config is logged and changes nothing.
Listening addresses, the metrics setup and other ``RESTART_ONLY`` keys need a restart.

``--workers N`` runs a supervisor that spawns N serving processes on one port (SO_REUSEPORT: the
kernel spreads connections), forwards signals to them, and sums their metrics through
prometheus_client's multiprocess mode. A worker that dies stops the whole group (exit 1), so the
orchestrator restarts it cleanly rather than the pod running on a fraction of its cores.
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
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import multiprocess

from gateway.backend.readiness import HEALTH
from gateway.config.settings import ConfigError, Settings
from gateway.config.tls import server_ssl_context
from gateway.ops.accesslog import configure_logging
from gateway.process import watchdog
from gateway.web.app import create_app, reload_services
from gateway.web.keys import SERVICES
from gateway.web.pages import metrics_app

log = logging.getLogger("tfs_gateway.lifecycle")

Reload = Callable[[], Settings]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SUPERVISOR_SIGNALS = {*STOP_SIGNALS, signal.SIGHUP}
RESTART_ONLY = (
    "host",
    "port",
    "metrics_port",
    "workers",
    "max_request_bytes",
    "max_header_bytes",
    "keepalive_timeout_seconds",
    "gzip_responses",  # the compression middleware is part of the app's frozen chain
    "tls",
)
# After the grace period, aiohttp gets this long to cancel leftovers and close connections.
CANCEL_SECONDS = 1.0
# Workers get the grace period plus this before the supervisor kills them.
KILL_MARGIN_SECONDS = 10.0


def run(settings: Settings, reload: Reload | None = None) -> int:
    configure_logging(settings.server)
    if settings.server.workers > 1:
        return supervise(settings, reload)
    return asyncio.run(serve(settings, reload))


# --------------------------------------------------------------------------- one process


def announce(what: str) -> None:
    # Plain stderr, whatever the log level: tests and humans wait for this line to find the port.
    print(f"tfs-gateway: {what} (pid {os.getpid()})", file=sys.stderr, flush=True)


def _urls(runner: web.BaseRunner, tls: ssl.SSLContext | None) -> str:
    scheme = "https" if tls is not None else "http"
    return ", ".join(f"{scheme}://{address[0]}:{address[1]}" for address in runner.addresses)


async def _start(runner: web.BaseRunner, host: str, port: int, reuse_port: bool, tls: ssl.SSLContext | None) -> None:
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=reuse_port or None, ssl_context=tls).start()


async def serve(settings: Settings, reload: Reload | None, *, reuse_port: bool = False) -> int:
    """Serve until SIGTERM/SIGINT, then drain; the process's exit status."""
    app = create_app(settings, probes=True)
    server = settings.server
    runner = web.AppRunner(
        app, access_log=None, keepalive_timeout=server.keepalive_timeout_seconds, shutdown_timeout=CANCEL_SECONDS
    )
    side: web.AppRunner | None = None
    tls = server_ssl_context(server.tls)
    # The watchdog and the signal handlers outlive the cleanup below: a stuck cleanup is a stuck drain.
    with contextlib.ExitStack() as guards:
        try:
            await _start(runner, server.host, server.port, reuse_port, tls)
            announce(f"serving {_urls(runner, tls)}")
            side = _metrics_runner(settings, app)
            if side is not None:
                await _start(side, server.host, server.metrics_port or 0, reuse_port, tls)
                announce(f"serving metrics {_urls(side, tls)}")
            stop = asyncio.Event()
            guards.enter_context(_install_signals(app, stop, reload))
            await stop.wait()
            await drain(app, runner)
        finally:
            await runner.cleanup()
            if side is not None:
                await side.cleanup()
    return 0


def _metrics_runner(settings: Settings, app: web.Application) -> web.AppRunner | None:
    """The ``server.metrics_port`` server; made once the main app has started and owns its metrics."""
    if settings.server.metrics_port is None or not settings.metrics.enabled:
        return None
    return web.AppRunner(metrics_app(app[SERVICES].current.metrics, settings.metrics.paths), access_log=None)


@contextlib.contextmanager
def _install_signals(app: web.Application, stop: asyncio.Event, reload: Reload | None) -> Iterator[None]:
    """SIGHUP reloads on the loop; stop signals drain, and also reach the watchdog, which ends a
    process whose loop is stuck (``gateway.process.watchdog``)."""
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[bool]] = set()

    def begin_drain() -> None:
        if not stop.is_set():
            app[HEALTH].draining = True  # first, before anything can await: readiness fails now
            log.info("draining: readiness fails, no new connections, waiting for requests in flight")
            stop.set()

    def begin_reload() -> None:
        task = asyncio.create_task(reload_config(app, reload))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, begin_reload)
    ref = app[SERVICES]
    with (
        watchdog.watching(ref.current.metrics, lambda: ref.current.settings.server) as dog,
        watchdog.stop_signals(dog, begin_drain, STOP_SIGNALS),
    ):
        yield


async def drain(app: web.Application, runner: web.BaseRunner) -> None:
    """Stop accepting, then wait for requests in flight up to the grace period."""
    start = time.perf_counter()
    app[HEALTH].draining = True
    for site in list(runner.sites):
        await site.stop()
    ref = app[SERVICES]
    grace = ref.current.settings.server.shutdown_grace_seconds
    if await ref.wait_idle(grace):
        log.info("drained in %.3fs", time.perf_counter() - start)
    else:
        log.warning("grace period of %gs is over; cancelling %d requests in flight", grace, ref.in_flight)


async def reload_config(app: web.Application, reload: Reload | None) -> bool:
    """Re-read the config and swap it in; False (old config kept) if it is invalid."""
    if reload is None:
        log.warning("SIGHUP ignored: this gateway was not started from a config source")
        return False
    try:
        settings = reload()
    except ConfigError as exc:
        log.error("config reload rejected, keeping the current config: %s", exc)
        return False
    _warn_restart_only(app[SERVICES].current.settings, settings)
    logging.getLogger().setLevel(settings.server.log_level.upper())
    reload_services(app, settings)
    log.info("config reloaded: %d backends, %d deployments", len(settings.backends), len(settings.deployments))
    return True


def _warn_restart_only(old: Settings, new: Settings) -> None:
    changed = [f"server.{key}" for key in RESTART_ONLY if getattr(old.server, key) != getattr(new.server, key)]
    if old.metrics != new.metrics:
        changed.append("metrics")
    if old.cors != new.cors:
        changed.append("cors")
    if changed:
        log.warning("config reload: %s changed; these take effect only after a restart", ", ".join(changed))


# --------------------------------------------------------------------------- --workers N


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
