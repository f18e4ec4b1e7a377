"""Two sets of output arrays compared output by output, value by value. Pure.

The rules, in the order they are checked (the first difference found is the one reported):

* both sides have the same output names, else they disagree on the first name only one has;
* each output (by sorted name) has the same dtype and the same shape;
* numbers are close by numpy's ``isclose``: ``|shadow - primary| <= atol + rtol * |primary|``,
  with NaN equal to NaN and an infinity equal only to itself;
* strings (bytes), and booleans, are equal exactly.

``max_abs_diff`` is the largest ``|shadow - primary|`` over every numeric value compared
(0.0 when there were none); a NaN against a number, or an infinity against anything else,
counts as ``inf``. It is ``None`` when the outputs' names, dtypes or shapes differ, because
then no values were compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

Arrays = Mapping[str, npt.NDArray[Any]]
_MAX_TEXT = 64  # characters of a string value kept in a verdict (it goes to the access log)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The comparison's result; for a disagreement, the first difference and where it is."""

    agree: bool
    max_abs_diff: float | None = None
    output: str | None = None  # the first output that differs
    reason: str = ""  # "" | "outputs" | "dtype" | "shape" | "value"
    index: tuple[int, ...] | None = None  # the first differing element (C order), for "value"
    primary: Any = None  # what each side had there: a value, a dtype, a shape or an output list
    shadow: Any = None


def compare(primary: Arrays, shadow: Arrays, rtol: float, atol: float) -> Verdict:
    """Whether ``shadow`` agrees with ``primary`` within the tolerance, and the first difference."""
    names = sorted(primary)
    if names != sorted(shadow):
        only = min(set(primary) ^ set(shadow))
        return Verdict(False, None, only, "outputs", primary=names, shadow=sorted(shadow))
    for name in names:
        a, b = primary[name], shadow[name]
        if a.dtype != b.dtype:
            return Verdict(False, None, name, "dtype", primary=a.dtype.name, shadow=b.dtype.name)
        if a.shape != b.shape:
            return Verdict(False, None, name, "shape", primary=list(a.shape), shadow=list(b.shape))
    worst = 0.0
    first: Verdict | None = None
    for name in names:
        a, b = primary[name], shadow[name]
        same, diff = _close(a, b, rtol, atol)
        worst = max(worst, diff)
        if first is None and not bool(same.all()):
            index = tuple(int(i) for i in np.unravel_index(int(np.argmin(same)), a.shape))
            first = Verdict(False, None, name, "value", index, _plain(a[index]), _plain(b[index]))
    if first is None:
        return Verdict(True, worst)
    return replace(first, max_abs_diff=worst)


def _close(a: npt.NDArray[Any], b: npt.NDArray[Any], rtol: float, atol: float) -> tuple[npt.NDArray[np.bool_], float]:
    """Element-wise agreement, and the largest absolute difference among numbers."""
    if not _numeric(a):
        return np.asarray(a == b, dtype=np.bool_).reshape(a.shape), 0.0
    same = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    if a.size == 0:
        return same, 0.0
    wide = np.complex128 if np.iscomplexobj(a) else np.float64
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a.astype(wide) - b.astype(wide))
    exact = (a == b) | (np.isnan(a) & np.isnan(b)) if np.issubdtype(a.dtype, np.inexact) else a == b
    diff = np.where(exact, 0.0, np.where(np.isnan(diff), np.inf, diff))  # inf - inf, nan - x
    return same, float(diff.max())


def _numeric(a: npt.NDArray[Any]) -> bool:
    return np.issubdtype(a.dtype, np.number)


def _plain(value: Any) -> Any:
    """A value as JSON can hold it: non-finite floats as their names, bytes as (cut) text."""
    if isinstance(value, np.ndarray):  # an object array's element is already plain
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value[:_MAX_TEXT].decode("utf-8", "backslashreplace")
    if isinstance(value, complex):
        return [_plain(value.real), _plain(value.imag)]
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": JSON has no such numbers
    return value
