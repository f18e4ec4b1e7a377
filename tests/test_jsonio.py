"""Body parsing (spec 3): the orjson fast path and the exact path agree, and bad bodies get clear 400s."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codec.jsonio import parse_object
from gateway.errors import InvalidArgument


def parse(body: bytes, max_depth: int = 64) -> dict[str, Any]:
    return parse_object(body, max_depth=max_depth)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": [1, 2.5, -0]}', {"a": [1, 2.5, 0]}),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),
        (b'{"a": "x\\":"}', {"a": 'x":'}),
        (b'{"a": {"b": 1}, "c": [{"d": 1}, {"d": 2}]}', {"a": {"b": 1}, "c": [{"d": 1}, {"d": 2}]}),
        (b'{"big": 18446744073709551615}', {"big": 18446744073709551615}),
        (b'{"u": "\\u00e9\\u0000"}', {"u": "\u00e9\x00"}),
    ],
)
def test_accepted(body: bytes, expected: dict[str, Any]) -> None:
    assert parse(body) == expected


def test_non_finite_tokens() -> None:
    value = parse(b'{"a": [NaN, Infinity, -Infinity, 1.5]}')["a"]
    assert math.isnan(value[0]) and value[1:] == [math.inf, -math.inf, 1.5]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "The document is empty"),
        (b"   \n", "The document is empty"),
        (b"instances = [1, 2]", "JSON Parse error"),
        (b'{"a": 1} junk', "at offset: 9"),
        (b'{"a": 1, "a": 2}', 'duplicate key "a"'),
        (b'{"x": [1, {"b": 1, "b": 2}]}', 'duplicate key "b"'),
        (b'{"a": NaN, "a": 1}', 'duplicate key "a"'),
        (b'{"a": 1e309}', "Number too big"),
        (b'{"a": Inf}', "JSON Parse error"),
        (b'{"a": nan}', "JSON Parse error"),
        (b"[1, 2]", "Is not object"),
        (b'"text"', "Is not object"),
        (b'{"a": "\xff"}', "Invalid UTF-8"),
        (b'{"a": [1,]}', "JSON Parse error"),
    ],
)
def test_rejected_with_a_clear_message(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse(body)
    assert fragment in caught.value.message
    assert caught.value.status == 400


@pytest.mark.parametrize("depth", [65, 200, 5000, 100_000])
def test_too_deep(depth: int) -> None:
    body = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(InvalidArgument, match="deeper than the limit of 64"):
        parse(body)


def test_deep_but_within_limit() -> None:
    body = b'{"a": ' + b"[" * 63 + b"]" * 63 + b"}"
    assert parse(body)["a"]


def test_hidden_deep_value_is_caught_by_the_exact_path() -> None:
    # The fast path looks at lists through their head; the exact path sees everything.
    body = b'{"a": [1, ' + b"[" * 70 + b"]" * 70 + b', {"k": 1}]}'
    with pytest.raises(InvalidArgument, match="deeper"):
        parse(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_fast_and_exact_paths_agree_with_the_stdlib(doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    assert parse(body, max_depth=1000) == json.loads(body)
