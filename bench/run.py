"""``python -m bench``: the whole comparison in one run, printed as a table and written to RESULTS.md.

Servers, all on loopback, all in front of one fast fake backend (bench/backend.py):

* ``gateway``  - this project (``python -m gateway --config ...``);
* ``floor``    - the transport floor (bench/floor.py): aiohttp + one grpc.aio call, no translation;
* ``baseline`` - the hand-written TensorFlow proxy users would otherwise write (bench/baseline_proxy.py);
* ``direct``   - a grpc.aio client straight to the backend, no HTTP at all.

``--smoke`` runs every case for about a second at concurrency 1 and fails unless every
server answered every case correctly. It checks correctness, never timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import cases, procstat, report
from bench.cases import Case
from bench.load import Load, direct_grpc, have_wrk, http_load

ROOT = Path(__file__).resolve().parent.parent
HTTP_SERVERS = ("gateway", "floor", "baseline")


@dataclass(slots=True)
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    startup_seconds: float = 0.0
    idle_rss_mb: float = 0.0


@dataclass(frozen=True, slots=True)
class Row:
    case: str
    concurrency: int
    server: str
    load: Load
    cpu_ms: float | None  # server CPU per request
    peak_rss_mb: float | None


@dataclass(slots=True)
class Run:
    rows: list[Row] = field(default_factory=list)
    servers: dict[str, Server] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    workers: dict[str, float] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def _spawn(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child holds its own descriptor; ours closes here
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT)


def _wait_http(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 120.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@contextmanager
def backend(tmp: Path) -> Iterator[str]:
    port = free_port()
    log = tmp / "backend.log"
    process = _spawn(["-m", "bench.backend", str(port)], log)
    try:
        deadline = time.time() + 60
        while b"ready" not in log.read_bytes():
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"backend failed:\n{log.read_text()}")
            time.sleep(0.01)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def gateway_config(tmp: Path, target: str, port: int, workers: int) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "port": port, "workers": workers},
        "backends": {"default": {"targets": [target]}},
        "deployments": {"small": {"model": "small", "batching": {"enabled": True}}},
    }
    path = tmp / f"gateway-{workers}.json"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@contextmanager
def server(name: str, args: Sequence[str], port: int, tmp: Path, ready_path: str) -> Iterator[Server]:
    log = tmp / f"{name}.log"
    started = time.perf_counter()
    process = _spawn(args, log)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(process, url + ready_path, log)
        srv = Server(name, process, url, time.perf_counter() - started)
        srv.idle_rss_mb = procstat.rss_mb(process.pid)
        yield srv
    finally:
        _stop(process)


def fetch(url: str, case: Case) -> tuple[int, bytes]:
    request = urllib.request.Request(url + case.path, data=case.body or None, method=case.method)
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Bench-Case", case.name)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def correct(status: int, body: bytes, case: Case) -> bool:
    try:
        return status == 200 and case.check(json.loads(body))
    except (ValueError, KeyError, TypeError, IndexError):
        return False


def verify(run: Run, srv: Server, case: Case) -> bytes:
    status, body = fetch(srv.url, case)
    if not correct(status, body, case):
        run.failures.append(f"{srv.name} answered {case.name} wrongly: {status} {body[:200]!r}")
    return body


def measure(run: Run, srv: Server, case: Case, concurrency: int, seconds: float, tmp: Path) -> None:
    body_file = tmp / f"{case.name}.json"
    body_file.write_bytes(case.body)
    pid = srv.process.pid
    procstat.settle(pid)
    reset = procstat.reset_peak(pid)
    cpu = procstat.cpu_seconds(pid)
    load = http_load(srv.url + case.path, case, body_file, concurrency, case_seconds(case, concurrency, seconds))
    cpu = procstat.cpu_seconds(pid) - cpu
    cpu_ms = cpu / load.requests * 1e3 if load.requests else None
    run.rows.append(Row(case.name, concurrency, srv.name, load, cpu_ms, procstat.peak_rss_mb(pid) if reset else None))
    if load.errors:
        run.failures.append(f"{srv.name} {case.name} c={concurrency}: {load.errors} errors under load")


def case_seconds(case: Case, concurrency: int, seconds: float) -> float:
    """Long enough for a CPU-bound case to finish a few rounds of ``concurrency`` requests."""
    return max(seconds, 2 + concurrency * 0.1) if case.cpu_bound else seconds


def measure_direct(run: Run, target: str, case: Case, concurrency: int, seconds: float) -> None:
    run.rows.append(Row(case.name, concurrency, "direct", direct_grpc(target, case, concurrency, seconds), None, None))


def bench_server(
    run: Run, srv: Server, selected: Sequence[Case], concurrencies: Sequence[int], seconds: float, tmp: Path
) -> None:
    for case in selected:
        verify(run, srv, case)
        for concurrency in concurrencies:
            if srv.name == "baseline" and case.cpu_bound and concurrency > 1:
                # ~0.5 s of CPU per request: one round at c=16 alone would take the whole budget.
                continue
            measure(run, srv, case, concurrency, seconds, tmp)
            print(report.progress(run.rows[-1]), flush=True)


def run_all(args: argparse.Namespace) -> Run:
    run = Run()
    selected = [c for c in cases.all_cases() if not args.cases or c.name in args.cases]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        target = stack.enter_context(backend(tmp))
        for case in selected:
            for concurrency in args.concurrency:
                measure_direct(run, target, case, concurrency, args.duration)
        gw_port = free_port()
        gw = stack.enter_context(
            server(
                "gateway",
                ["-m", "gateway", "--config", str(gateway_config(tmp, target, gw_port, 1))],
                gw_port,
                tmp,
                "/readyz",
            )
        )
        run.servers["gateway"] = gw
        replies = tmp / "replies"
        replies.mkdir()
        for case in cases.all_cases():
            (replies / case.name).write_bytes(verify(run, gw, case))
        bench_server(run, gw, selected, args.concurrency, args.duration, tmp)
        batched = cases.batched_case()
        bench_server(run, gw, [batched], args.concurrency, args.duration, tmp)
        fl_port = free_port()
        with server(
            "floor", ["-m", "bench.floor", str(fl_port), target, str(replies)], fl_port, tmp, "/v1/models/small"
        ) as fl:
            run.servers["floor"] = fl
            bench_server(run, fl, selected, args.concurrency, args.duration, tmp)
        if not args.no_baseline:
            bl_port = free_port()
            with server(
                "baseline", ["-m", "bench.baseline_proxy", str(bl_port), target], bl_port, tmp, "/v1/models/small"
            ) as bl:
                run.servers["baseline"] = bl
                bench_server(run, bl, selected, args.concurrency, args.duration, tmp)
        if not args.smoke:
            gw.process.terminate()
            gw.process.wait(10)
            scaling(run, tmp, target, args.duration)
    return run


def scaling(run: Run, tmp: Path, target: str, seconds: float) -> None:
    """Throughput of one worker vs two on a CPU-bound case, each gateway alone on the machine."""
    case = cases.by_name("batch_64x100")
    for workers in (1, 2):
        port = free_port()
        args = ["-m", "gateway", "--config", str(gateway_config(tmp, target, port, workers))]
        with server(f"gateway-w{workers}", args, port, tmp, "/readyz") as srv:
            verify(run, srv, case)
            time.sleep(0.5)  # let every worker finish starting
            processes = len(procstat.tree(srv.process.pid))
            measure(run, srv, case, 16, seconds, tmp)
            run.workers[f"w{workers}"] = run.rows[-1].load.rps
            run.workers[f"w{workers}_processes"] = processes
            print(report.progress(run.rows[-1]), flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per case and concurrency (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--cases", nargs="+", help="only these cases (default: all)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TensorFlow baseline proxy")
    parser.add_argument("--smoke", action="store_true", help="~1 s per case at concurrency 1; correctness only")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.concurrency = 1.0, [1]
    return args


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = _loadavg()
    run = run_all(args)
    # Other work on the machine moves every figure; say how busy it was.
    run.notes.append(f"load average (1/5/15 min) before the run: {load_before}; after: {_loadavg()}")
    elapsed = time.perf_counter() - started
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = report.render(run, command.strip(), elapsed, have_wrk(), platform.platform())
    print(text)
    if not args.smoke:
        args.output.write_text(text)
    for failure in run.failures:
        print("FAILED:", failure, file=sys.stderr)
    print(f"bench: {'FAILED' if run.failures else 'ok'}; every case answered correctly: {not run.failures}")
    return 1 if run.failures else 0
