"""``python -m bench``: the whole comparison in interleaved rounds, written to RESULTS.md and RESULTS.json.

Servers, all on loopback, all in front of one fast fake backend (bench/backend.py):

* ``gateway``  - this project (``python -m gateway --config ...``);
* ``gateway+batching`` - the same gateway process, through a deployment with micro-batching on;
* ``gateway+split``, ``gateway+shadow`` - the same process through a deployment with a two-arm split,
  or with every request copied to a shadow and compared (small predict only: the cost per request);
* ``floor``    - the transport floor (bench/floor.py): aiohttp + one grpc.aio call, no translation;
* ``baseline`` - the hand-written TensorFlow proxy users would otherwise write (bench/baseline_proxy.py);
* ``direct``   - a grpc.aio client straight to the backend, no HTTP at all.

For each case and concurrency every server is measured once per round, for ``--rounds`` rounds,
and each round starts one server later than the last, so no server is always first or last.
The server under test is pinned to one core; the load generator, the backend and this process
to the other. ``--smoke`` checks that every server answers every case correctly, never timings.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import cases, procstat, report
from bench.cases import Case
from bench.load import direct_grpc, have_wrk, http_load
from bench.results import Block, Run, Sample

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = {"rounds": 5, "duration": 2.0, "concurrency": [1, 16, 64]}
CPU_BOUND_MAX_CONCURRENCY = 16  # images at c=64 take minutes per round and no target reads them


@dataclass(frozen=True, slots=True)
class Pinning:
    server: set[int]
    load: set[int]

    def describe(self) -> str:
        return f"server under test on CPU {_cpus(self.server)}; wrk, backend and bench runner on CPU {_cpus(self.load)}"


def _cpus(cores: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


@dataclass(slots=True)
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    startup_seconds: float = 0.0
    idle_rss_mb: float = 0.0


@dataclass(frozen=True, slots=True)
class Contestant:
    """What one column of a round measures: a server (None for direct gRPC) and the request it gets."""

    label: str
    server: Server | None
    case: Case
    column_of: str | None = None  # the case whose row its samples belong to, when not its own

    @property
    def row(self) -> str:
        return self.column_of or self.case.name

    def describe(self, lead: Case) -> str:
        """Its name in a block's order: the server, and the case when it is not the block's own."""
        return self.label if self.row == lead.name else f"{self.label} ({self.row})"


def plan_pinning() -> Pinning | None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return Pinning(server={cpus[-1]}, load=set(cpus[:-1]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def _spawn(args: Sequence[str], log: Path, cores: set[int] | None = None) -> subprocess.Popen[bytes]:
    prefix = ["taskset", "-c", _cpus(cores)] if cores and shutil.which("taskset") else []
    with log.open("wb") as out:  # the child holds its own descriptor; ours closes here
        process = subprocess.Popen(
            [*prefix, sys.executable, *args], cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT
        )
    if cores and not prefix:
        procstat.pin(process.pid, cores)
    return process


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
def backend(tmp: Path, cores: set[int] | None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = tmp / "backend.log"
    process = _spawn(["-m", "bench.backend", str(port)], log, cores)
    try:
        deadline = time.time() + 60
        while b"ready" not in log.read_bytes():
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"backend failed:\n{log.read_text()}")
            time.sleep(0.01)
        yield f"127.0.0.1:{port}", process
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# Split and shadow, priced against the plain small predict (``gateway``). The bench backend answers
# every version alike, so the shadow agrees; a cap above every concurrency copies every request.
TRAFFIC_DEPLOYMENTS = {
    cases.TRAFFIC_DEPLOYMENTS["gateway+split"]: {
        "model": "small",
        "split": [{"version": 1, "weight": 1}, {"version": 2, "weight": 1}],
    },
    cases.TRAFFIC_DEPLOYMENTS["gateway+shadow"]: {
        "model": "small",
        "version": 1,
        "shadow": [{"version": 2, "percent": 100}],
        "shadow_max_in_flight": 1024,
    },
}


def gateway_config(tmp: Path, target: str, port: int) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "port": port, "workers": 1, "grpc_port": None},
        "backends": {"default": {"targets": [target]}},
        "deployments": {"small": {"model": "small", "batching": {"enabled": True}}, **TRAFFIC_DEPLOYMENTS},
    }
    path = tmp / f"gateway-{port}.json"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@contextmanager
def server(
    name: str, args: Sequence[str], port: int, tmp: Path, ready_path: str, cores: set[int] | None
) -> Iterator[Server]:
    log = tmp / f"{name}.log"
    started = time.perf_counter()
    process = _spawn(args, log, cores)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(process, url + ready_path, log)
        srv = Server(name, process, url, time.perf_counter() - started)
        if cores:
            procstat.pin_tree(process.pid, cores)  # any worker or thread that escaped the prefix
        srv.idle_rss_mb = procstat.rss_mb(process.pid)
        yield srv
    finally:
        _stop(process)


def fetch(url: str, case: Case) -> tuple[int, bytes, dict[str, str]]:
    """One request of ``case``: status, body, and the reply's headers keyed in lower case."""
    request = urllib.request.Request(url + case.path, data=case.body or None, method=case.method)
    for name, value in case.headers:
        request.add_header(name, value)
    request.add_header("X-Bench-Case", case.name)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), _lower(response.headers.items())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), _lower(exc.headers.items())


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def correct(status: int, body: bytes, headers: dict[str, str], case: Case) -> bool:
    try:
        return status == 200 and case.check(case.reply(body, headers))
    except (ValueError, KeyError, TypeError, IndexError):
        return False


