"""Fuzzing through real sockets: whatever comes in, a value or a 4xx envelope, never a 5xx or a hang.

The gateway runs as a child process (``python -m gateway``) in front of the fake ModelServer,
which serves from a background event loop in this process. A child process, because a request
that stalls the gateway's event loop must not stall the test: the request times out, the test
fails naming the recipe, and the child is killed and restarted for the next test.

The property, for every request: the answer arrives within :data:`REQUEST_TIMEOUT` seconds;
it is a 2xx with a JSON body, or a 4xx with the ``{"error": ...}`` envelope (``error`` first);
never a 5xx, except 502/503/504 when the fake was told to fail (and the codec's documented 501
``unimplemented`` for dtypes TF Serving's REST API cannot express); and ``/healthz`` answers on a
second connection afterwards.

Requests come from ``tests/strategies.py``: valid TF Serving structure with hostile fragments
(deep nesting, long literals, escapes, surrogates, duplicate keys, ragged arrays, garbage),
damaged framing and broken compression. A few framing errors only a raw socket can send
(chunked-encoding errors, short bodies) are fixed rows. Runs are derandomized for CI; set
``TFS_FUZZ_SCALE=20`` (examples multiplier) and ``TFS_FUZZ_RANDOM=1`` for a longer, seeded-by-time run,
and ``TFS_FUZZ_SHRINK=1`` to shrink a failure (each shrink step of a hang costs a timeout).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
import strategies
from fake_backend import MALFORMED, Abort, Delay, FakeModelServer
from gateway_process import GatewayProcess, gateway_config
from harness import DEPLOYMENTS, MODEL, install_models
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from strategies import Case

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))
import hostile  # noqa: E402
from fuzz_request import check_one, lone_surrogate  # noqa: E402

REQUEST_TIMEOUT = 10.0
HEALTH_TIMEOUT = 5.0
MAX_REQUEST_BYTES = 8 << 20
SCALE = float(os.environ.get("TFS_FUZZ_SCALE", "1"))
PHASES = (Phase.explicit, Phase.reuse, Phase.generate) + ((Phase.shrink,) if os.environ.get("TFS_FUZZ_SHRINK") else ())


def fuzz_settings(examples: int) -> settings:
    """Deterministic by default (CI), bigger and random on request."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=not os.environ.get("TFS_FUZZ_RANDOM"),
        database=None,
        phases=PHASES,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# --------------------------------------------------------------------------- the stack


