"""Hostile request bodies built from a handful of parameters, shared by both fuzzers.

Issue 9 listed what the old fuzzers never produced: nesting 10^5 levels deep, numeric literals
of thousands of digits, garbage behind ``Content-Encoding``, unpaired surrogate escapes. Random
bytes reach none of those, so each shape here is a small frozen value that *renders* the big
body on demand. Its ``repr`` stays short, so a falsifying example reads as the recipe
(``Deep(depth=100000, kind='list', close='balanced')``), not as a megabyte of brackets.

- ``tests/strategies.py`` draws these with Hypothesis and sends them over real sockets;
- ``fuzz/fuzz_request.py`` decodes libFuzzer's bytes into the same shapes.

:func:`render` writes a request document (dicts, lists, scalars, :class:`Pairs` and any
:class:`Fragment`) as JSON text, fragments verbatim; :func:`frame` and :func:`encode` damage
the finished body at the byte level and at the ``Content-Encoding`` level.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_DEPTH = 100_000
MAX_DIGITS = 10_000


class Fragment(Protocol):
    """A piece of JSON text (or deliberately not JSON) placed verbatim into a document."""

    def render(self) -> bytes: ...


DEEP_KINDS = ("list", "object", "mixed", "b64")
DEEP_CLOSES = ("balanced", "open", "half", "extra", "swapped")


@dataclass(frozen=True)
class Deep:
    """``depth`` levels of nesting around ``leaf``: lists, objects, or both alternating.

    ``close``: ``balanced``; ``open`` (no closers); ``half``; ``extra`` (one closer too many);
    ``swapped`` (lists closed with ``}`` and objects with ``]``).
    """

    depth: int
    kind: str = "list"
    close: str = "balanced"
    leaf: bytes = b"1"

    def render(self) -> bytes:
        openers, closers = self._units()
        pairs, odd = divmod(self.depth, len(openers))  # bytes repetition, not a Python loop per level
        head = b"".join(openers) * pairs + b"".join(openers[:odd])
        tail = b"".join(reversed(closers[:odd])) + b"".join(reversed(closers)) * pairs
        if self.close == "open":
            tail = b""
        elif self.close == "half":
            tail = tail[: len(tail) // 2]
        elif self.close == "extra":
            tail += closers[0]
        elif self.close == "swapped":
            tail = tail.translate(bytes.maketrans(b"]}", b"}]"))
        return head + self.leaf + tail

    def _units(self) -> tuple[list[bytes], list[bytes]]:
        if self.kind == "object":
            return [b'{"a":'], [b"}"]
        if self.kind == "mixed":
            return [b"[", b'{"x":'], [b"]", b"}"]
        if self.kind == "b64":
            return [b'{"b64":'], [b"}"]
        return [b"["], [b"]"]


NUMBER_FORMS = ("int", "negative", "decimal", "tiny", "exponent", "negative_exponent", "mantissa", "leading_zeros")


@dataclass(frozen=True)
class LongNumber:
    """A numeric literal about ``digits`` digits long (past Python's 4,300-digit int limit when large)."""

    digits: int
    form: str = "int"

    def render(self) -> bytes:
        n = max(1, self.digits)
        return {
            "int": b"9" * n,
            "negative": b"-" + b"9" * n,
            "decimal": b"1." + b"5" * n,
            "tiny": b"0." + b"0" * n + b"1",
            "exponent": b"1e" + b"9" * n,
            "negative_exponent": b"1e-" + b"9" * n,
            "mantissa": b"9" * n + b"e-" + str(n).encode(),  # about 9.99: finite, but n digits
            "leading_zeros": b"0" * n + b"1",
        }[self.form]


STRING_UNITS = (b"a", b"\\n", b"\\u0041", b"\\\\", b'\\"', b"\\ud83d\\ude00", "\u00e9".encode(), b"\\u0000", b"\\/")


@dataclass(frozen=True)
class LongString:
    """A JSON string of ``count`` repetitions of one unit (plain text or an escape)."""

    count: int
    unit: bytes = b"a"

    def render(self) -> bytes:
        return b'"' + self.unit * self.count + b'"'


SURROGATES = (
    b'"\\ud800"',  # lone high
    b'"\\udc00"',  # lone low
    b'"\\udbff\\udfff"',  # a valid pair (must be accepted)
    b'"\\ud800\\ud800"',  # two highs
    b'"\\udc00\\ud800"',  # reversed pair
    b'"x\\ud800y"',  # lone high inside text
    b'"\\ud800\\u0041"',  # high followed by a non-surrogate escape
    b'"\\uD800"',  # upper-case hex
    b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8 bytes (CESU), invalid UTF-8
    b'"\\ud8"',  # short escape
    b'"\\uZZZZ"',  # not hex
    b'"\\ud800',  # unterminated after the escape
)


@dataclass(frozen=True)
class Surrogate:
    """One of :data:`SURROGATES`: invalid or edge-case UTF-16 escapes in a string."""

    index: int

    def render(self) -> bytes:
        return SURROGATES[self.index % len(SURROGATES)]


@dataclass(frozen=True)
class Keys:
    """An object with ``count`` keys, all distinct or all the same."""

    count: int
    distinct: bool = True

    def render(self) -> bytes:
        names = (f'"k{i}"' if self.distinct else '"k"' for i in range(self.count))
        return ("{" + ",".join(f"{name}:{i}" for i, name in enumerate(names)) + "}").encode()


@dataclass(frozen=True)
class ManyObjects:
    """A list of ``count`` tiny objects."""

    count: int

    def render(self) -> bytes:
        return b"[" + b",".join([b'{"x":1}'] * self.count) + b"]"


REGULAR_DEFECTS = ("none", "last_byte", "ragged_last", "ragged_first", "string_last", "nan_last", "empty_row")


@dataclass(frozen=True)
class Regular:
    """A ``rows`` x ``cols`` array of numbers (big enough for the fast path) with one defect."""

    rows: int
    cols: int
    defect: str = "none"

    def render(self) -> bytes:
        row = b"[" + b",".join([b"0.5"] * max(1, self.cols)) + b"]"
        rows = [row] * max(1, self.rows)
        if self.defect == "ragged_last":
            rows[-1] = b"[" + b",".join([b"0.5"] * (self.cols + 1)) + b"]"
        elif self.defect == "ragged_first":
            rows[0] = b"[0.5]" if self.cols != 1 else b"[0.5,0.5]"
        elif self.defect == "string_last":
            rows[-1] = row.replace(b"0.5]", b'"0.5"]')
        elif self.defect == "nan_last":
            rows[-1] = row.replace(b"0.5]", b"NaN]")
        elif self.defect == "empty_row":
            rows[-1] = b"[]"
        text = b"[" + b",".join(rows) + b"]"
        return text[:-1] + b"}" if self.defect == "last_byte" else text


@dataclass(frozen=True)
class B64:
    """``{"b64": ...}`` with ``length`` characters, valid or not."""

    length: int
    valid: bool = True

    def render(self) -> bytes:
        body = b"QUJD" * (self.length // 4) if self.valid else b"!*" * (self.length // 2) + b"="
        return b'{"b64":"' + body + b'"}'


@dataclass(frozen=True)
class Garbage:
    """Arbitrary bytes, verbatim."""

    data: bytes

    def render(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class Pairs:
    """An object written from key/value pairs, so keys may repeat."""

    items: tuple[tuple[str, Any], ...]


def render(value: Any) -> bytes:
    """JSON text for a document whose nodes may be fragments (written verbatim)."""
    if isinstance(value, Pairs):
        return _object(value.items)
    if isinstance(value, dict):
        return _object(tuple(value.items()))
    if isinstance(value, list | tuple):
        return b"[" + b",".join(render(item) for item in value) + b"]"
    if hasattr(value, "render"):
        return bytes(value.render())
    return json.dumps(value, allow_nan=True).encode()


def _object(items: Sequence[tuple[str, Any]]) -> bytes:
    return b"{" + b",".join(json.dumps(key).encode() + b":" + render(item) for key, item in items) + b"}"


FRAMES = ("none", "truncate", "trailing", "bom", "leading_space", "two_documents", "nul", "utf16", "latin1")


def frame(body: bytes, kind: str, n: int = 0) -> bytes:
    """``body`` damaged at the byte level; ``n`` picks the cut or the garbage."""
    if kind == "truncate":
        return body[: n % max(1, len(body))]
    if kind == "trailing":
        return body + [b"x", b"}", b"]", b",", b"\x00", b"\xff", b" {}"][n % 7]
    if kind == "bom":
        return b"\xef\xbb\xbf" + body
    if kind == "leading_space":
        return b" \t\r\n" * (1 + n % 4) + body
    if kind == "two_documents":
        return body + body
    if kind == "nul":
        cut = n % max(1, len(body))
        return body[:cut] + b"\x00" + body[cut:]
    if kind == "utf16":
        return body.decode("utf-8", "replace").encode("utf-16")
    if kind == "latin1":
        return body.replace(b"a", b"\xe9", 1)
    return body


ENCODINGS = ("gzip", "x-gzip", "deflate", "raw-deflate", "br", "zstd", "gzip, gzip", "identity", "compress", "bogus")
DEFECTS = ("none", "garbage", "truncated", "concatenated", "trailing", "bad_crc", "empty", "bomb")
BOMB_BYTES = 9 << 20  # inflates past the 8 MiB limit the fuzz gateway runs with


def encode(body: bytes, encoding: str, defect: str, n: int = 0) -> tuple[str, bytes]:
    """(Content-Encoding header, wire bytes) for ``body`` compressed and then damaged."""
    header = "deflate" if encoding == "raw-deflate" else encoding
    if defect == "garbage":
        return header, body
    if defect == "empty":
        return header, b""
    if defect == "bomb":
        body = b" " * BOMB_BYTES
    wire = _compress(body, encoding)
    if defect == "truncated":
        wire = wire[: n % max(1, len(wire))]
    elif defect == "concatenated":
        wire = wire + _compress(body, encoding)
    elif defect == "trailing":
        wire = wire + b"\x00garbage"
    elif defect == "bad_crc" and len(wire) > 8:
        wire = wire[:-8] + bytes(b ^ 0xFF for b in wire[-8:-4]) + wire[-4:]
    return header, wire


def _compress(body: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(body, compresslevel=1, mtime=0)
    if encoding == "gzip, gzip":
        return gzip.compress(gzip.compress(body, compresslevel=1, mtime=0), compresslevel=1, mtime=0)
    if encoding == "deflate":
        return zlib.compress(body, 1)
    if encoding == "raw-deflate":
        packer = zlib.compressobj(1, zlib.DEFLATED, -15)
        return packer.compress(body) + packer.flush()
    # br, zstd, compress, identity, bogus: no codec here; the bytes go as they are.
    return body
