"""The transport floor: what aiohttp plus one grpc.aio call cost, with no translation at all.

Each case's path maps to (pre-serialised gRPC request, fixed reply and its headers). The handler
reads the body, makes the one call, and answers the fixed bytes. Nothing the gateway does can cost
less, so the gateway's CPU per request is reported as a ratio of this.
Run: ``python -m bench.floor HTTP_PORT GRPC_TARGET EXPECTED_DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import grpc
from aiohttp import web

from bench import cases
from bench.backend import MAX_MESSAGE_BYTES, MODEL_SERVICE, OPTIONS, PREDICTION

ROUTES = web.AppKey("routes", dict)


def _rpc_path(rpc: str) -> str:
    service = MODEL_SERVICE if rpc == "GetModelStatus" else PREDICTION
    return f"/{service}/{rpc}"


async def handle(request: web.Request) -> web.Response:
    # Two cases share a URL (row and columnar image), so the bench names the case in a header.
    call, grpc_request, reply, headers = request.app[ROUTES][request.headers.get("X-Bench-Case", request.path)]
    await request.read()
    await call(grpc_request)
    return web.Response(body=reply, headers=headers)


def build(target: str, replies: Path) -> web.Application:
    app = web.Application(client_max_size=MAX_MESSAGE_BYTES)

    async def channel_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        channel = grpc.aio.insecure_channel(target, options=OPTIONS)
        app[ROUTES] = {
            key: (
                channel.unary_unary(_rpc_path(case.rpc), None, None),
                case.grpc_request,
                (replies / case.name).read_bytes(),
                json.loads((replies / f"{case.name}.headers.json").read_text()),  # V2 binary: its header length
            )
            for case in cases.all_cases()
            for key in (case.path, case.name)
        }
        yield
        await channel.close(None)

    app.cleanup_ctx.append(channel_ctx)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


if __name__ == "__main__":
    port, target, replies = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    web.run_app(build(target, replies), host="127.0.0.1", port=port, access_log=None, print=lambda *_: None)