class Stack:
    """The fake ModelServer on a background loop and the gateway as a child process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fake = FakeModelServer()
        self.run(self._start_fake())
        self.gateway: GatewayProcess | None = None
        self.start_gateway()

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start_fake(self) -> None:
        await self.fake.start()
        install_models(self.fake)

    def start_gateway(self) -> None:
        config = gateway_config(
            self.fake.target,
            server={
                "max_request_bytes": MAX_REQUEST_BYTES,
                "client_read_timeout_seconds": 1.0,
                "log_level": "warning",
                "access_log": False,
            },
            deployments=DEPLOYMENTS,
        )
        self.gateway = GatewayProcess(config)
        self.run(self.gateway.__aenter__())

    def restart_gateway(self) -> str:
        """Kill a stuck gateway, start a fresh one; the old one's stderr tail."""
        assert self.gateway is not None
        tail = self.gateway.stderr()[-3000:]
        self.run(self.gateway.__aexit__(None, None, None))
        self.start_gateway()
        return tail

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    @property
    def port(self) -> int:
        assert self.gateway is not None
        return self.gateway.port

    def close(self) -> None:
        if self.gateway is not None:
            self.run(self.gateway.__aexit__(None, None, None))
        self.run(self.fake.stop(None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    built = Stack()
    try:
        yield built
    finally:
        built.close()


FAULTS: dict[str, Callable[[], Any]] = {
    "unavailable": lambda: Abort(grpc.StatusCode.UNAVAILABLE, "fuzz: backend down"),
    "malformed": lambda: MALFORMED,
    "deadline": lambda: Delay(2.0),
}
FAULT_STATUSES = frozenset({502, 503, 504})
faults = st.one_of(st.none(), st.none(), st.sampled_from(sorted(FAULTS)))


def _rpc(path: str) -> str:
    for verb, rpc in ((":classify", "Classify"), (":regress", "Regress")):
        if path.endswith(verb):
            return rpc
    return "Predict"


# --------------------------------------------------------------------------- the property


def answer_problems(status: int, text: str, *, fault: bool, sent: bytes = b"") -> list[str]:
    """What is wrong with an answer: not 2xx-JSON, not a 4xx envelope, a 5xx the fake did not cause.

    ``sent``: the body as the gateway should have read it; a 2xx for a body holding an unpaired
    surrogate escape is wrong too (TF Serving's parser validates the encoding and answers 400).
    """
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if status >= 500 and not (fault and status in FAULT_STATUSES) and not _unimplemented(status, body):
        return [f"status {status} (a 5xx; fault={fault})"]
    if body is None:
        return [f"status {status} with a body that is not JSON"]
    if status < 300:
        lone = _lone_surrogate(sent)
        return [f"status {status} for a body with the unpaired surrogate in {lone!r}"] if lone is not None else []
    if not isinstance(body, dict) or next(iter(body), None) != "error" or not isinstance(body["error"], str):
        return [f"status {status} without the error envelope (error first)"]
    if not 400 <= status < 600:
        return [f"status {status} with an error envelope"]
    return []


def _unimplemented(status: int, body: Any) -> bool:
    """The gateway's own 501: a dtype TF Serving's REST API cannot express, answered as TF Serving does."""
    return status == 501 and isinstance(body, dict) and body.get("reason") == "unimplemented"


def _lone_surrogate(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON as Python reads it, so no claim about what it holds
    return lone_surrogate(doc)


def exchange(
    stack: Stack,
    method: str,
    path: str,
    headers: dict[str, str],
    data: bytes,
    fault: str | None,
    *,
    plain: bytes | None = None,
    refuse: bool = False,
) -> None:
    """Send one request, check the property, then /healthz on a new connection; restart on a hang.

    ``plain``: the body the gateway should read from ``data`` (after Content-Encoding);
    ``refuse``: a 2xx is wrong whatever the body says.
    """
    rpc = _rpc(path)
    if fault is not None:
        stack.fake.set_reply(rpc, FAULTS[fault]())
        headers = {**headers, "X-Request-Timeout": "0.5"}
    try:
        resp = requests.request(method, stack.url + path, data=data, headers=headers, timeout=REQUEST_TIMEOUT)
        status, text = resp.status_code, resp.text
    except requests.RequestException as exc:
        tail = stack.restart_gateway()
        what = f"{method} {path} ({len(data)} bytes)"
        raise AssertionError(f"{what}: no answer: {exc!r}\ngateway stderr:\n{tail}") from exc
    finally:
        stack.fake.set_reply(rpc, None)
        stack.fake.clear_calls()
    problems = answer_problems(status, text, fault=fault is not None, sent=data if plain is None else plain)
    if refuse and status < 300:
        problems.append(f"status {status} for a body whose Content-Encoding cannot be undone")
    assert not problems, f"{method} {path} ({len(data)} bytes): {problems}: {text[:500]!r}"
    assert_healthy(stack)


def assert_healthy(stack: Stack) -> None:
    try:
        health = requests.get(stack.url + "/healthz", timeout=HEALTH_TIMEOUT)
    except requests.RequestException as exc:
        tail = stack.restart_gateway()
        raise AssertionError(f"/healthz did not answer after the request: {exc!r}\ngateway stderr:\n{tail}") from exc
    assert health.status_code == 200, health.text


# --------------------------------------------------------------------------- the issue-9 findings

TYPES = "/v1/models/types:predict"
PREDICT = f"/v1/models/{MODEL}:predict"
ISSUE_9 = [
    Case(PREDICT, {"signature_name": hostile.Deep(500_000)}),
    Case(PREDICT, {"instances": hostile.Deep(100_000)}),
    Case(PREDICT, {"ignored": hostile.Deep(100_000, "object")}),
    Case(PREDICT, {"instances": [[hostile.LongNumber(5_000)]]}),
    Case(PREDICT, {"instances": [1.0]}, encoding="gzip", defect="garbage"),
    Case(TYPES, {"signature_name": "string", "inputs": [hostile.Surrogate(0)]}),
]


def with_examples(cases: list[Case]) -> Callable[[Any], Any]:
    def decorate(test: Any) -> Any:
        for case in reversed(cases):
            test = example(case=case, fault=None)(test)
        return test

    return decorate


# --------------------------------------------------------------------------- Hypothesis over HTTP


@fuzz_settings(150)
@with_examples(ISSUE_9)
@given(case=strategies.cases(), fault=faults)
def test_hostile_requests(stack: Stack, case: Case, fault: str | None) -> None:
    headers, data = case.wire()
    exchange(stack, "POST", case.path, headers, data, fault, plain=case.body(), refuse=case.must_refuse())


@fuzz_settings(60)
@given(case=strategies.cases(compressed=True), fault=st.none())
def test_malformed_compression(stack: Stack, case: Case, fault: str | None) -> None:
    headers, data = case.wire()
    exchange(stack, "POST", case.path, headers, data, fault, plain=case.body(), refuse=case.must_refuse())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=24,
)
KEYS = st.sampled_from(["instances", "inputs", "signature_name", "examples", "context", "x", "b64"])
BODIES = st.dictionaries(KEYS, JSON, max_size=3)
SEGMENTS = st.sampled_from(
    [
        "v1",
        "models",
        MODEL,
        "my-dep",
        "model-serving",
        "versions",
        "labels",
        "1",
        "stable",
        "metadata",
        ":predict",
        ":classify",
        ":regress",
        ":PREDICT",
        "%2F",
        "%00",
        "..",
        "",
        "x" * 300,
        "%zz",
        "9" * 25,
    ]
)
PATHS = st.lists(SEGMENTS, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts).replace("/:", ":"))


@fuzz_settings(60)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), path=PATHS)
def test_routes(stack: Stack, method: str, path: str) -> None:
    exchange(stack, method, path, {}, b"{}", None)


