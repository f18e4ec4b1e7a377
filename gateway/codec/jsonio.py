"""Request bodies -> Python values, strictly, and fast for large numeric bodies.

The fast path is orjson. It refuses ``NaN``/``Infinity`` (which TF Serving accepts and
Python's ``json.dumps`` writes), and it silently keeps the last of duplicate keys. So:

* anything orjson refuses is parsed again by the exact slow path (the stdlib decoder
  with hooks for duplicates, non-finite tokens and overflowing exponents), which
  also produces the error message and offset;
* duplicate keys are detected without walking big numeric arrays: every key in the
  text ends in ``"`` followed by ``:``, so the count of that pattern bounds the key
  count from above. When the parsed objects hold exactly that many keys, no key was
  collapsed. Any doubt (a ``":`` inside a string value, an object hidden in a list of
  numbers) sends the body to the slow path, which decides exactly.

Both paths agree with rapidjson, TF Serving's parser, on what they accept: integers that fit
int64/uint64 stay integers, larger ones become doubles, and a number no double can hold is an
error (``Number too big to be stored in double``); strings with unpaired surrogate escapes are
rejected rather than turned into bytes the client never sent.

Every step is linear in the body's length, whatever its nesting: orjson stops at 1024 levels,
the stdlib decoder at the interpreter's recursion limit (caught), integers are never handed to
``int()`` beyond int64 range (CPython refuses more than 4300 digits and is quadratic below
that), and messages quote at most ``_QUOTE_LIMIT`` characters of what they complain about.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from gateway.errors import InvalidArgument
from gateway.ops import gctune

_KEY_END = re.compile(rb'"[ \t\r\n]*:')
_BOM = b"\xef\xbb\xbf"
# The non-finite tokens TF Serving reads and writes, both ways.
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_NON_FINITE_TOKENS = (b"NaN", b"Infinity", b"-Infinity")
# A \uD800-\uDFFF escape: the only way a surrogate can get into a decoded str (raw UTF-8 cannot
# encode one, and invalid UTF-8 is refused before decoding). A match only means "look closer".
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_QUOTE_LIMIT = 64


class _DuplicateKey(ValueError):
    pass


class _NumberTooBig(ValueError):
    pass


def parse_object(body: bytes, *, max_depth: int) -> dict[str, Any]:
    """Parse a request body whose root must be a JSON object."""
    body = strip_bom(body)
    if not body.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    value = parse_fast(body, max_depth)
    if value is None:
        value = _parse_exact(body, max_depth)
    if not isinstance(value, dict):
        raise InvalidArgument(f"JSON Value: {debug_string(value)} Is not object")
    return value


def strip_bom(body: bytes) -> bytes:
    """The body without a UTF-8 byte order mark, which JSON parsers refuse and some clients send."""
    return body[len(_BOM) :] if body.startswith(_BOM) else body


def non_finite_token(value: float) -> bytes:
    """``NaN``, ``Infinity`` or ``-Infinity`` for a non-finite float, as TF Serving writes them."""
    return _NON_FINITE_TOKENS[0 if value != value else (1 if value > 0 else 2)]


def parse_fast(body: bytes, max_depth: int) -> Any | None:
    """orjson's answer when it is certainly right, else None."""
    try:
        with gctune.paused(len(body) >= gctune.LARGE_BODY_BYTES):
            value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    keys, depth = _shape_summary(value)
    if depth > max_depth or keys != _key_ends(body):
        return None
    return value


def _key_ends(body: bytes) -> int:
    """How many ``"`` + optional whitespace + ``:`` the text holds (an upper bound on its keys).

    ``count`` is a memchr-speed scan and settles the common compact text; the regex, which also
    sees whitespace before the colon, runs only when that falls short.
    """
    compact = body.count(b'":')
    if compact == body.count(b":"):  # every colon follows a quote: no spaced form to look for
        return compact
    return sum(1 for _ in _KEY_END.finditer(body))


