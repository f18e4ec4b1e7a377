"""``python -m bench.hostile``: the pathological-input corpus, each case timed against a live gateway.

Every case is a request an attacker or a careless client could send. For each one this measures,
through real sockets, the status, how long the answer took, the gateway's CPU for it (from
/proc), and the worst latency of ``/healthz`` polled on a second connection while the case was
being handled: the figure that shows whether one request can hold the event loop.

``tests/test_hostile.py`` runs the same corpus and asserts the contract (a 4xx envelope for every
case, ``/healthz`` within a second for bodies up to 8 MB, the gateway still serving afterwards);
this module prints the figures, and writes ``bench/HOSTILE.md`` from them when asked.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import procstat

MB = 1 << 20
HEALTH_POLL_SECONDS = 0.01
ANSWER_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Case:
    """One hostile request: ``build`` makes the body on demand (bodies run to 16 MB)."""

    name: str
    build: Callable[[], bytes]
    path: str = "/v1/models/small:predict"
    headers: tuple[tuple[str, str], ...] = ()
    expect: frozenset[int] = frozenset({400})


@dataclass(frozen=True, slots=True)
class Row:
    case: str
    body_bytes: int
    status: int
    envelope: bool  # a JSON object whose first key is "error"
    answer_seconds: float
    worst_health_seconds: float
    health_failures: int
    cpu_ms: float


def _deep(key: str, depth: int, *, balanced: bool, opener: bytes = b"[", closer: bytes = b"]") -> Callable[[], bytes]:
    def build() -> bytes:
        inner = opener * depth + b"1" + (closer * depth if balanced else b"")
        return b'{"' + key.encode() + b'": ' + inner + (b"}" if balanced else b"")

    return build


def _deep_objects(depth: int, *, balanced: bool) -> Callable[[], bytes]:
    def build() -> bytes:
        return b'{"instances": [' + b'{"a": ' * depth + b"1" + (b"}" * depth + b"]}" if balanced else b"")

    return build


def _literal(text: bytes) -> Callable[[], bytes]:
    return lambda: b'{"instances": [[' + text + b", 1, 2]]}"


def _regular(rows: int, cols: int) -> bytes:
    row = b"[" + b",".join([b"0.5"] * cols) + b"]"
    return b'{"instances": [' + b",".join([row] * rows) + b"]}"


def _last_byte_wrong() -> bytes:
    body = _regular(8 * MB // 400, 100)
    return body[:-2] + b"}}"


def _ragged_end() -> bytes:
    body = _regular(8 * MB // 400, 100)
    return body[:-3] + b",[0.5]]}"


def _gzip_bomb() -> bytes:
    # Zeros compress about 1000:1: ~100 KB on the wire, 100 MB inflated, past the 64 MiB limit.
    return gzip.compress(b"\0" * (100 * MB), compresslevel=9)


def _keys(count: int, *, distinct: bool) -> Callable[[], bytes]:
    def build() -> bytes:
        names = (f'"k{i}": 1' if distinct else '"k": 1' for i in range(count))
        return ('{"instances": [{' + ", ".join(names) + "}]}").encode()

    return build


def _tiny_objects(count: int) -> bytes:
    return b'{"instances": [' + b",".join([b'{"a":1}'] * count) + b"]}"


def _strings(unit: bytes, count: int) -> Callable[[], bytes]:
    return lambda: b'{"instances": ["' + unit * count + b'"]}'


def _b64(text: bytes) -> Callable[[], bytes]:
    return lambda: b'{"instances": [{"b64": "' + text + b'"}]}'


STRINGS = "/v1/models/strings:predict"
GZIP = (("Content-Encoding", "gzip"),)
_NESTED_KEYS = ("signature_name", "instances", "inputs", "ignored")

CORPUS: tuple[Case, ...] = (
    *(
        Case(f"nest {key} 10^{exp} {'balanced' if balanced else 'open'}", _deep(key, 10**exp, balanced=balanced))
        for key in _NESTED_KEYS
        for exp, balanced in ((3, True), (5, True), (6, False))
    ),
    Case("nest objects 10^5 balanced", _deep_objects(10**5, balanced=True)),
    Case("nest objects 10^6 open", _deep_objects(10**6, balanced=False)),
    Case("nest mixed 10^5", _deep("instances", 10**5, balanced=True, opener=b'[{"a":', closer=b"}]")),
    Case("integer 4,301 digits", _literal(b"9" * 4301)),
    Case("integer 10^6 digits", _literal(b"9" * 10**6)),
    Case("negative integer 10^5 digits", _literal(b"-" + b"9" * 10**5)),
    Case("decimal 10^6 digits", _literal(b"1." + b"9" * 10**6), expect=frozenset({200})),
    Case("exponent 10^5 digits", _literal(b"1e" + b"9" * 10**5)),
    Case("escapes 4 MB of \\n", _strings(b"\\n", 2 * MB), path=STRINGS, expect=frozenset({200})),
    Case("escapes 6 MB of \\u0041", _strings(b"\\u0041", MB), path=STRINGS, expect=frozenset({200})),
    Case("unpaired surrogate", _strings(b"\\ud800", 1), path=STRINGS),
    Case("invalid UTF-8", _strings(b"\xff\xfe", 1), path=STRINGS),
    Case("-NaN token", _literal(b"-NaN")),
    Case("reversed surrogates 1 MB", _strings(b"\\udc00\\ud800", 80_000), path=STRINGS),
    Case("10^6 tiny objects", lambda: _tiny_objects(10**6)),
    Case("10^5 distinct keys", _keys(10**5, distinct=True)),
    Case("10^5 duplicate keys", _keys(10**5, distinct=False)),
    Case("16 MB of invalid base64", _b64(b"!" * (16 * MB)), path=STRINGS),
    Case("16 MB of base64, wrong length", _b64(b"A" * (16 * MB + 1)), path=STRINGS),
    Case("8 MB regular array, last byte wrong", _last_byte_wrong),
    Case("8 MB regular array, ragged last row", _ragged_end),
    Case("gzip bomb", _gzip_bomb, headers=GZIP, expect=frozenset({413})),
    Case("gzip header on garbage", lambda: b"not gzip at all" * 100, headers=GZIP),
    Case("deflate header on garbage", lambda: b"not deflate" * 100, headers=(("Content-Encoding", "deflate"),)),
    Case(
        "br header on garbage",
        lambda: b"not brotli" * 100,
        headers=(("Content-Encoding", "br"),),
        expect=frozenset({400, 415}),
    ),
    Case("truncated gzip", lambda: gzip.compress(_regular(1000, 100))[:-100], headers=GZIP),
    Case(
        "deflate of deep nesting",
        lambda: zlib.compress(_deep("instances", 10**6, balanced=False)()),
        headers=(("Content-Encoding", "deflate"),),
    ),
)


@dataclass(slots=True)
class _Health:
    """``/healthz`` polled on its own connection until stopped; the worst latency seen."""

    url: str
    worst: float = 0.0
    failures: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def poll(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    async with session.get(self.url + "/healthz") as response:
                        await response.read()
                        if response.status != 200:
                            self.failures += 1
                except (aiohttp.ClientError, TimeoutError):
                    self.failures += 1
                self.worst = max(self.worst, time.perf_counter() - start)
                await asyncio.sleep(HEALTH_POLL_SECONDS)


async def run_case(session: aiohttp.ClientSession, url: str, pid: int, case: Case) -> Row:
    """Send one case while polling health; the gateway at ``url`` runs as process ``pid``."""
    body = case.build()
    health = _Health(url)
    poller = asyncio.create_task(health.poll())
    await asyncio.sleep(2 * HEALTH_POLL_SECONDS)  # the poller's connection is open before the case starts
    cpu_before = procstat.cpu_seconds(pid)
    start = time.perf_counter()
    headers = {"Content-Type": "application/json", **dict(case.headers)}
    # A stream, not bytes: aiohttp warns that a large bytes body is written in one go.
    async with session.post(url + case.path, data=io.BytesIO(body), headers=headers) as response:
        answer = await response.read()
        status = response.status
    elapsed = time.perf_counter() - start
    cpu_ms = (procstat.cpu_seconds(pid) - cpu_before) * 1000
    health.stop.set()
    await poller
    return Row(case.name, len(body), status, _is_envelope(answer), elapsed, health.worst, health.failures, cpu_ms)


def _is_envelope(answer: bytes) -> bool:
    try:
        doc = json.loads(answer)
    except ValueError:
        return False
    return isinstance(doc, dict) and next(iter(doc), None) == "error"


def per_megabyte(rows: Sequence[Row]) -> str:
    """The bound the docs quote: the worst CPU per MB among cases of at least 1 MB."""
    big = [r for r in rows if r.body_bytes >= MB]
    worst = max(big, key=lambda r: r.cpu_ms / (r.body_bytes / MB))
    return (
        f"Worst CPU per MB among bodies of 1 MB or more: {worst.cpu_ms / (worst.body_bytes / MB):.0f} ms/MB "
        f"({worst.case}). Worst /healthz latency over all cases: "
        f"{max(r.worst_health_seconds for r in rows) * 1000:.0f} ms."
    )


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| case | bytes | status | answer ms | worst /healthz ms | CPU ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.case} | {r.body_bytes:,} | {r.status} | {r.answer_seconds * 1000:.0f} | "
        f"{r.worst_health_seconds * 1000:.0f} | {r.cpu_ms:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


async def measure(url: str, pid: int, cases: Sequence[Case] = CORPUS) -> list[Row]:
    timeout = aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        return [await run_case(session, url, pid, case) for case in cases]


def main(argv: Sequence[str] | None = None) -> int:
    from bench import run  # the bench's process helpers; only the CLI needs them

    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__)
    parser.add_argument("--write", action="store_true", help="write bench/HOSTILE.md from this run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tfs-hostile-") as name, run.backend(Path(name), None) as (target, _):
        tmp = Path(name)
        port = run.free_port()
        config = run.gateway_config(tmp, target, port)
        with run.server("gateway", ["-m", "gateway", "--config", str(config)], port, tmp, "/healthz", None) as srv:
            rows = asyncio.run(measure(srv.url, srv.process.pid))
    text = table(rows) + "\n\n" + per_megabyte(rows)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(text)
    if args.write:
        header = (
            "# Hostile input: generated by `python -m bench.hostile --write`\n\n"
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, load average {load}; "
            "one request at a time, `/healthz` polled every 10 ms on a second connection.\n\n"
        )
        (Path(__file__).parent / "HOSTILE.md").write_text(header + text + "\n")
    bad = [r for r in rows if not r.envelope and r.status >= 400]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