@fuzz_settings(60)
@given(body=BODIES, verb=st.sampled_from(["predict", "classify", "regress"]))
def test_json_bodies(stack: Stack, body: dict[str, Any], verb: str) -> None:
    exchange(stack, "POST", f"/v1/models/{MODEL}:{verb}", {}, json.dumps(body, allow_nan=True).encode(), None)


@fuzz_settings(40)
@given(data=st.binary(max_size=64))
def test_raw_bodies(stack: Stack, data: bytes) -> None:
    exchange(stack, "POST", "/model-serving/my-dep:predict", {}, data, None)


# --------------------------------------------------------------------------- framing over a raw socket

HEAD = f"POST {PREDICT} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\nConnection: close\r\n"
BODY = b'{"instances": [1.0, 2.0]}'
CHUNKED = HEAD + "Transfer-Encoding: chunked\r\n\r\n"
# (id, bytes, half-close after sending, an answer is required, the answer must be the gateway's envelope)
FRAMING = [
    ("chunked-ok", CHUNKED, b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY),
     False, True, False),
    ("chunk-size-not-hex", CHUNKED, b"zz\r\n{}\r\n0\r\n\r\n", False, True, True),
    ("chunk-longer-than-said", CHUNKED, b"2\r\n{}}}}\r\n0\r\n\r\n", False, True, True),
    ("chunk-no-crlf", CHUNKED, b"2\r\n{}0\r\n\r\n", False, True, True),
    ("chunk-huge-size", CHUNKED, b"ffffffffffffffff\r\n{}\r\n", True, False, True),
    ("chunked-cut-then-eof", CHUNKED, b"10\r\n{\"inst", True, False, True),
    ("chunked-gzip-garbage", HEAD + "Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n",
     b"5\r\nhello\r\n0\r\n\r\n", False, True, True),
    ("short-body-then-eof", HEAD + "Content-Length: 100\r\n\r\n", BODY, True, False, True),
    ("short-body-then-wait", HEAD + "Content-Length: 100\r\n\r\n", BODY, False, True, True),
    ("length-and-chunked", HEAD + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     b"5\r\nhello\r\n0\r\n\r\n", False, True, False),
    ("negative-length", HEAD + "Content-Length: -1\r\n\r\n", BODY, False, True, False),
    ("length-not-a-number", HEAD + "Content-Length: 1x\r\n\r\n", BODY, False, True, False),
    ("two-lengths", HEAD + "Content-Length: 25\r\nContent-Length: 26\r\n\r\n", BODY, False, True, False),
    ("gzip-cut-then-eof", HEAD + "Content-Encoding: gzip\r\nContent-Length: 400\r\n\r\n",
     hostile.encode(BODY, "gzip", "truncated", 12)[1], True, False, True),
]  # fmt: skip


