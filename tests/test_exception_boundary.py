"""The one exception boundary, through real sockets: every foreign error becomes an envelope.

The aiohttp classes are found by introspection, so a class a future aiohttp adds is covered
without touching this file. Each is injected two ways into a real request:

* **stream**: set on the request's body stream, exactly as aiohttp's parser delivers its own
  errors, so it comes out of ``content.readany()`` inside ``gateway.web.body.read_body``;
* **handler**: raised from the handling itself, so the middleware's safety net must map it.

The decoder exceptions are raised inside ``body.decoding()`` (a 4xx) and, as a control, outside
it, where they are bugs and must stay a logged 500 with no traceback in the answer.
"""

from __future__ import annotations

import binascii
import inspect
import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestPayloadError
from harness import MODEL, GatewayClient, build_app

from gateway.web import body

AiohttpClient = Callable[..., Awaitable[GatewayClient]]
URL = f"/v1/models/{MODEL}:predict"
PLAIN = b'{"instances": [1.0]}'
HOW = "X-Test-Raise"  # stream | handler | decoding


def all_subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def aiohttp_body_errors() -> list[type[Exception]]:
    """Every exception aiohttp's HTTP layer defines, plus the payload error its parser raises."""
    found = [
        value
        for value in vars(http_exceptions).values()
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == http_exceptions.__name__
    ]
    return [*found, RequestPayloadError]


def aiohttp_http_errors() -> list[type[web.HTTPException]]:
    """Every ``web.HTTPError`` subclass aiohttp defines with a status (>= 400)."""
    return sorted(
        {cls for cls in all_subclasses(web.HTTPError) if cls.__module__.startswith("aiohttp.") and cls.status_code > 0},
        key=lambda cls: (cls.status_code, cls.__name__),
    )


DECODER_ERRORS: list[tuple[BaseException, int]] = [
    (ValueError("Exceeds the limit (4300 digits) for integer string conversion"), 400),
    (UnicodeError("bad text"), 400),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 400),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), 400),
    (json.JSONDecodeError("Expecting value", "x", 0), 400),
    (orjson.JSONDecodeError("unexpected character", "x", 0), 400),
    (binascii.Error("Incorrect padding"), 400),
    (RecursionError("maximum recursion depth exceeded"), 400),
    (OverflowError("int too large to convert to float"), 400),
    (MemoryError(), 413),
]


def case_id(value: object) -> str:
    return type(value).__name__ if isinstance(value, BaseException) else str(value)


SAMPLE_ARGS: dict[str, Any] = {
    "method": "POST",
    "allowed_methods": ["GET"],
    "max_size": 64,
    "actual_size": 65,
    "link": "https://example.invalid/why",
    "message": "injected failure",
    "line": "bad line",
    "hdr": "Bad-Header",
    "limit": 8190,
}


