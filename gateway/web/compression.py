"""gzip responses for clients that accept them (``server.gzip_responses``).

Small bodies stay plain: below about a kilobyte gzip's header and the CPU spent cost more
than the bytes saved. aiohttp compresses large bodies in an executor, off the event loop.
"""

from __future__ import annotations

from aiohttp import hdrs, web

MIN_COMPRESS_BYTES = 1024


def accepts_gzip(accept_encoding: str) -> bool:
    """``gzip`` listed with a non-zero q-value (``gzip;q=0`` is a refusal)."""
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip() in ("gzip", "x-gzip", "*"):
            return not _q_is_zero(params)
    return False


def _q_is_zero(params: str) -> bool:
    name, _, value = params.strip().partition("=")
    if name.strip() != "q":
        return False
    try:
        return float(value) == 0
    except ValueError:
        return False


def maybe_compress(request: web.Request, response: web.Response) -> None:
    """gzip ``response`` when it is worth it and the client accepts it."""
    if _worth_it(request, response):
        response.enable_compression(web.ContentCoding.gzip)
    # Whether an answer is compressed depends on Accept-Encoding, so caches must key on it.
    response.headers.add(hdrs.VARY, "Accept-Encoding")


def _worth_it(request: web.Request, response: web.Response) -> bool:
    return (
        (response.content_length or 0) >= MIN_COMPRESS_BYTES
        and hdrs.CONTENT_ENCODING not in response.headers
        and accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
    )
