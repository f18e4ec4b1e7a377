"""Request bodies through real sockets: Content-Encoding, size limits raw and inflated, slow clients.

``gateway/web/body.py`` reads the raw stream itself (aiohttp's own inflation is off), so every
case here goes in over a socket and comes back as an answer: decoded and equal to the plain
request, or a 4xx envelope with ``error`` first.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import io
import types
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from conftest import MakeGatewayClient
from harness import MODEL, GatewayClient, build_app
from multidict import CIMultiDict

from gateway.web import body

URL = f"/v1/models/{MODEL}:predict"
PLAIN = b'{"instances": [1.0, 2.0, 5.0]}'
PLAIN_ANSWER = {"predictions": [2.5, 3.0, 4.5]}
MiB = 1 << 20
DEFAULT_LIMIT = 64 * MiB


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def as_payload(data: bytes) -> bytes | io.BytesIO:
    # aiohttp's client warns about large raw bytes bodies, and warnings are errors here.
    return io.BytesIO(data) if len(data) > MiB else data


async def post(
    client: GatewayClient, data: bytes | io.BytesIO | AsyncIterator[bytes], headers: Any = None
) -> tuple[int, Any, Any]:
    async with client.post(URL, data=data, headers=headers or {}) as resp:
        return resp.status, resp.headers, orjson.loads(await resp.read())


def case_id(value: object) -> str | None:
    return f"{len(value)}B" if isinstance(value, bytes) else None


def assert_envelope(status: int, answer: Any, expected_status: int) -> None:
    assert status == expected_status, (status, answer)
    assert isinstance(answer, dict) and next(iter(answer)) == "error", answer
    assert answer["code"] == expected_status, answer


class _CountingStream:
    """A zlib decompress object that adds every byte it inflates to ``seen[0]``."""

    def __init__(self, stream: Any, seen: list[int]) -> None:
        self._stream, self._seen = stream, seen

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out: bytes = self._stream.decompress(data, max_length)
        self._seen[0] += len(out)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@pytest.fixture
def inflated_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy: the total bytes zlib inflated for the gateway's request bodies."""
    seen = [0]
    counting = types.SimpleNamespace(
        error=zlib.error,
        MAX_WBITS=zlib.MAX_WBITS,
        decompressobj=lambda wbits: _CountingStream(zlib.decompressobj(wbits), seen),
    )
    monkeypatch.setattr(body, "zlib", counting)
    return seen


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(PLAIN)),
        ("x-gzip", gzip.compress(PLAIN)),
        ("GZip", gzip.compress(PLAIN)),
        ("deflate", zlib.compress(PLAIN)),
        ("deflate", raw_deflate(PLAIN)),  # raw deflate, as some browsers send it
        ("identity", PLAIN),
        ("gzip, identity", gzip.compress(PLAIN)),
        ("deflate, gzip", gzip.compress(zlib.compress(PLAIN))),  # applied in order, undone in reverse
        ("gzip, gzip", gzip.compress(gzip.compress(PLAIN))),
    ],
    ids=case_id,
)
async def test_compressed_body_answers_like_the_plain_one(
    make_gateway_client: MakeGatewayClient, coding: str, encoded: bytes
) -> None:
    client = await make_gateway_client()
    plain = await post(client, PLAIN)
    status, _, answer = await post(client, encoded, {"Content-Encoding": coding})
    assert (status, answer) == (plain[0], plain[2]) == (200, PLAIN_ANSWER)