def instantiate(cls: type[BaseException]) -> BaseException:
    """An instance built from the constructor's required parameters, whatever they are."""
    try:
        params = inspect.signature(cls).parameters
    except ValueError:  # a plain Exception subclass: the builtin constructor has no signature
        return cls("injected failure")
    kwargs = {
        name: SAMPLE_ARGS.get(name, "x")
        for name, param in params.items()
        if param.default is inspect.Parameter.empty
        and param.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    return cls(**kwargs)


def expected_status(exc: BaseException) -> int:
    if isinstance(exc, web.HTTPException):
        return exc.status  # 4xx keep their status; a 5xx one is aiohttp's own verdict, kept too
    if isinstance(exc, http_exceptions.HttpProcessingError) and 400 <= exc.code < 500:
        return exc.code
    return 400


class Injector:
    """A test-only middleware inside the gateway's: raises ``self.exc`` the way ``HOW`` asks."""

    def __init__(self) -> None:
        self.exc: BaseException | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        how, exc = request.headers.get(HOW), self.exc
        if exc is None or how is None:
            return await handler(request)  # type: ignore[no-any-return]
        if how == "stream":
            request.content.set_exception(exc)  # what aiohttp's parser does with its errors
            return await handler(request)  # type: ignore[no-any-return]
        if how == "decoding":
            with body.decoding():
                raise exc
        raise exc


@pytest.fixture
async def injected(aiohttp_client: AiohttpClient, gateway_settings: dict[str, Any]) -> tuple[GatewayClient, Injector]:
    app = build_app(gateway_settings)
    injector = Injector()
    app.middlewares.append(injector.middleware)  # runs inside the gateway middleware
    return await aiohttp_client(app), injector


async def answer(client: GatewayClient, injector: Injector, exc: BaseException, how: str) -> tuple[int, str]:
    injector.exc = exc
    async with client.post(URL, data=PLAIN, headers={HOW: how}) as resp:
        return resp.status, await resp.text()


def envelope_problem(status: int, text: str, expected: int) -> str | None:
    """Why this answer is not the envelope expected, or None."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return f"not JSON: {text[:200]!r}"
    if status != expected or not isinstance(parsed, dict) or next(iter(parsed), None) != "error":
        return f"{status} {text[:200]}"
    if parsed.get("code") != expected or "request_id" not in parsed or "Traceback" in text:
        return f"{status} {text[:200]}"
    return None


def test_introspection_finds_the_classes_we_know_of() -> None:
    body_errors = aiohttp_body_errors()
    http_errors = aiohttp_http_errors()
    for known in (
        http_exceptions.ContentEncodingError,
        http_exceptions.TransferEncodingError,
        http_exceptions.ContentLengthError,
        http_exceptions.LineTooLong,
        RequestPayloadError,
    ):
        assert known in body_errors
    assert {web.HTTPRequestEntityTooLarge, web.HTTPUnsupportedMediaType, web.HTTPBadRequest} <= set(http_errors)
    assert len(body_errors) >= 10 and len(http_errors) >= 35
    assert all(cls.status_code >= 400 for cls in http_errors)


@pytest.mark.parametrize("how", ["stream", "handler"])
async def test_every_aiohttp_body_error_is_a_4xx_envelope(injected: tuple[GatewayClient, Injector], how: str) -> None:
    client, injector = injected
    problems = {}
    for cls in aiohttp_body_errors():
        exc = instantiate(cls)
        status, text = await answer(client, injector, exc, how)
        expected = expected_status(exc)
        assert 400 <= expected < 500
        if problem := envelope_problem(status, text, expected):
            problems[cls.__name__] = problem
    assert not problems, problems


@pytest.mark.parametrize("how", ["stream", "handler"])
async def test_every_aiohttp_http_error_is_an_envelope_with_its_status(
    injected: tuple[GatewayClient, Injector], how: str
) -> None:
    client, injector = injected
    problems = {}
    for cls in aiohttp_http_errors():
        exc = instantiate(cls)
        status, text = await answer(client, injector, exc, how)
        if problem := envelope_problem(status, text, expected_status(exc)):
            problems[cls.__name__] = problem
    assert not problems, problems


@pytest.mark.parametrize("cls", [web.HTTPError, web.HTTPClientError, web.HTTPServerError])
async def test_abstract_http_errors_are_500_envelopes_not_a_broken_status_line(
    injected: tuple[GatewayClient, Injector], cls: type[web.HTTPException]
) -> None:
    client, injector = injected
    assert cls.status_code < 0  # what makes them abstract
    status, text = await answer(client, injector, cls(), "handler")
    assert envelope_problem(status, text, 500) is None, (status, text)


async def test_aiohttp_client_errors_are_4xx(injected: tuple[GatewayClient, Injector]) -> None:
    client, injector = injected
    statuses = {}
    for cls in (*aiohttp_body_errors(), *[c for c in aiohttp_http_errors() if issubclass(c, web.HTTPClientError)]):
        statuses[cls.__name__] = (await answer(client, injector, instantiate(cls), "stream"))[0]
    assert all(400 <= status < 500 for status in statuses.values()), statuses


@pytest.mark.parametrize(
    ("exc", "expected"), DECODER_ERRORS, ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v)
)
async def test_decoder_errors_inside_decoding_are_4xx(
    injected: tuple[GatewayClient, Injector], exc: BaseException, expected: int
) -> None:
    client, injector = injected
    status, text = await answer(client, injector, exc, "decoding")
    assert envelope_problem(status, text, expected) is None, (status, text)
    reason = orjson.loads(text)["reason"]
    assert reason == ("payload_too_large" if expected == 413 else "invalid_argument")


@pytest.mark.parametrize(
    ("exc", "expected"), DECODER_ERRORS, ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v)
)
async def test_decoder_errors_elsewhere_are_logged_500s(
    injected: tuple[GatewayClient, Injector], caplog: pytest.LogCaptureFixture, exc: BaseException, expected: int
) -> None:
    client, injector = injected
    with caplog.at_level(logging.ERROR, logger="tfs_gateway"):
        status, text = await answer(client, injector, exc, "handler")
    assert envelope_problem(status, text, 500) is None, (status, text)
    assert orjson.loads(text)["error"] == "Internal error"
    assert any(record.exc_info and record.exc_info[1] is exc for record in caplog.records)


@pytest.mark.parametrize(
    "exc", [KeyError("signature"), TypeError("bug"), AttributeError("bug"), ConnectionResetError()]
)
async def test_unknown_errors_in_a_handler_are_500_without_traceback(
    injected: tuple[GatewayClient, Injector], caplog: pytest.LogCaptureFixture, exc: BaseException
) -> None:
    client, injector = injected
    with caplog.at_level(logging.ERROR, logger="tfs_gateway"):
        status, text = await answer(client, injector, exc, "handler")
    assert envelope_problem(status, text, 500) is None, (status, text)
    parsed = orjson.loads(text)
    assert parsed["error"] == "Internal error" and parsed["reason"] == "internal"
    assert "Traceback" not in text and "test_exception_boundary" not in text
    assert any(record.exc_info and record.exc_info[1] is exc for record in caplog.records)


async def test_gateway_errors_pass_through_decoding(injected: tuple[GatewayClient, Injector]) -> None:
    from gateway.errors import Unimplemented

    client, injector = injected
    status, text = await answer(client, injector, Unimplemented("no such dtype"), "decoding")
    assert envelope_problem(status, text, 501) is None, (status, text)
    assert orjson.loads(text)["error"] == "no such dtype"


async def test_without_injection_the_request_is_served(injected: tuple[GatewayClient, Injector]) -> None:
    client, _ = injected
    async with client.post(URL, data=PLAIN, headers={HOW: "stream"}) as resp:
        assert resp.status == 200 and await resp.json() == {"predictions": [2.5]}


@pytest.mark.parametrize(("exc", "expected"), DECODER_ERRORS, ids=case_id)
@pytest.mark.parametrize(
    ("verb", "parser"),
    [("predict", "gateway.codec.fastjson.parse_predict"), ("classify", "gateway.codec.jsonio.parse_object")],
)
async def test_decoder_errors_from_the_real_parse_steps_are_4xx(
    injected: tuple[GatewayClient, Injector],
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    expected: int,
    verb: str,
    parser: str,
) -> None:
    """The handlers run their parse steps inside ``body.decoding()``, on the loop or off it."""

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(parser, failing)
    client, _ = injected
    for size in (len(PLAIN), 1 << 20):  # small bodies parse inline, large ones on a worker thread
        data = PLAIN.ljust(size)
        async with client.post(f"/v1/models/{MODEL}:{verb}", data=io.BytesIO(data)) as resp:
            status, text = resp.status, await resp.text()
        assert envelope_problem(status, text, expected) is None, (size, status, text)


@pytest.mark.parametrize(
    "data",
    [
        b'{"instances": [[' + b"9" * 5000 + b"]]}",
        b'{"instances": [' + b"9" * 5000 + b".5e" + b"9" * 5000 + b"]}",
        b'{"instances": [1e999999999999999999999]}',
        b'{"signature_name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"instances": "\\ud800"}',
        b'{"instances": [1.0]}\xff',
    ],
    ids=["int-5000-digits", "decimal-10000-digits", "huge-exponent", "deep-100k", "lone-surrogate", "bad-utf8"],
)
async def test_real_hostile_literals_are_4xx(injected: tuple[GatewayClient, Injector], data: bytes) -> None:
    client, _ = injected
    async with client.post(URL, data=data) as resp:
        status, text = resp.status, await resp.text()
    assert 400 <= status < 500 and next(iter(orjson.loads(text))) == "error", (status, text)
