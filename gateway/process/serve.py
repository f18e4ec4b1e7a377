"""One serving process: start, drain on SIGTERM/SIGINT, reload on SIGHUP.

Drain, in order: ``/readyz`` fails at once; the listening sockets close (new connections are
refused); requests in flight finish, for up to ``server.shutdown_grace_seconds``, while kept-alive
connections still get answers (with ``Connection: close``); then whatever is left is cancelled,
the backends close, and the process exits 0. If the event loop itself is stuck and does not come
back within the grace period, the watchdog (``gateway.process.watchdog``) ends the process with status 70.

Reload (SIGHUP) re-reads the same config file (and the same flags and environment). A valid
config replaces the services (deployments, limits, backends) for new requests; requests in flight
finish on the old ones, which then close. An invalid config is logged and changes nothing.
Listening addresses, the metrics setup and other ``RESTART_ONLY`` keys need a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable, Iterator

from aiohttp import web

from gateway.config import ConfigError, Settings
from gateway.config.tls import server_ssl_context
from gateway.grpcfront.server import GrpcServer
from gateway.process import watchdog
from gateway.web.app import create_app, reload_services
from gateway.web.keys import HEALTH, SERVICES, STATUS
from gateway.web.pages import metrics_app

log = logging.getLogger("tfs_gateway.lifecycle")

Reload = Callable[[], Settings]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RESTART_ONLY = (
    "host",
    "port",
    "metrics_port",
    "grpc_port",
    "workers",
    "max_request_bytes",
    "max_header_bytes",
    "keepalive_timeout_seconds",
    "gzip_responses",  # the compression middleware is part of the app's frozen chain
    "tls",
)
# After the grace period, aiohttp gets this long to cancel leftovers and close connections.
CANCEL_SECONDS = 1.0


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
    grpc_server: GrpcServer | None = None
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
            if server.grpc_port is not None:
                grpc_server = await GrpcServer.start(
                    app[SERVICES], app[HEALTH], server, server.grpc_port, reuse_port=reuse_port
                )
                announce(f"serving grpc {server.host}:{grpc_server.port}")
            stop = asyncio.Event()
            guards.enter_context(_install_signals(app, stop, reload))
            await stop.wait()
            if grpc_server is not None:
                await grpc_server.begin_stop(server.shutdown_grace_seconds)
            await drain(app, runner)
        finally:
            if grpc_server is not None:
                await grpc_server.close()
            await runner.cleanup()
            if side is not None:
                await side.cleanup()
    return 0


def _metrics_runner(settings: Settings, app: web.Application) -> web.AppRunner | None:
    """The ``server.metrics_port`` server; made once the main app has started and owns its metrics."""
    if settings.server.metrics_port is None or not settings.metrics.enabled:
        return None
    return web.AppRunner(metrics_app(app[SERVICES], settings.metrics.paths, app[STATUS]), access_log=None)


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