# What the floor repeats of the gateway's reply besides its body: V2 binary needs the header length.
REPLAYED_HEADERS = ("content-type", cases.HEADER_LENGTH.lower())


def verify(run: Run, srv: Server, case: Case) -> tuple[bytes, dict[str, str]]:
    """Check one answer of ``srv``; return its body and the headers the floor replays."""
    status, body, headers = fetch(srv.url, case)
    if not correct(status, body, headers, case):
        run.failures.append(f"{srv.name} answered {case.name} wrongly: {status} {body[:200]!r}")
    return body, {name: value for name, value in headers.items() if name in REPLAYED_HEADERS}


def case_seconds(case: Case, concurrency: int, seconds: float) -> float:
    """Long enough for a CPU-bound case to finish a few rounds of ``concurrency`` requests."""
    return max(seconds, 2 + concurrency * 0.1) if case.cpu_bound else seconds


def measure(
    who: Contestant, concurrency: int, seconds: float, tmp: Path, target: str, pinning: Pinning | None
) -> tuple[Sample, int]:
    """One load run; returns the sample (without its round and position) and the errors seen."""
    case, srv = who.case, who.server
    seconds = case_seconds(case, concurrency, seconds)
    if srv is None:
        load = direct_grpc(target, case, concurrency, seconds)
        return Sample(case.name, concurrency, who.label, 0, 0, load.requests, load.seconds,
                      load.p50_ms, load.p99_ms, load.errors, None, None, None), load.errors  # fmt: skip
    body_file = tmp / f"{case.name}.json"
    if not body_file.exists():
        body_file.write_bytes(case.body)
    pid = srv.process.pid
    procstat.settle(pid)
    reset = procstat.reset_peak(pid)
    cores = pinning.server if pinning else set()
    busy, cpu, wall = procstat.busy_seconds(cores), procstat.cpu_seconds(pid), time.perf_counter()
    load = http_load(srv.url + case.path, case, body_file, concurrency, seconds)
    cpu = procstat.cpu_seconds(pid) - cpu
    foreign = None
    if pinning:
        foreign = max(0.0, procstat.busy_seconds(cores) - busy - cpu) / (time.perf_counter() - wall) * 100
    sample = Sample(
        case.name,
        concurrency,
        who.label,
        0,
        0,
        load.requests,
        load.seconds,
        load.p50_ms,
        load.p99_ms,
        load.errors,
        cpu / load.requests * 1e3 if load.requests else None,
        procstat.peak_rss_mb(pid) if reset else None,
        foreign,
    )
    return sample, load.errors


