"""The shadow comparison's rules (``gateway/pipeline/compare.py``), value by value. Pure: no sockets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway.pipeline.compare import compare

RTOL, ATOL = 1e-5, 1e-6


def f32(*values: float) -> np.ndarray[Any, Any]:
    return np.array(values, dtype=np.float32)


def test_equal_outputs_agree_with_no_difference() -> None:
    verdict = compare({"y": f32(1, 2)}, {"y": f32(1, 2)}, RTOL, ATOL)
    assert verdict.agree and verdict.max_abs_diff == 0.0 and verdict.output is None


def test_values_within_the_tolerance_agree_and_report_their_difference() -> None:
    verdict = compare({"y": f32(1000.0)}, {"y": f32(1000.005)}, RTOL, ATOL)
    assert verdict.agree
    assert verdict.max_abs_diff == pytest.approx(0.005, rel=1e-2)


def test_the_first_differing_value_is_named_with_its_index_and_both_values() -> None:
    a = np.zeros((2, 3), dtype=np.float64)
    b = a.copy()
    b[1, 2], b[1, 0] = 0.5, 0.25  # (1, 0) comes first in C order
    verdict = compare({"a": a, "z": a}, {"a": a, "z": b}, RTOL, ATOL)
    assert not verdict.agree
    assert (verdict.output, verdict.reason, verdict.index) == ("z", "value", (1, 0))
    assert (verdict.primary, verdict.shadow, verdict.max_abs_diff) == (0.0, 0.25, 0.5)


@pytest.mark.parametrize(
    ("primary", "shadow", "agree", "diff"),
    [
        (f32(np.nan), f32(np.nan), True, 0.0),
        (f32(np.nan), f32(1.0), False, np.inf),
        (f32(np.inf), f32(np.inf), True, 0.0),
        (f32(np.inf), f32(-np.inf), False, np.inf),
        (f32(-np.inf), f32(3.0), False, np.inf),
    ],
)
def test_nan_equals_nan_and_an_infinity_only_itself(
    primary: np.ndarray[Any, Any], shadow: np.ndarray[Any, Any], agree: bool, diff: float
) -> None:
    verdict = compare({"y": primary}, {"y": shadow}, RTOL, ATOL)
    assert (verdict.agree, verdict.max_abs_diff) == (agree, diff)


def test_non_finite_values_are_logged_by_name() -> None:
    verdict = compare({"y": f32(np.nan)}, {"y": f32(1.0)}, RTOL, ATOL)
    assert (verdict.primary, verdict.shadow) == ("nan", 1.0)


def test_unsigned_differences_do_not_wrap() -> None:
    verdict = compare({"y": np.array([0], np.uint8)}, {"y": np.array([255], np.uint8)}, RTOL, ATOL)
    assert not verdict.agree and verdict.max_abs_diff == 255.0


@pytest.mark.parametrize(
    ("primary", "shadow", "reason", "output"),
    [
        ({"y": f32(1)}, {"y": f32(1), "z": f32(1)}, "outputs", "z"),
        ({"b": f32(1), "y": f32(1)}, {"y": f32(1)}, "outputs", "b"),
        ({"y": f32(1)}, {"y": np.array([1.0])}, "dtype", "y"),
        ({"y": f32(1, 2)}, {"y": np.array([[1, 2]], np.float32)}, "shape", "y"),
    ],
)
def test_different_names_dtypes_or_shapes_disagree_without_comparing_values(
    primary: dict[str, Any], shadow: dict[str, Any], reason: str, output: str
) -> None:
    verdict = compare(primary, shadow, RTOL, ATOL)
    assert (verdict.agree, verdict.reason, verdict.output, verdict.max_abs_diff) == (False, reason, output, None)


def test_strings_and_booleans_must_be_equal_exactly() -> None:
    words = np.array([b"cat", b"dog"], dtype=object)
    other = np.array([b"cat", b"dig"], dtype=object)
    verdict = compare({"s": words}, {"s": other}, 1.0, 1.0)
    assert (verdict.agree, verdict.index, verdict.primary, verdict.shadow) == (False, (1,), "dog", "dig")
    assert compare({"s": words}, {"s": words.copy()}, RTOL, ATOL).agree
    flags = np.array([True, False])
    assert not compare({"f": flags}, {"f": ~flags}, 1.0, 1.0).agree


def test_the_tolerance_decides() -> None:
    assert not compare({"y": f32(1.0)}, {"y": f32(1.001)}, RTOL, ATOL).agree
    assert compare({"y": f32(1.0)}, {"y": f32(1.001)}, 1e-2, 0.0).agree


@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64, np.uint8]), hnp.array_shapes(min_dims=0)))
def test_any_array_agrees_with_itself(array: np.ndarray[Any, Any]) -> None:
    verdict = compare({"y": array}, {"y": array.copy()}, 0.0, 0.0)
    assert verdict.agree and verdict.max_abs_diff == 0.0
