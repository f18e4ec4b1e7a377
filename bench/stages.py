"""``python -m bench.stages``: what each stage of one small predict (1x3 floats) costs, in µs.

Each stage is one of the gateway's own functions (or the short sequence of them the gateway runs
for that stage), called alone in this process on the bench's ``small`` model, many times per
repeat. A repeat's figure is its total ``time.perf_counter_ns`` (wall) and ``time.process_time_ns``
(this process's CPU, every thread: gRPC's own threads included) divided by the iterations; the
table shows the median of the repeats. The gRPC call goes to bench/backend.py in a child process,
kept off this process's CPUs when there are others.

The gateway's layout is moving into subpackages: every gateway name this module uses is imported
at the top of :func:`stages`, and nowhere else, so a move is a change there only.
``--json`` prints the rows for bench/report.py instead of a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cases

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"instances": [[1.0, 2.0, 3.0]]}'
PATH = "/v1/models/small:predict"
REQUEST = (
    f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:8501\r\nUser-Agent: wrk\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(BODY)}\r\n\r\n"
).encode() + BODY


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    what: str
    run: Callable[[], Any]  # sync, or returning an awaitable
    iterations: int
    reference: bool = False  # shown for comparison, left out of the sum


@dataclass(frozen=True, slots=True)
class Timing:
    wall_us: list[float]
    cpu_us: list[float]


def _time_sync(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - wall) / n / 1e3, (time.process_time_ns() - cpu) / n / 1e3


async def _time_async(fn: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    for _ in range(n):
        await fn()
    return (time.perf_counter_ns() - wall) / n / 1e3, (time.process_time_ns() - cpu) / n / 1e3


async def measure(stage: Stage, repeats: int) -> Timing:
    is_async = asyncio.iscoroutine(probe := stage.run())
    if is_async:
        await probe  # the warm-up call
    walls, cpus = [], []
    for _ in range(repeats):
        if is_async:
            wall, cpu = await _time_async(stage.run, stage.iterations)
        else:
            wall, cpu = _time_sync(stage.run, stage.iterations)
        walls.append(wall)
        cpus.append(cpu)
    return Timing(walls, cpus)


# --------------------------------------------------------------------------- the backend


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def backend() -> Iterator[str]:
    port = _free_port()
    others = set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
    prefix = ["taskset", "-c", ",".join(map(str, sorted(others)))] if others else []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "bench.backend", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        if b"ready" not in process.stdout.readline():
            raise RuntimeError("bench.backend did not start")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


# --------------------------------------------------------------------------- the stages


def stages(target: str) -> list[Stage]:
    """The stages of one small predict, in the order a request meets them."""
    from aiohttp import web
    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.http_parser import HttpRequestParser
    from aiohttp.test_utils import make_mocked_request
    from prometheus_client import CollectorRegistry

    from gateway._pb.tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2
    from gateway.backend.client import PREDICT
    from gateway.codec import meta as codec_meta
    from gateway.codec import predict as codec
    from gateway.codec import wire
    from gateway.config import Settings
    from gateway.ops.metrics import Metrics
    from gateway.pipeline.services import RequestInfo
    from gateway.routing import routes
    from gateway.routing.binding import bind, client_timeout
    from gateway.web import app as gateway_app
    from gateway.web import dispatch, middleware, rest_v1
    from gateway.web.responses import json_response

    config = {"backends": {"default": {"targets": [target]}}, "server": {"access_log": False}}
    settings = Settings.from_mapping(config, env={})
    metrics = Metrics(CollectorRegistry(), gateway_app.known_models(settings), settings.backends)
    services = gateway_app.build_services(settings, metrics)
    specials = dispatch.special_paths(settings)
    loop = asyncio.get_running_loop()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(BODY))}

    # One parser per connection, as aiohttp has; wrk keeps its connections alive.
    parser = HttpRequestParser(BaseProtocol(loop), loop, 2**16, max_line_size=8190, max_field_size=8190)

    def http() -> Any:
        (message, _payload), *_ = parser.feed_data(REQUEST)[0]
        info = RequestInfo(request_id=message.headers.get("X-Request-ID") or uuid.uuid4().hex)
        target = routes.resolve(message.method, message.path, specials)
        services.authenticator.admit(target, message.headers)
        info.route, info.verb = target.route, target.kind
        binding = bind(settings, target, client_timeout(message.headers))
        info.bound(binding)
        return target, binding

    target_, binding = http()
    meta_reply = get_model_metadata_pb2.GetModelMetadataResponse.FromString(cases.metadata_reply("small"))
    sigs = codec_meta.signature_defs(meta_reply)
    limits = services.limits
    depth = settings.server.max_json_depth

    def json_to_tensors() -> Any:
        parsed = rest_v1._parse_predict(BODY, depth)
        sig = codec.find_signature(sigs, parsed.signature_name)
        tensors = rest_v1._tensors(parsed, limits, sig)
        return parsed.signature_name, (parsed.fmt, tensors)

    sig_name, (fmt, tensors) = json_to_tensors()

    def request_bytes() -> bytes:
        return wire.predict_request(binding.model_spec(sig_name), tensors)

    payload = request_bytes()
    backend = services.backends[binding.backend]
    call_metadata = {"x-request-id": uuid.uuid4().hex}

    async def grpc_call() -> bytes:
        return await backend.call_raw(PREDICT, payload, timeout=binding.timeout_seconds, metadata=call_metadata)

    bare = backend.channel.unary_unary(PREDICT.path, None, None)

    async def bare_grpc_call() -> bytes:
        return await bare(payload, timeout=binding.timeout_seconds, metadata=tuple(call_metadata.items()))

    reply_bytes = cases.predict_reply("small", 1)

    def reply_decoding() -> Any:
        reply = predict_pb2.PredictResponse()
        reply.ParseFromString(reply_bytes)
        return codec.output_arrays(reply)

    outputs = reply_decoding()

    def json_writing() -> web.Response:
        return json_response(codec.encode_outputs(outputs, fmt))

    response = json_writing()
    request = make_mocked_request("POST", PATH, headers=headers)
    info = RequestInfo(request_id=uuid.uuid4().hex, route=target_.route, verb="predict")
    info.bound(binding)

    def metrics_stage() -> None:
        with metrics.in_flight.labels(info.route).track_inprogress():
            pass
        middleware.observe(request, services, info, response, 0.0005)

    def access_log() -> None:
        middleware.write_access_line(request, info, response, 0.0005, len(BODY), len(response.body or b""))

    return [
        Stage("HTTP parse and dispatch", "aiohttp's request parser, URL grammar, auth check, binding, request id",
              http, 5000),
        Stage("JSON -> tensors", "parse the body, find the signature, decode and validate the inputs",
              json_to_tensors, 5000),
        Stage("request bytes", "PredictRequest bytes from the tensors (ModelSpec included)", request_bytes, 5000),
        Stage("gRPC call", "Backend.call_raw: limiter, breaker, deadline, retry frames and the call; CPU is this "
              "process's (wall includes the backend)", grpc_call, 500),
        Stage("gRPC call, bare (reference)", "grpc.aio unary call on the same channel, no wrapper",
              bare_grpc_call, 500, reference=True),
        Stage("reply decoding", "PredictResponse bytes -> parsed message -> output arrays", reply_decoding, 5000),
        Stage("JSON writing", "output arrays -> JSON body -> aiohttp Response", json_writing, 5000),
        Stage("metrics", "in-flight gauge, request counter, latency and size histograms", metrics_stage, 5000),
        Stage("access log", "one access-log line, written to /dev/null", access_log, 5000),
    ]  # fmt: skip


async def run_all(target: str, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for stage in stages(target):
        timing = await measure(stage, repeats)
        rows.append(
            {"stage": stage.name, "what": stage.what, "us": timing.wall_us, "cpu_us": timing.cpu_us,
             "reference": stage.reference, "iterations": stage.iterations}
        )  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'stage':<32} {'µs CPU':>9} {'µs wall':>9}  (median of {len(rows[0]['us'])} repeats)"]
    for row in rows:
        lines.append(f"{row['stage']:<32} {statistics.median(row['cpu_us']):9.1f} {statistics.median(row['us']):9.1f}")
    total = sum(statistics.median(r["cpu_us"]) for r in rows if not r["reference"])
    lines.append(f"{'sum (without references)':<32} {total:9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (for bench/report.py)")
    args = parser.parse_args(argv)
    out = sys.stdout
    with backend() as target, contextlib.redirect_stdout(io.StringIO()):
        # The access log writes to stdout; its lines must not reach our output.
        from gateway.config import ServerSettings
        from gateway.ops import accesslog

        with open(os.devnull, "wb") as devnull:
            accesslog.configure_logging(ServerSettings(), access_stream=devnull)
            rows = asyncio.run(run_all(target, args.repeats))
    out.write(json.dumps(rows) if args.json else table(rows))
    out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
