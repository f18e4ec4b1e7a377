"""The process: one serving process (``serve``), the ``--workers`` supervisor (``workers``), and the
loop ``watchdog``. :func:`run` is the entry point the CLI calls."""

from __future__ import annotations

import asyncio

from gateway.config import Settings
from gateway.ops.accesslog import configure_logging
from gateway.process import serve, workers


def run(settings: Settings, reload: serve.Reload | None = None) -> int:
    """Serve until SIGTERM/SIGINT; ``reload`` re-reads the configuration on SIGHUP. The exit status."""
    configure_logging(settings.server)
    if settings.server.workers > 1:
        return workers.supervise(settings, reload)
    return asyncio.run(serve.serve(settings, reload))