def _parse_response(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return status, body.decode("utf-8", "replace")


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def raw_exchange(port: int, head: bytes, body: bytes, *, split: bool, half_close: bool) -> bytes:
    """Send raw bytes, optionally half-close, read until the server closes; b"" if it never answered.

    ``split``: the body follows the head after a pause, so the gateway's handler is already reading
    it when the framing error appears (else aiohttp's parser may meet it before any handler runs).
    """
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as sock:
        if split:
            sock.sendall(head)
            time.sleep(0.05)
            sock.sendall(body)
        else:
            sock.sendall(head + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if _complete(b"".join(chunks)):
                break  # aiohttp may linger (drain the unread body) before it closes; the answer is here
    return b"".join(chunks)


def _complete(raw: bytes) -> bool:
    head, found, body = raw.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return body.endswith(b"0\r\n\r\n")


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "head-then-body"])
@pytest.mark.parametrize(
    ("head", "body", "half_close", "must_answer", "envelope"), [row[1:] for row in FRAMING], ids=[r[0] for r in FRAMING]
)
def test_broken_framing(
    stack: Stack, head: str, body: bytes, half_close: bool, must_answer: bool, envelope: bool, split: bool
) -> None:
    """Never a 5xx or a hang; once the handler reads the body, errors are the gateway's envelope.

    When head and body arrive together, aiohttp's HTTP parser can meet a bad chunk before any
    handler runs and answers its own plain-text 400 (no envelope is possible there).
    """
    try:
        raw = raw_exchange(stack.port, head.encode(), body, split=split, half_close=half_close)
    except TimeoutError:
        tail = stack.restart_gateway()
        raise AssertionError(f"no answer and no close within {REQUEST_TIMEOUT} s\n{tail}") from None
    assert raw or not must_answer, "the gateway closed the connection without answering"
    if raw:
        status, text = _parse_response(raw)
        assert status < 500, (status, text[:500])
        if (envelope and split) or text.startswith("{"):
            assert not answer_problems(status, text, fault=False), (status, text[:500])
    assert_healthy(stack)


# --------------------------------------------------------------------------- the parser in-process


