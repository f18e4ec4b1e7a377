"""Hypothesis strategies for hostile TF Serving requests: valid structure with one bad part.

A drawn :class:`Case` is a real request to the standard model zoo (row or columnar
``instances``/``inputs``, named inputs, ``signature_name``, ``{"b64": ...}`` values,
``examples`` and ``context`` for classify and regress) into which zero to two hostile
fragments from ``fuzz/hostile.py`` are spliced (deep nesting up to 10^5 levels, numeric
literals up to 10^4 digits, long strings and escape runs, invalid surrogates, duplicate
keys, ragged or broken big arrays, garbage), at any position: a top-level key, inside an
object, inside a list, or as an extra key the gateway ignores. The finished body may then
be damaged (truncated, trailing garbage, a BOM, two documents) and wrapped in a
``Content-Encoding`` that is valid, lying or broken.

Every drawn value is a small recipe whose ``repr`` reads as what it is; the bytes are
rendered only when sent.
"""

from __future__ import annotations

import base64
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
import hostile

MODEL = "half_plus_two"  # the zoo of tests/harness.py: install_models

# --------------------------------------------------------------------------- hostile fragments

# Edges (the default max_json_depth of 64, Python's 4,300-digit int limit) plus a uniform draw and
# a draw from the top half: stalls and limits show at the big end, where Hypothesis rarely goes.
DEPTHS = st.one_of(
    st.sampled_from([63, 64, 65, 1_000, 10_000, hostile.MAX_DEPTH]),
    st.integers(1, hostile.MAX_DEPTH),
    st.integers(hostile.MAX_DEPTH // 2, hostile.MAX_DEPTH),
)
DIGITS = st.one_of(
    st.sampled_from([308, 309, 4_300, 4_301, hostile.MAX_DIGITS]),
    st.integers(1, hostile.MAX_DIGITS),
    st.integers(4_301, hostile.MAX_DIGITS),
)

deep = st.builds(
    hostile.Deep,
    depth=DEPTHS,
    kind=st.sampled_from(hostile.DEEP_KINDS),
    close=st.sampled_from(hostile.DEEP_CLOSES),
    leaf=st.sampled_from([b"1", b'"s"', b"[]", b"{}", b"", b"NaN"]),
)
long_numbers = st.builds(hostile.LongNumber, digits=DIGITS, form=st.sampled_from(hostile.NUMBER_FORMS))
long_strings = st.builds(
    hostile.LongString,
    count=st.one_of(st.integers(0, 64), st.sampled_from([10_000, 100_000])),
    unit=st.sampled_from(hostile.STRING_UNITS),
)
surrogates = st.builds(hostile.Surrogate, index=st.integers(0, len(hostile.SURROGATES) - 1))
keys = st.builds(
    hostile.Keys, count=st.one_of(st.integers(0, 8), st.sampled_from([10_000, 100_000])), distinct=st.booleans()
)
many_objects = st.builds(hostile.ManyObjects, count=st.sampled_from([0, 1, 1_000, 100_000]))
regular = st.builds(
    hostile.Regular,
    rows=st.sampled_from([1, 2, 3_000, 20_000]),
    cols=st.sampled_from([1, 3, 8]),
    defect=st.sampled_from(hostile.REGULAR_DEFECTS),
)
b64s = st.builds(hostile.B64, length=st.sampled_from([0, 3, 4, 5, 100_000]), valid=st.booleans())
garbage = st.builds(hostile.Garbage, data=st.binary(max_size=32))

fragments = st.one_of(deep, long_numbers, long_strings, surrogates, keys, many_objects, regular, b64s, garbage)

# --------------------------------------------------------------------------- valid structure

floats = st.floats(-1e6, 1e6, allow_nan=False, width=32) | st.sampled_from([0, 1, -1, 2.5])
texts = st.text(max_size=8)
b64_values = st.binary(max_size=6).map(lambda raw: {"b64": base64.b64encode(raw).decode()})


def _rows(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(leaf, min_size=1, max_size=4)


def _half_plus_two() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    doc = st.one_of(
        st.fixed_dictionaries({"instances": _rows(floats)}),
        st.fixed_dictionaries({"inputs": _rows(floats) | st.fixed_dictionaries({"x": _rows(floats)})}),
        st.fixed_dictionaries({"signature_name": st.just("serving_default"), "instances": _rows(floats)}),
    )
    path = st.sampled_from(
        [
            f"/v1/models/{MODEL}:predict",
            f"/v1/models/{MODEL}/versions/2:predict",
            f"/v1/models/{MODEL}/labels/stable:predict",
            "/model-serving/my-dep:predict",
        ]
    )
    return st.tuples(path, doc)


def _multi() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    row = st.fixed_dictionaries({"alpha": floats, "beta": _rows(floats)})
    columns = st.fixed_dictionaries({"alpha": _rows(floats), "beta": _rows(_rows(floats))})
    doc = st.fixed_dictionaries({"instances": _rows(row)}) | st.fixed_dictionaries({"inputs": columns})
    return st.tuples(st.sampled_from(["/v1/models/multi:predict", "/model-serving/multi-dep:predict"]), doc)


def _types() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    by_dtype = {
        "string": texts | b64_values,
        "string_bytes": b64_values,
        "bool": st.booleans(),
        "int8": st.integers(-128, 127),
        "uint64": st.integers(0, 2**64 - 1),
        "int64": st.integers(-(2**63), 2**63 - 1),
        "double": floats,
        "half": floats,
    }
    docs = [
        st.fixed_dictionaries({"signature_name": st.just(name), key: _rows(leaf)})
        for name, leaf in by_dtype.items()
        for key in ("instances", "inputs")
    ]
    return st.tuples(st.just("/v1/models/types:predict"), st.one_of(docs))


def _examples(verb: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    feature = floats | texts | _rows(floats) | _rows(st.integers(-5, 5)) | _rows(texts) | b64_values
    example = st.dictionaries(st.sampled_from(["x", "s", "l", "b"]), feature, min_size=1, max_size=3)
    doc = st.fixed_dictionaries(
        {"signature_name": st.just(f"{verb}_x_to_y"), "examples": st.lists(example, min_size=1, max_size=3)},
        optional={"context": example},
    )
    paths = [f"/v1/models/{MODEL}:{verb}", f"/v1/models/{MODEL}/labels/stable:{verb}", f"/model-serving/my-dep:{verb}"]
    return st.tuples(st.sampled_from(paths), doc)


valid_requests = st.one_of(_half_plus_two(), _multi(), _types(), _examples("classify"), _examples("regress"))

# --------------------------------------------------------------------------- splicing


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) in a document, the root's keys first."""
    found: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key, child in node.items():
            found.append((node, key))
            found += _slots(child)
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.append((node, index))
            found += _slots(child)
    return found


@st.composite
def hostile_documents(draw: st.DrawFn, base: st.SearchStrategy[tuple[str, dict[str, Any]]]) -> tuple[str, Any]:
    """A valid (path, document) with up to two hostile fragments spliced in."""
    path, doc = draw(base)
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(0, 2))):
        where = draw(st.sampled_from(["replace", "extra_key", "duplicate_key", "wrap"]))
        piece = draw(fragments)
        slots = _slots(doc)
        if where == "replace" and slots:
            container, key = draw(st.sampled_from(slots))
            container[key] = piece
        elif where == "duplicate_key" and isinstance(doc, dict) and doc:
            name = draw(st.sampled_from(sorted(doc)))
            doc = hostile.Pairs((*doc.items(), (name, piece)))
        elif where == "wrap" and isinstance(doc, dict) and doc:
            # The fragment's nesting around a real value: deep lists around the instances.
            name = draw(st.sampled_from(sorted(doc)))
            doc[name] = hostile.Deep(
                draw(DEPTHS), draw(st.sampled_from(hostile.DEEP_KINDS)), leaf=hostile.render(doc[name])
            )
        elif isinstance(doc, dict):
            doc[draw(st.sampled_from(["x", "signature_name", "context", "instances", "zzz"]))] = piece
    return path, doc


