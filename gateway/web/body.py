"""Request bodies: read by us with hard bounds, inflated by us, and the one decoding boundary.

aiohttp's own body decompression is off for the gateway's requests (``auto_decompress=False``
in the app's ``handler_args``), so :func:`read_body` sees the bytes the client sent and is the
only place a body is inflated. Its contract, for a body limit ``L`` (``server.max_request_bytes``):

* **Raw size.** A ``Content-Length`` above ``L`` is refused before anything is read; a body that
  streams past ``L`` bytes is refused as soon as it does. Both are ``PayloadTooLarge`` (413,
  details ``{"max_request_bytes": L}``). Exactly ``L`` bytes pass.
* **Content-Encoding.** ``identity`` passes. ``gzip`` / ``x-gzip`` (one member) and ``deflate``
  (zlib-wrapped, or raw deflate as some browsers send it) are inflated incrementally by
  :mod:`zlib`, at most :data:`INFLATE_STEP` bytes per call, so each call holds the event loop for
  about a millisecond and the loop is yielded to between steps. Inflated output past ``L`` is a
  413 as soon as byte ``L + 1`` appears: a gzip bomb costs at most ``L`` bytes of output work and
  memory. Up to :data:`MAX_CODINGS` stacked codings (``gzip, gzip``) are undone in reverse order,
  every layer bounded the same way. ``br``, ``zstd`` and anything else are ``UnsupportedMediaType``
  (415, with ``Accept-Encoding: gzip, deflate`` as RFC 7694 asks).
* **Corrupt data.** Bytes that do not inflate, a stream that ends early, or bytes after the end of
  the compressed stream are ``InvalidArgument`` (400) naming the coding. An empty body is empty
  whatever the header says.
* **Slow clients.** The whole read, inflation included, must finish within ``timeout`` seconds
  (``server.client_read_timeout_seconds``), or ``RequestTimeout`` (408). A body already buffered
  is read without a timer.
* **aiohttp's stream errors** (``RequestPayloadError``, ``http_exceptions.*``) become 400-class
  errors by :func:`from_aiohttp`, the one mapping the middleware also uses; a client that hangs up
  mid-body is ``ClientClosedRequest`` (499), which nobody receives but nobody logs as a bug either;
  running out of memory while collecting is a 413.

Memory: the raw chunks buffered by aiohttp (at most about twice :data:`READ_CHUNK`), plus the body
being collected (≤ ``L``, plus one step while inflating), plus the final join (≤ ``L``).

:func:`decoding` is the other half of the boundary: the parse steps of a body run inside it, and
there the stdlib / orjson decoder exceptions mean "the client's bytes do not decode", so they
become client errors. Anywhere else the same exceptions are bugs and stay 500s.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Final, Literal

from aiohttp import hdrs, http_exceptions, web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiMapping

from gateway.errors import (
    ClientClosedRequest,
    GatewayError,
    HttpError,
    InvalidArgument,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)

READ_CHUNK: Final = 1 << 20
"""Raw bytes aiohttp may buffer before it pauses the socket (it pauses at twice this)."""

INFLATE_STEP: Final = 1 << 20
"""Most inflated bytes one zlib call may produce: about a millisecond of C time."""

MAX_CODINGS: Final = 2
"""Most stacked content codings undone; each layer costs a zlib state, so the count is bounded."""

ACCEPTED_CODINGS: Final = "gzip, deflate"
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS
_ZLIB_WBITS: Final = zlib.MAX_WBITS
_RAW_WBITS: Final = -zlib.MAX_WBITS
_CODINGS: Final = frozenset({"gzip", "x-gzip", "deflate"})
_NO_CODING: Final = frozenset({"", "identity"})
_MAX_ECHO: Final = 64


async def read_body(request: web.Request, *, limit: int, timeout: float | None) -> bytes:
    """The body as the client meant it: inflated, at most ``limit`` bytes (see the module docstring)."""
    codings = content_codings(request.headers)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    content = request.content
    try:
        if content.is_eof():
            return await _collect(content, codings, limit)  # already buffered: nothing for a slow client to stall
        async with asyncio.timeout(timeout):
            return await _collect(content, codings, limit)
    except TimeoutError:
        raise RequestTimeout(f"Request body not received within {timeout:g} seconds") from None
    except (RequestPayloadError, http_exceptions.HttpProcessingError) as exc:
        raise from_aiohttp(exc) from None
    except ConnectionResetError:
        raise ClientClosedRequest("The client closed the connection before sending the whole body") from None
    except MemoryError:
        raise PayloadTooLarge(
            "Request body needs more memory than the gateway has", details={"max_request_bytes": limit}
        ) from None


def content_codings(headers: MultiMapping[str]) -> tuple[str, ...]:
    """The codings to undo, in the order they were applied; ``identity`` dropped.

    Raises ``UnsupportedMediaType`` for a coding the gateway cannot undo or too many of them.
    """
    values = headers.getall(hdrs.CONTENT_ENCODING, ())
    codings = tuple(c for value in values for item in value.split(",") if (c := item.strip().lower()) not in _NO_CODING)
    for coding in codings:
        if coding not in _CODINGS:
            raise _unsupported(
                f"Content-Encoding {coding[:_MAX_ECHO]!r} is not supported; use gzip, deflate or identity"
            )
    if len(codings) > MAX_CODINGS:
        raise _unsupported(f"At most {MAX_CODINGS} stacked content codings are supported, not {len(codings)}")
    return codings


def too_large(limit: int, coding: str | None = None) -> PayloadTooLarge:
    details: dict[str, object] = {"max_request_bytes": limit}
    if coding is not None:
        details["content_encoding"] = coding  # the limit applies after decompression
    return PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes", details=details)


def from_aiohttp(exc: RequestPayloadError | http_exceptions.HttpProcessingError) -> GatewayError:
    """The client error for a failure aiohttp reports while it reads or decodes a body."""
    if isinstance(exc, RequestPayloadError):
        return InvalidArgument(f"Request body could not be read: {_brief(exc)}")
    code = exc.code if 400 <= exc.code < 500 else 400  # the base class carries code 0
    message = f"Request body could not be read: {_brief(exc.message or type(exc).__name__)}"
    if code == 400:
        return InvalidArgument(message)
    return HttpError(message, status=code)


class _Decoding:
    """Run a body's parse steps inside this: their decoder failures become client errors.

    Inside the block, the exceptions the stdlib and orjson decoders raise on hostile input
    mean the body does not decode, so they are translated:

    * ``ValueError`` (``json.JSONDecodeError``, ``orjson.JSONDecodeError``, ``UnicodeError``,
      the int digit limit, ...), ``OverflowError`` -> ``InvalidArgument`` (400);
    * ``RecursionError`` -> ``InvalidArgument`` (400), the body nests too deeply;
    * ``MemoryError`` -> ``PayloadTooLarge`` (413).

    ``GatewayError``s pass through unchanged, and so does everything else (``TypeError``,
    ``KeyError``...): those are bugs and must stay logged 500s. Keep only decoding inside the
    block, not backend calls or response encoding, or a bug there would become a 400.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None or not isinstance(exc, _DECODER_ERRORS):
            return False  # a class, not a generator: entering and leaving cost next to nothing
        if isinstance(exc, RecursionError):
            raise InvalidArgument("JSON body is nested too deeply to parse") from None
        if isinstance(exc, MemoryError):
            raise PayloadTooLarge("Request body needs more memory to decode than the gateway has") from None
        raise InvalidArgument(f"Could not parse the request body: {_brief(exc)}") from None


