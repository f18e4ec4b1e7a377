"""A direct JSON-number-array -> numpy path for large predict bodies.

A body such as ``{"instances": [[[0.1, 0.2, 0.3], ...]]}`` is almost all one regular array of
plain numbers. Instead of building ~50k nested Python lists (and asking numpy to rediscover
their shape), this module:

1. cuts the body at its first ``[`` and last ``]`` into prefix, array text and suffix;
2. checks the array text's *skeleton* (the text with number characters and whitespace
   deleted) against the skeleton a regular array of the inferred shape must have;
3. parses the numbers as one flat JSON list (brackets turned into spaces) with orjson,
   which is strict about number syntax and rejects two numbers with no comma between;
4. parses prefix + placeholder + suffix with the gateway's own strict parser, and accepts
   only ``{"instances"|"inputs": <array>[, "signature_name": <string>]}``.

Anything else (NaN tokens, strings, b64 objects, ragged or empty lists, other keys, text
that does not parse) returns ``None`` and the body takes the exact path, which also
produces every error message. The result must be indistinguishable from the exact path:
tests/test_fastpaths.py checks that with Hypothesis, byte for byte on the encoded request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from gateway.codec import jsonio
from gateway.ops import gctune

_NUMBER_AND_SPACE = b"0123456789.eE+- \t\r\n"
_BRACKETS_TO_SPACES = bytes.maketrans(b"[]", b"  ")
# A JSON string the placeholder document holds where the array was; it is verified to
# occur exactly once, where expected, so a look-alike in the body cannot fool the check.
PLACEHOLDER = "\x00gateway.fastjson.array\x00"
_PLACEHOLDER_JSON = orjson.dumps(PLACEHOLDER)
_ARRAY_KEYS = ("instances", "inputs")
_ALLOWED_KEYS = frozenset(("instances", "inputs", "signature_name"))


@dataclass(frozen=True, slots=True)
class NumericJson:
    """A regular, non-empty JSON array of plain numbers, parsed flat."""

    text: bytes  # the array's JSON text, for the exact path
    flat: list[int | float]  # every leaf, in row-major order, as orjson parsed it
    shape: tuple[int, ...]

    def array(self, *, floating: bool) -> npt.NDArray[Any]:
        """numpy's view of the values, as ``np.asarray`` of the nested lists would be.

        ``floating``: the caller casts to float anyway, so skip dtype discovery and read
        every value as a double, as TF Serving (and the exact path) does.
        """
        with gctune.paused():
            flat = _doubles(self.flat) if floating else np.array(self.flat)
        return flat.reshape(self.shape)

    def value(self) -> Any:
        """The nested lists the exact path would have seen."""
        with gctune.paused():
            return orjson.loads(self.text)


def _doubles(values: list[int | float]) -> npt.NDArray[np.float64]:
    return np.fromiter(values, dtype=np.float64, count=len(values))


def parse_predict(body: bytes, *, max_depth: int) -> dict[str, Any] | None:
    """The request document with its big array as a :class:`NumericJson`, or None."""
    if len(body) < gctune.LARGE_BODY_BYTES:
        return None
    body = jsonio.strip_bom(body)
    start, end = body.find(b"["), body.rfind(b"]")
    if start < 0 or end < start or len(body) - (end - start) > gctune.LARGE_BODY_BYTES:
        return None
    text = body[start : end + 1]
    # The document nests the array one level deeper than its own rank.
    numeric = parse_array(text, max_rank=max_depth - 1)
    if numeric is None:
        return None
    return _document(body[:start] + _PLACEHOLDER_JSON + body[end + 1 :], numeric, max_depth)


def parse_array(text: bytes, *, max_rank: int = 64) -> NumericJson | None:
    """A regular nested array of plain JSON numbers, parsed flat; None if ``text`` is anything else,
    or if it nests deeper than ``max_rank`` (the exact path then names the depth limit).

    Cost: a few C passes over ``text``, linear in its length whatever its nesting.
    """
    skeleton = text.translate(None, _NUMBER_AND_SPACE)
    # Depth first: everything after this is linear only because the rank is bounded.
    if len(skeleton) - len(skeleton.lstrip(b"[")) > max_rank:
        return None
    shape = infer_shape(skeleton)
    if shape is None or skeleton != regular_skeleton(shape):
        return None
    try:
        with gctune.paused():
            flat = orjson.loads(b"[" + text.translate(_BRACKETS_TO_SPACES) + b"]")
    except orjson.JSONDecodeError:
        return None
    if len(flat) != math.prod(shape):
        return None
    return NumericJson(text, flat, shape)


def infer_shape(skeleton: bytes) -> tuple[int, ...] | None:
    """The shape a regular array with this skeleton has; verified by the caller.

    Each level's search starts where the previous level's match did (``k + 1`` closing brackets
    in a row cannot come before the first ``k`` in a row), so the scans never overlap and the
    cost is O(len(skeleton) + rank**2), not O(len * rank).
    """
    rank = len(skeleton) - len(skeleton.lstrip(b"["))
    if rank == 0:
        return None
    dims: list[int] = []
    child = -1  # the innermost list has no child lists: its slots are bare numbers
    closing = 0
    for level in range(rank):
        closing = skeleton.find(b"]" * (level + 1), closing)
        if closing < 0:
            return None
        length = closing + level + 1 - (rank - 1 - level)  # the first list at this depth
        count, rest = divmod(length - 1, child + 1) if child >= 0 else (length - 1, 0)
        if rest or count < 1:
            return None
        dims.append(count)
        child = length
    return tuple(reversed(dims))


def regular_skeleton(shape: tuple[int, ...]) -> bytes:
    """``[,,]``-style text of a regular array of this shape with its numbers deleted."""
    text = b"[" + b"," * (shape[-1] - 1) + b"]"
    for size in reversed(shape[:-1]):
        text = b"[" + b",".join([text] * size) + b"]"
    return text


def _document(text: bytes, numeric: NumericJson, max_depth: int) -> dict[str, Any] | None:
    # jsonio's own fast parser, so that keys, duplicates and depth are judged exactly as for
    # the whole body; anything it would not accept on its fast path goes the exact way.
    doc = jsonio.parse_fast(text, max_depth)
    if not isinstance(doc, dict) or not set(doc) <= _ALLOWED_KEYS:
        return None
    keys = [k for k in _ARRAY_KEYS if k in doc]
    name = doc.get("signature_name", "")
    if len(keys) != 1 or doc[keys[0]] != PLACEHOLDER or not isinstance(name, str) or name == PLACEHOLDER:
        return None
    doc[keys[0]] = numeric
    return doc