def _shape_summary(value: Any) -> tuple[int, int]:
    """(keys in all reachable objects, nesting depth), looking at lists through their head.

    Undercounting is safe: it only sends the body to the exact path. Lists of objects (rows of
    named inputs, a million of them in a hostile body) are summed in one tight loop rather than
    pushed item by item: this walk is most of a large parse's Python time.
    """
    if type(value) not in _CONTAINERS:
        return 0, 0
    keys, depth = 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]  # containers only
    while stack:
        node, level = stack.pop()
        depth = max(depth, level)
        if type(node) is dict:
            keys += len(node)
            stack.extend((child, level + 1) for child in node.values() if type(child) in _CONTAINERS)
        elif node and type(node[0]) is dict:
            keys += _rows_of_objects(node, level + 1, stack)
        elif node and type(node[0]) is list:
            stack.append((node[0], level + 1))
    return keys, depth


_CONTAINERS = (dict, list)


def _rows_of_objects(rows: list[Any], level: int, stack: list[tuple[Any, int]]) -> int:
    """Keys of the objects in ``rows`` (at ``level``); their containers go on ``stack``."""
    keys = 0
    for row in rows:
        if type(row) is dict:
            keys += len(row)
            for child in row.values():
                if type(child) in _CONTAINERS:
                    stack.append((child, level + 1))
        elif type(row) is list:
            stack.append((row, level))
    if keys:
        stack.append(({}, level))  # an empty object: records the rows' depth, adds no keys
    return keys


def _parse_exact(body: bytes, max_depth: int) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"JSON Parse error: Invalid UTF-8 at offset: {exc.start}") from None
    decoder = json.JSONDecoder(
        object_pairs_hook=_unique_object,
        parse_constant=NON_FINITE.__getitem__,
        parse_float=_finite_float,
        parse_int=_integer,
    )
    try:
        value = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"JSON Parse error: {exc.msg} at offset: {_byte_offset(text, exc.pos)}") from None
    except _DuplicateKey as exc:
        raise InvalidArgument(f"JSON Parse error: duplicate key {exc} in object") from None
    except _NumberTooBig as exc:
        raise InvalidArgument(f"JSON Parse error: Number too big to be stored in double: {exc}") from None
    except RecursionError:
        raise _too_deep(max_depth) from None
    if _depth(value) > max_depth:
        raise _too_deep(max_depth)
    if _SURROGATE_ESCAPE.search(body) is not None:
        _check_surrogates(value, text)
    return value


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(_quote(json.dumps(key)))
            seen.add(key)
    return obj


def _finite_float(text: str) -> float:
    value = float(text)  # linear in the digits: CPython's dtoa keeps only the significant ones
    if math.isinf(value):
        raise _NumberTooBig(_quote(text))
    return value


def _integer(text: str) -> int | float:
    """An integer literal as rapidjson reads it: exact within int64/uint64, a double beyond."""
    if len(text) <= 21:  # "-" and 20 digits: int() is cheap, the range check decides
        value = int(text)
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
    return _finite_float(text)


def _check_surrogates(value: Any, text: str) -> None:
    """Refuse strings (keys too) holding a surrogate, as rapidjson does; linear in the value."""
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not _encodable(node):
                raise InvalidArgument(
                    "JSON Parse error: The surrogate pair in string is invalid. "
                    f"at offset: {_byte_offset(text, _first_surrogate(text))}"
                )
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A high surrogate escape with its low partner (a valid pair), or any other surrogate escape.
_SURROGATE_PAIR = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"  # high, maybe paired
    r"|\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a low one on its own
)


def _first_surrogate(text: str) -> int:
    """Where the first unpaired surrogate escape starts (0 if the text hides it some other way)."""
    for found in _SURROGATE_PAIR.finditer(text):
        if found.group(1) is None:
            return found.start()
    return 0


def _quote(text: str) -> str:
    return text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "..."


def _byte_offset(text: str, pos: int) -> int:
    return len(text[:pos].encode("utf-8"))


def _depth(value: Any) -> int:
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            depth = max(depth, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return depth


def _too_deep(max_depth: int) -> InvalidArgument:
    return InvalidArgument(
        f"JSON Parse error: nesting is deeper than the limit of {max_depth} levels",
        details={"max_json_depth": max_depth},
    )


def debug_string(value: Any, limit: int = 256) -> str:
    """A short rendering of a JSON value for error messages, cut at ``limit`` characters.

    Never raises: a value too deep for both encoders (orjson stops at 255 levels, the stdlib at
    the recursion limit) is described rather than printed.
    """
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        try:
            text = json.dumps(value, allow_nan=True, default=str)
        except (RecursionError, ValueError, TypeError):
            text = "<value nested too deeply to print>"
    return text if len(text) <= limit else text[:limit] + "..."
