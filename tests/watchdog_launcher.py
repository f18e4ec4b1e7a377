"""``python tests/watchdog_launcher.py [tfs-gateway flags]``: the real CLI, plus a test-only route.

``GET /test/block?seconds=S[&chunks=N][&spin=1]`` blocks the event loop on purpose: N times S
seconds, yielding to the loop between chunks; ``time.sleep`` (a C call that releases the GIL) or,
with ``spin=1``, a pure-Python busy loop. The route never ships: it is added here, by wrapping
``create_app``, and the patch runs at import so ``--workers`` children (spawned, which re-import
this script) get it too.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from aiohttp import web

import gateway.process.serve
import gateway.web.app
import gateway.web.dispatch
from gateway.cli import main

BLOCK_PATH = "/test/block"
BLOCK_ROUTE = "test_block"


def block(seconds: float, spin: bool) -> None:
    if not spin:
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def block_handler(request: web.Request) -> web.Response:
    seconds = float(request.query.get("seconds", "0"))
    chunks = int(request.query.get("chunks", "1"))
    for chunk in range(chunks):
        if chunk:
            await asyncio.sleep(0)  # the loop runs its timers between chunks: busy, but it answers
        block(seconds, request.query.get("spin") == "1")
    return web.json_response({"blocked_seconds": seconds * chunks})


_create_app = gateway.web.app.create_app


def create_app_with_block_route(*args: Any, **kwargs: Any) -> web.Application:
    app = _create_app(*args, **kwargs)
    app[gateway.web.dispatch.SPECIALS][BLOCK_PATH] = BLOCK_ROUTE
    return app


gateway.web.dispatch.PAGES[BLOCK_ROUTE] = block_handler
# lifecycle imported create_app by name, so the name there is the one to replace.
gateway.process.serve.create_app = create_app_with_block_route  # type: ignore[attr-defined]

if __name__ == "__main__":
    sys.exit(main())