async def test_two_content_encoding_headers_stack(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client()
    headers = CIMultiDict([("Content-Encoding", "deflate"), ("Content-Encoding", "gzip")])
    status, _, answer = await post(client, gzip.compress(zlib.compress(PLAIN)), headers)
    assert (status, answer) == (200, PLAIN_ANSWER)


async def test_large_gzip_body_streams_in_pieces(make_gateway_client: MakeGatewayClient) -> None:
    # Over several read chunks and inflate steps, with output cut at the step size mid-match.
    numbers = b"1.0, " * (3 * MiB // 5)
    plain = b'{"instances": [' + numbers + b"2.0]}"
    client = await make_gateway_client()
    status, _, answer = await post(client, as_payload(gzip.compress(plain)), {"Content-Encoding": "gzip"})
    assert status == 200, answer
    assert len(answer["predictions"]) == len(numbers) // 5 + 1 and answer["predictions"][-1] == 3.0


async def test_gzip_body_reaches_the_gateway_compressed(
    make_gateway_client: MakeGatewayClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp's auto-decompression is off: our inflater sees the gzip magic, not JSON."""
    firsts: list[bytes] = []
    real_feed = body._Inflater.feed

    def feed(self: body._Inflater, data: bytes) -> Iterator[bytes]:
        firsts.append(data[:2])
        return real_feed(self, data)

    monkeypatch.setattr(body._Inflater, "feed", feed)
    client = await make_gateway_client()
    status, _, answer = await post(client, gzip.compress(PLAIN), {"Content-Encoding": "gzip"})
    assert (status, answer) == (200, PLAIN_ANSWER)
    assert firsts[:1] == [b"\x1f\x8b"], firsts


GARBAGE = b"this is not compressed at all, just text " * 20


@pytest.mark.parametrize(
    ("coding", "data", "expected", "words"),
    [
        ("gzip", GARBAGE, 400, "not valid gzip"),
        ("x-gzip", GARBAGE, 400, "not valid x-gzip"),
        ("deflate", GARBAGE, 400, "not valid deflate"),
        ("deflate", b"\x78\x9c" + GARBAGE, 400, "not valid deflate"),  # a zlib header, then junk
        ("gzip", gzip.compress(PLAIN)[:-6], 400, "truncated"),
        ("gzip", gzip.compress(PLAIN)[:5], 400, "truncated"),
        ("deflate", zlib.compress(PLAIN)[:-3], 400, "truncated"),
        ("deflate", b"\x78", 400, "truncated"),
        ("gzip", gzip.compress(PLAIN) + b"trailing garbage", 400, "after the end"),
        ("gzip", gzip.compress(PLAIN) * 2, 400, "after the end"),  # one member only
        ("deflate", zlib.compress(PLAIN) + b"\x00", 400, "after the end"),
        ("gzip, gzip", gzip.compress(PLAIN), 400, "gzip"),  # the inner layer is JSON, not gzip
        ("br", GARBAGE, 415, "not supported"),
        ("zstd", GARBAGE, 415, "not supported"),
        ("compress", GARBAGE, 415, "not supported"),
        ("gzip, br", GARBAGE, 415, "not supported"),
        ("gzip, gzip, gzip", GARBAGE, 415, "stacked"),
        ("x" * 5000, GARBAGE, 415, "not supported"),
    ],
    ids=lambda value: case_id(value) or (value[:20] if isinstance(value, str) else None),
)
async def test_bad_encoded_bodies_are_4xx(
    make_gateway_client: MakeGatewayClient, coding: str, data: bytes, expected: int, words: str
) -> None:
    client = await make_gateway_client()
    status, headers, answer = await post(client, data, {"Content-Encoding": coding})
    assert_envelope(status, answer, expected)
    assert words in answer["error"], answer
    if expected == 415:
        assert headers["Accept-Encoding"] == "gzip, deflate"
        assert answer["reason"] == "unsupported_media_type"


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_empty_body_with_a_coding_is_an_empty_body(make_gateway_client: MakeGatewayClient, coding: str) -> None:
    client = await make_gateway_client()
    status, _, answer = await post(client, b"", {"Content-Encoding": coding})
    assert_envelope(status, answer, 400)
    assert answer["reason"] == "invalid_argument"


@functools.cache
def gzip_bomb(inflated: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [packer.compress(block) for _ in range(inflated // MiB)]
    return b"".join([*parts, packer.flush()])


@pytest.mark.parametrize(("limit", "inflated"), [(4096, MiB), (200_000, 100 * MiB), (DEFAULT_LIMIT, 100 * MiB)])
async def test_gzip_bomb_is_413_after_inflating_no_more_than_the_limit(
    make_gateway_client: MakeGatewayClient, inflated_bytes: list[int], limit: int, inflated: int
) -> None:
    bomb = gzip_bomb(inflated)
    assert len(bomb) < min(limit, 150_000)  # under the raw limit: only inflation can trip it
    overrides = {} if limit == DEFAULT_LIMIT else {"server": {"max_request_bytes": limit}}
    client = await make_gateway_client(overrides)
    status, _, answer = await post(client, bomb, {"Content-Encoding": "gzip"})
    assert_envelope(status, answer, 413)
    assert answer["error"] == f"Request body is larger than the limit of {limit} bytes"
    assert answer["details"] == {"max_request_bytes": limit, "content_encoding": "gzip"}
    # Inflation stopped at the first byte past the limit, not at the bomb's 100 MiB.
    assert limit < inflated_bytes[0] <= limit + 1


async def test_stacked_bomb_is_bounded_in_every_layer(
    make_gateway_client: MakeGatewayClient, inflated_bytes: list[int]
) -> None:
    inner = gzip_bomb(50 * MiB)
    assert len(inner) < 100_000  # the outer layer stays under the limit; the inner one does not
    client = await make_gateway_client({"server": {"max_request_bytes": 100_000}})
    bomb = gzip.compress(inner)
    status, _, answer = await post(client, bomb, {"Content-Encoding": "gzip, gzip"})
    assert_envelope(status, answer, 413)
    assert 100_000 < inflated_bytes[0] <= len(inner) + 100_001


def not_json(size: int) -> bytes:
    return b"x" * size  # fails JSON parsing at its first byte, after the size checks


async def chunks(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_default_limit_edge_raw(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client()
    status, _, answer = await post(client, as_payload(not_json(DEFAULT_LIMIT)))
    assert_envelope(status, answer, 400)  # past the size check, refused by the JSON parser
    status, _, answer = await post(client, as_payload(not_json(DEFAULT_LIMIT + 1)))
    assert_envelope(status, answer, 413)
    assert answer["error"] == f"Request body is larger than the limit of {DEFAULT_LIMIT} bytes"
    assert answer["details"] == {"max_request_bytes": DEFAULT_LIMIT}


async def test_default_limit_edge_raw_chunked(make_gateway_client: MakeGatewayClient) -> None:
    """Without Content-Length the limit is enforced while streaming."""
    client = await make_gateway_client()
    status, _, answer = await post(client, chunks(not_json(DEFAULT_LIMIT)))
    assert_envelope(status, answer, 400)
    status, _, answer = await post(client, chunks(not_json(DEFAULT_LIMIT + 1)))
    assert_envelope(status, answer, 413)
    assert answer["details"] == {"max_request_bytes": DEFAULT_LIMIT}


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_default_limit_edge_inflated(make_gateway_client: MakeGatewayClient, coding: str) -> None:
    pack = gzip.compress if coding == "gzip" else zlib.compress
    client = await make_gateway_client()
    status, _, answer = await post(client, pack(not_json(DEFAULT_LIMIT)), {"Content-Encoding": coding})
    assert_envelope(status, answer, 400)
    status, _, answer = await post(client, pack(not_json(DEFAULT_LIMIT + 1)), {"Content-Encoding": coding})
    assert_envelope(status, answer, 413)
    assert answer["details"] == {"max_request_bytes": DEFAULT_LIMIT, "content_encoding": coding}


async def test_small_limit_edge_exact(make_gateway_client: MakeGatewayClient) -> None:
    """At a small limit a valid body of exactly the limit is served, raw and inflated."""
    plain = b'{"instances": [' + b"1.0, " * 200 + b"1.0]}"
    client = await make_gateway_client({"server": {"max_request_bytes": len(plain)}})
    assert (await post(client, plain))[0] == 200
    status, _, answer = await post(client, plain + b" ")
    assert_envelope(status, answer, 413)
    packed = gzip.compress(plain)
    assert len(packed) < len(plain)
    assert (await post(client, packed, {"Content-Encoding": "gzip"}))[0] == 200
    status, _, answer = await post(client, gzip.compress(plain + b" "), {"Content-Encoding": "gzip"})
    assert_envelope(status, answer, 413)
    assert answer["details"] == {"max_request_bytes": len(plain), "content_encoding": "gzip"}


# --------------------------------------------------------------------------- slow and vanishing clients


async def exchange(client: GatewayClient, head: bytes, parts: list[bytes | float]) -> tuple[int, Any]:
    """Send ``head`` and then ``parts`` (bytes, or seconds to pause) on a raw socket; read one answer."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head)
        for part in parts:
            if isinstance(part, bytes):
                writer.write(part)
                await writer.drain()
            else:
                await asyncio.sleep(part)
        # A hang guard, not a timing assertion: the answer is due after the 0.3 s read timeout.
        status_and_headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        lines = status_and_headers.decode("latin-1").split("\r\n")
        fields = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)}
        payload = await asyncio.wait_for(reader.readexactly(int(fields["content-length"])), 30)
        return int(lines[0].split()[1]), orjson.loads(payload)
    finally:
        writer.close()


def request_head(client: GatewayClient, length: int, extra: str = "") -> bytes:
    return (
        f"POST {URL} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


@pytest.mark.parametrize("coding", [None, "gzip"])
async def test_slow_body_is_408(make_gateway_client: MakeGatewayClient, coding: str | None) -> None:
    client = await make_gateway_client({"server": {"client_read_timeout_seconds": 0.3}})
    data = PLAIN if coding is None else gzip.compress(PLAIN)
    extra = "" if coding is None else f"Content-Encoding: {coding}\r\n"
    status, answer = await exchange(client, request_head(client, len(data), extra), [data[:10]])
    assert_envelope(status, answer, 408)
    assert answer["error"] == "Request body not received within 0.3 seconds"


async def test_body_that_arrives_in_time_in_pieces_is_served(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client({"server": {"client_read_timeout_seconds": 30}})
    data = gzip.compress(PLAIN)
    parts: list[bytes | float] = [data[:7], 0.05, data[7:15], 0.05, data[15:]]
    status, answer = await exchange(client, request_head(client, len(data), "Content-Encoding: gzip\r\n"), parts)
    assert (status, answer) == (200, PLAIN_ANSWER)


async def test_client_gone_mid_body_is_counted_as_499_not_a_500(gateway_settings: dict[str, Any]) -> None:
    # The production runner's settings: aiohttp's test server cancels handlers on disconnect instead.
    runner = web.AppRunner(build_app(gateway_settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(PLAIN)}\r\n\r\n".encode())
        writer.write(PLAIN[:10])
        await writer.drain()
        await asyncio.sleep(0.1)  # let the gateway start reading before the socket goes
        writer.close()
        await writer.wait_closed()
        async with aiohttp.ClientSession() as http:
            codes = await predict_codes(http, f"http://127.0.0.1:{port}/metrics")
    finally:
        await runner.cleanup()
    assert codes == {"499"}, codes


async def predict_codes(http: aiohttp.ClientSession, url: str) -> set[str]:
    """The HTTP codes counted for predict, once there are any (a bounded poll)."""
    for _ in range(100):
        async with http.get(url) as resp:
            text = await resp.text()
        codes = {
            line.split('code="')[1].split('"')[0]
            for line in text.splitlines()
            if line.startswith("tfs_gateway_http_requests_total{") and 'verb="predict"' in line
        }
        if codes:
            return codes
        await asyncio.sleep(0.05)
    return set()


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], ()),
        (["identity"], ()),
        (["GZIP"], ("gzip",)),
        (["gzip , identity,deflate"], ("gzip", "deflate")),
        (["deflate", "gzip"], ("deflate", "gzip")),
        ([" , "], ()),
    ],
)
def test_content_codings(values: list[str], expected: tuple[str, ...]) -> None:
    headers = CIMultiDict([("Content-Encoding", value) for value in values])
    assert body.content_codings(headers) == expected