def lineup(group: Sequence[Case], concurrency: int, servers: dict[str, Server]) -> list[Contestant]:
    """Every server on every case of ``group`` (a case and those measured beside it, cases.MEASURED_BESIDE)."""
    lead = group[0]
    out = [Contestant("gateway", servers["gateway"], case) for case in group]
    if lead.name == "small_predict":
        # Other requests for the same case through the same process: columns of this case's row.
        out.append(Contestant("gateway+batching", servers["gateway"], cases.batched_case(), lead.name))
        out += [
            Contestant(name, servers["gateway"], cases.traffic_case(name), lead.name)
            for name in cases.TRAFFIC_DEPLOYMENTS
        ]
    out += [Contestant("floor", servers["floor"], case) for case in group]
    # The baseline spends ~0.5 s of CPU per image: one round at c=16 alone would take the whole budget.
    # It speaks TF Serving's REST API only, so V2 cases are compared with the gateway's own v1 case.
    if "baseline" in servers and not (lead.cpu_bound and concurrency > 1):
        out += [Contestant("baseline", servers["baseline"], case) for case in group if case.protocol == "v1"]
    # The group's cases send the backend the same request: one direct column is the reference for all.
    out.append(Contestant("direct", None, lead))
    return out


def blocks_of(selected: Sequence[Case]) -> list[list[Case]]:
    """The selected cases in blocks of rounds: a case joins the block of the case it is measured beside."""
    names = {case.name for case in selected}
    groups: dict[str, list[Case]] = {}
    for case in selected:
        beside = cases.MEASURED_BESIDE.get(case.name)
        groups.setdefault(beside if beside in names else case.name, []).append(case)
    return [sorted(group, key=lambda c: c.name != lead) for lead, group in groups.items()]


def rounds_of(run: Run, group: Sequence[Case], concurrency: int, ctx: Context) -> None:
    """``ctx.rounds`` interleaved rounds; round r starts r places further along the lineup."""
    who = lineup(group, concurrency, ctx.servers)
    load_before, started, orders = procstat.loadavg(), time.perf_counter(), []
    for rnd in range(ctx.rounds):
        shift = rnd % len(who)
        order = who[shift:] + who[:shift]
        orders.append([c.describe(group[0]) for c in order])
        for position, contestant in enumerate(order):
            sample, errors = measure(contestant, concurrency, ctx.duration, ctx.tmp, ctx.target, ctx.pinning)
            sample = dataclasses.replace(sample, case=contestant.row, round=rnd, position=position)
            run.samples.append(sample)
            print(report.progress(sample), flush=True)
            if errors:
                run.failures.append(f"{contestant.label} {contestant.row} c={concurrency}: {errors} errors under load")
    run.blocks.append(
        Block(group[0].name, concurrency, orders, load_before, procstat.loadavg(), time.perf_counter() - started)
    )


@dataclass(slots=True)
class Context:
    tmp: Path
    target: str
    pinning: Pinning | None
    rounds: int
    duration: float
    servers: dict[str, Server]


def gateway(ctx: Context) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    args = ["-m", "gateway", "--config", str(gateway_config(ctx.tmp, ctx.target, port))]
    return server("gateway", args, port, ctx.tmp, "/readyz", ctx.pinning.server if ctx.pinning else None)


def start_gateway(stack: ExitStack, run: Run, ctx: Context, starts: int) -> Server:
    """Start the gateway ``starts`` times (startup and idle RSS are per start); keep the last one."""
    for _ in range(starts - 1):
        with gateway(ctx) as srv:
            _record_start(run, srv)
    srv = stack.enter_context(gateway(ctx))
    _record_start(run, srv)
    return srv


def _record_start(run: Run, srv: Server) -> None:
    run.startup_s.setdefault(srv.name, []).append(srv.startup_seconds)
    run.idle_rss_mb.setdefault(srv.name, []).append(srv.idle_rss_mb)