# RecursionError is a RuntimeError, so it is named; GatewayErrors are none of these.
_DECODER_ERRORS = (RecursionError, MemoryError, ValueError, OverflowError)
_DECODING = _Decoding()


def decoding() -> _Decoding:
    """The decoding boundary (see ``_Decoding``): ``with decoding(): <parse steps>``."""
    return _DECODING


async def _collect(content: StreamReader, codings: tuple[str, ...], limit: int) -> bytes:
    content.set_read_chunk_size(READ_CHUNK)
    layers = [_Inflater(coding, limit) for coding in reversed(codings)]
    pieces: list[bytes] = []
    raw = since_yield = 0
    while chunk := await content.readany():
        raw += len(chunk)
        if raw > limit:
            raise too_large(limit)
        for piece in _through(layers, chunk):
            pieces.append(piece)
            since_yield += len(piece)
            if since_yield >= INFLATE_STEP and layers:
                since_yield = 0
                await asyncio.sleep(0)  # let health probes and other requests run between steps
    if raw and layers:
        for layer in layers:
            layer.finish()
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _through(layers: Sequence[_Inflater], data: bytes) -> Iterator[bytes]:
    if not layers:
        yield data
        return
    for piece in layers[0].feed(data):
        yield from _through(layers[1:], piece)


class _Inflater:
    """One zlib layer, fed in pieces; yields at most ``INFLATE_STEP`` bytes per zlib call."""

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = coding
        self._limit = limit
        self._out = 0
        self._head = b""  # deflate: the first bytes, until the wrapper can be told from raw
        self._zlib: zlib._Decompress | None = None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            data = self._head + data
            if self.coding == "deflate" and len(data) < 2:
                self._head = data
                return
            self._zlib = zlib.decompressobj(self._wbits(data))
        stream = self._zlib
        if stream.eof:
            if data:
                raise self._trailing()
            return
        while True:
            cap = min(INFLATE_STEP, self._limit - self._out + 1)
            try:
                piece = stream.decompress(data, cap)
            except zlib.error as exc:
                raise InvalidArgument(
                    f"Request body is not valid {self.coding} data ({exc})", details={"content_encoding": self.coding}
                ) from None
            self._out += len(piece)
            if self._out > self._limit:
                raise too_large(self._limit, self.coding)
            if piece:
                yield piece
            if stream.eof:
                if stream.unused_data:
                    raise self._trailing()
                return
            data = stream.unconsumed_tail
            # Output cut at the cap with the input used up may leave output inside zlib: ask again.
            if not data and len(piece) < cap:
                return

    def finish(self) -> None:
        """Raise unless the compressed stream ended, complete."""
        if self._zlib is None or not self._zlib.eof:
            raise InvalidArgument(
                f"Request body ends before its {self.coding} stream does (truncated)",
                details={"content_encoding": self.coding},
            )

    def _wbits(self, first: bytes) -> int:
        if self.coding != "deflate":
            return _GZIP_WBITS
        # RFC 1950 header: compression method 8, and the two bytes a multiple of 31.
        zlib_wrapped = first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return _ZLIB_WBITS if zlib_wrapped else _RAW_WBITS

    def _trailing(self) -> InvalidArgument:
        return InvalidArgument(
            f"Request body has data after the end of its {self.coding} stream",
            details={"content_encoding": self.coding},
        )


def _unsupported(message: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        message,
        details={"supported_content_encodings": ["gzip", "deflate", "identity"]},
        headers={hdrs.ACCEPT_ENCODING: ACCEPTED_CODINGS},
    )


def _brief(exc: object, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."