# --------------------------------------------------------------------------- whole requests


@dataclass(frozen=True)
class Case:
    """One HTTP request: a path, a document (with fragments), byte damage, a Content-Encoding."""

    path: str
    doc: Any
    frame: str = "none"
    frame_n: int = 0
    encoding: str | None = None
    defect: str = "none"
    encoding_n: int = 0
    extra_headers: tuple[tuple[str, str], ...] = field(default=())

    def body(self) -> bytes:
        """The rendered, damaged document (before Content-Encoding)."""
        return hostile.frame(hostile.render(self.doc), self.frame, self.frame_n)

    def must_refuse(self) -> bool:
        """A Content-Encoding the gateway cannot undo, or bytes that are certainly not that encoding."""
        if self.encoding in ("br", "zstd", "compress", "bogus"):
            return True
        return self.encoding not in (None, "identity") and self.defect in ("garbage", "trailing")

    def wire(self) -> tuple[dict[str, str], bytes]:
        """(headers, bytes on the wire)."""
        headers = {"Content-Type": "application/json", **dict(self.extra_headers)}
        data = self.body()
        if self.encoding is not None:
            headers["Content-Encoding"], data = hostile.encode(data, self.encoding, self.defect, self.encoding_n)
        return headers, data


def cases(*, compressed: bool = False) -> st.SearchStrategy[Case]:
    """Hostile requests; ``compressed``: always with a Content-Encoding (valid or broken)."""
    some_encoding = st.sampled_from(hostile.ENCODINGS)
    # Mostly plain bodies, so the fragments reach the parser instead of a 415.
    encodings = some_encoding if compressed else st.one_of(st.none(), st.none(), st.none(), some_encoding)
    return st.builds(
        _case,
        hostile_documents(valid_requests),
        # Half the bodies stay intact so the fragments reach the parser and the codec.
        frame=st.just("none") if compressed else st.just("none") | st.sampled_from(hostile.FRAMES),
        frame_n=st.integers(0, 2**16),
        encoding=encodings,
        defect=st.sampled_from(hostile.DEFECTS),
        encoding_n=st.integers(0, 2**16),
    )


def _case(request: tuple[str, Any], **kwargs: Any) -> Case:
    path, doc = request
    return Case(path, doc, **kwargs)