def run_all(args: argparse.Namespace, run: Run) -> None:
    selected = [c for c in cases.all_cases() if not args.cases or c.name in args.cases]
    pinning = plan_pinning()
    if pinning:
        procstat.pin(os.getpid(), pinning.load)  # wrk and the backend inherit it
    run.meta["pinning"] = pinning.describe() if pinning else "not pinned (fewer than 2 CPUs available)"
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        target, backend_process = stack.enter_context(backend(tmp, pinning.load if pinning else None))
        ctx = Context(tmp, target, pinning, args.rounds, args.duration, {})
        server_cores = pinning.server if pinning else None
        gw = ctx.servers["gateway"] = start_gateway(stack, run, ctx, 1 if args.smoke else args.rounds)
        replies = tmp / "replies"
        replies.mkdir()
        for case in cases.all_cases():
            body, headers = verify(run, gw, case)
            (replies / case.name).write_bytes(body)
            (replies / f"{case.name}.headers.json").write_text(json.dumps(headers))
        verify(run, gw, cases.batched_case())
        for name in cases.TRAFFIC_DEPLOYMENTS:
            verify(run, gw, cases.traffic_case(name))
        fl_port = free_port()
        floor_args = ["-m", "bench.floor", str(fl_port), target, str(replies)]
        fl = stack.enter_context(server("floor", floor_args, fl_port, tmp, "/v1/models/small", server_cores))
        ctx.servers["floor"] = fl
        if not args.no_baseline:
            bl_port = free_port()
            bl_args = ["-m", "bench.baseline_proxy", str(bl_port), target]
            bl = stack.enter_context(server("baseline", bl_args, bl_port, tmp, "/v1/models/small", server_cores))
            ctx.servers["baseline"] = bl
        for srv in ctx.servers.values():
            if srv.name != "gateway":
                _record_start(run, srv)
            for case in selected:
                if srv.name != "baseline" or case.protocol == "v1":
                    verify(run, srv, case)
        run.meta["affinity"] = {
            **{name: _cpus(procstat.affinity(srv.process.pid)) for name, srv in ctx.servers.items()},
            "backend": _cpus(procstat.affinity(backend_process.pid)),
            "bench runner": _cpus(procstat.affinity(os.getpid(), tree=False)),
        }
        for group in blocks_of(selected):
            for concurrency in args.concurrency:
                if group[0].cpu_bound and concurrency > CPU_BOUND_MAX_CONCURRENCY and not args.smoke:
                    continue
                rounds_of(run, group, concurrency, ctx)
    if not args.smoke and not args.no_stages:
        stages(run, pinning)


def stages(run: Run, pinning: Pinning | None) -> None:
    """The per-stage micro-benchmark, in its own process on the server's core."""
    prefix = ["taskset", "-c", _cpus(pinning.server)] if pinning and shutil.which("taskset") else []
    command = [*prefix, sys.executable, "-m", "bench.stages", "--json"]
    done = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        run.meta["stages_error"] = done.stderr.strip().splitlines()[-1:] or ["exit " + str(done.returncode)]
        return
    run.stages = json.loads(done.stdout)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=DEFAULTS["rounds"], help="interleaved rounds (default 5)")
    parser.add_argument(
        "--duration", type=float, default=DEFAULTS["duration"], help="seconds per sample (default 2; wrk rounds it)"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=DEFAULTS["concurrency"])
    parser.add_argument("--cases", nargs="+", choices=[c.name for c in cases.all_cases()], help="default: all")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TensorFlow baseline proxy")
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage micro-benchmark")
    parser.add_argument("--smoke", action="store_true", help="one 1 s round per case at c=1; correctness only")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--from-json", type=Path, help="re-render RESULTS.md from a RESULTS.json; measure nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.concurrency, args.rounds = 1.0, [1], 1
    return args


def _git_revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gateway"], cwd=ROOT, capture_output=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" (gateway/ has uncommitted changes)" if dirty.stdout.strip() else "")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    json_path = args.output.with_suffix(".json")
    if args.from_json:
        run = Run.from_json(args.from_json)
        args.output.write_text(report.render(run))
        print(f"wrote {args.output} from {args.from_json}")
        return 0
    run = Run()
    run.meta.update(
        command=("python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])).strip(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=report.machine(platform.platform()),
        revision=_git_revision(),
        load_generator="wrk, 1 thread" if have_wrk() else "Python aiohttp client (wrk not installed)",
        rounds=args.rounds,
        duration=args.duration,
        concurrency=args.concurrency,
        cases=args.cases or [c.name for c in cases.all_cases()],
        all_cases=[c.name for c in cases.all_cases()],
        defaults=DEFAULTS,
        baseline=not args.no_baseline,
        cpu_bound_max_concurrency=CPU_BOUND_MAX_CONCURRENCY,
        smoke=args.smoke,
        load_before=procstat.loadavg(),
    )
    started = time.perf_counter()
    run_all(args, run)
    run.meta.update(load_after=procstat.loadavg(), elapsed_s=time.perf_counter() - started)
    text = report.render(run)
    print(text)
    if not args.smoke:
        args.output.write_text(text)
        json_path.write_text(run.to_json())
    for failure in run.failures:
        print("FAILED:", failure, file=sys.stderr)
    print(f"bench: {'FAILED' if run.failures else 'ok'}; every case answered correctly: {not run.failures}")
    return 1 if run.failures else 0
