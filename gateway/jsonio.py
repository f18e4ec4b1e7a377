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
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from gateway import gctune
from gateway.errors import InvalidArgument

_KEY_END = re.compile(rb'"[ \t\r\n]*:')
_BOM = b"\xef\xbb\xbf"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _DuplicateKey(ValueError):
    pass


class _NumberTooBig(ValueError):
    pass


def parse_object(body: bytes, *, max_depth: int) -> dict[str, Any]:
    """Parse a request body whose root must be a JSON object."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    if not body.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    value = parse_fast(body, max_depth)
    if value is None:
        value = _parse_exact(body, max_depth)
    if not isinstance(value, dict):
        raise InvalidArgument(f"JSON Value: {debug_string(value)} Is not object")
    return value


def parse_fast(body: bytes, max_depth: int) -> Any | None:
    """orjson's answer when it is certainly right, else None."""
    try:
        with gctune.paused(len(body) >= gctune.LARGE_BODY_BYTES):
            value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    keys, depth = _shape_summary(value)
    if keys != len(_KEY_END.findall(body)) or depth > max_depth:
        return None
    return value


def _shape_summary(value: Any) -> tuple[int, int]:
    """(keys in all reachable objects, nesting depth), looking at lists through their head.

    Undercounting is safe: it only sends the body to the exact path.
    """
    keys, depth = 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            depth = max(depth, level)
            keys += len(node)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            depth = max(depth, level)
            if node and isinstance(node[0], dict):
                stack.extend((child, level + 1) for child in node)
            elif node:
                stack.append((node[0], level + 1))
    return keys, depth


def _parse_exact(body: bytes, max_depth: int) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"JSON Parse error: Invalid UTF-8 at offset: {exc.start}") from None
    decoder = json.JSONDecoder(
        object_pairs_hook=_unique_object,
        parse_constant=_NON_FINITE.__getitem__,
        parse_float=_finite_float,
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
    return value


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(json.dumps(key))
            seen.add(key)
    return obj


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NumberTooBig(text)
    return value


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
    """A short rendering of a JSON value for error messages, cut at ``limit`` characters."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = json.dumps(value, allow_nan=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."