class _Stalled(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Stalled


@fuzz_settings(200)
@given(request=strategies.hostile_documents(strategies.valid_requests))
def test_codec_only_raises_client_errors(request: tuple[str, Any]) -> None:
    """The parser and codec alone (no sockets), on the same hostile documents, each within 10 s."""
    body = hostile.render(request[1])
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, REQUEST_TIMEOUT)
    try:
        check_one(body)
    except _Stalled:
        raise AssertionError(f"the parser took more than {REQUEST_TIMEOUT} s on {len(body)} bytes") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("target", "corpus", "runs"),
    [("fuzz_request.py", "corpus", 1500), ("fuzz_oip_binary.py", "corpus_oip", 3000)],
    ids=["parser", "oip_binary"],
)
def test_atheris_target(tmp_path: Path, target: str, corpus: str, runs: int) -> None:
    """A brief coverage-guided run of each target over its committed corpus (new inputs go to tmp_path)."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / target),
            str(tmp_path),
            str(ROOT / "fuzz" / corpus),
            f"-atheris_runs={runs}",
            "-timeout=30",  # instrumented code runs ~10x slower; a real stall takes hours
            "-seed=1",  # the same mutations every CI run
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Done {runs}" in result.stderr


# --------------------------------------------------------------------------- the OIP binary framing, over HTTP

# Signatures of the fake's ``types`` model (input ``x``) by the OIP datatype they take, and ``multi``.
OIP_TYPES = {"float": "FP32", "string": "BYTES", "bool": "BOOL", "int64": "INT64", "half": "FP16", "uint16": "UINT16"}
OIP_ITEM_BYTES = {"FP32": 4, "BOOL": 1, "INT64": 8, "FP16": 2, "UINT16": 2}
HEADER_LENGTH = "Inference-Header-Content-Length"


@st.composite
def oip_binary_requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    """A V2 infer request whose binary framing goes wrong in one or more of the ways issue 11 lists.

    Header length past the body, zero, off by a few or not a number; binary_data_size negative, huge,
    non-integer or not summing to the body; BYTES length prefixes truncated or lying; shapes whose
    dims multiply past int64 (zero elements included); duplicate input names; trailing bytes.
    """
    if draw(st.booleans()):
        signature = draw(st.sampled_from(sorted(OIP_TYPES)))
        path, names, params = "/v2/models/types/infer", ["x"], {"signature_name": signature}
        datatypes = [OIP_TYPES[signature]]
    else:
        path, names, params, datatypes = "/v2/models/multi/infer", ["alpha", "beta"], {}, ["FP32", "FP32"]
    if draw(st.integers(0, 5)) == 0:
        names = [*names, names[0]]  # a duplicate name
        datatypes = [*datatypes, datatypes[0]]
    entries, segments = [], []
    for name, datatype in zip(names, datatypes, strict=True):
        shape = draw(
            st.one_of(
                st.lists(st.integers(0, 3), min_size=1, max_size=2),
                st.sampled_from([[0, 2**62, 4], [2**40, 2**40, 0], [2**63 - 1], [0, 2**63 - 1], [-1], [2**64]]),
            )
        )
        count = math.prod(shape) if all(0 <= d < 2**20 for d in shape) else 0
        if datatype == "BYTES":
            values = [draw(st.binary(max_size=5)) for _ in range(count)]
            segment = b"".join(
                struct.pack("<I", len(v) + draw(st.sampled_from([0, 0, 0, 1, 2**32 - 1 - len(v)]))) + v for v in values
            )
            if draw(st.integers(0, 4)) == 0:
                segment = segment[: draw(st.integers(0, max(len(segment) - 1, 0)))]  # a truncated prefix
        else:
            segment = draw(
                st.binary(min_size=count * OIP_ITEM_BYTES[datatype], max_size=count * OIP_ITEM_BYTES[datatype])
            )
            if datatype == "BOOL":
                segment = bytes(b & draw(st.sampled_from([1, 1, 0xFF])) for b in segment)
        size = draw(st.one_of(st.just(len(segment)), st.sampled_from([-1, len(segment) + 3, 2**64, 1.5, "8", None])))
        entry: dict[str, Any] = {
            "name": name,
            "datatype": datatype,
            "shape": shape,
            "parameters": {"binary_data_size": size},
        }
        entries.append(entry)
        segments.append(segment)
    header = json.dumps({"inputs": entries, "parameters": params}).encode()
    body = header + b"".join(segments) + draw(st.sampled_from([b"", b"", b"\0", b"xyz"]))
    length = draw(
        st.one_of(
            st.just(str(len(header))),
            st.sampled_from(["0", str(len(body) + 1), "-1", "1e3", "12 ", "99999999999999999999", "+5"]),
            st.integers(-3, 3).map(lambda k: str(len(header) + k)),
        )
    )
    return path, body, {HEADER_LENGTH: length, "Content-Type": "application/octet-stream"}


def oip_problems(status: int, headers: Any, content: bytes) -> list[str]:
    """A V2 answer is a 2xx whose framing adds up, or a 4xx envelope; never a 5xx (501 only as the envelope)."""
    if status >= 500 and status != 501:
        return [f"status {status}"]
    if status >= 300:
        try:
            doc = json.loads(content)
        except ValueError:
            return [f"status {status} with a body that is not JSON"]
        return [] if isinstance(doc, dict) and next(iter(doc), None) == "error" else [f"{status} without the envelope"]
    length = int(headers.get(HEADER_LENGTH, len(content)))
    doc = json.loads(content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in doc["outputs"] if "parameters" in o]
    return [] if length + sum(sizes) == len(content) else ["reply segments do not add up"]


@fuzz_settings(120)
@given(request=oip_binary_requests())
def test_hostile_oip_binary_framing(stack: Stack, request: tuple[str, bytes, dict[str, str]]) -> None:
    path, body, headers = request
    try:
        resp = requests.post(stack.url + path, data=body, headers=headers, timeout=REQUEST_TIMEOUT)
    except requests.RequestException as exc:
        tail = stack.restart_gateway()
        raise AssertionError(f"POST {path} ({len(body)} bytes): no answer: {exc!r}\ngateway stderr:\n{tail}") from exc
    problems = oip_problems(resp.status_code, resp.headers, resp.content)
    assert not problems, f"POST {path} {headers}: {problems}: {resp.content[:500]!r}"
    assert_healthy(stack)
