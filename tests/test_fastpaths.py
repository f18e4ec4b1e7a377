"""Fast paths against the exact path: the same tensors, request bytes and JSON, or the same error.

Each property runs one input both ways. The fast JSON-array parser (gateway/codec/fastjson.py) is
fed bodies that it should take (regular number arrays in many spellings) and bodies that it
must refuse (NaN, strings, bools, null, b64, ragged or empty lists, bad numbers, extra keys).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway._pb.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway._pb.tensorflow_serving.apis import model_pb2, predict_pb2
from gateway.codec import fastjson, jsonio, messages, wire
from gateway.codec import predict as codec
from gateway.codec import tensors as codec_tensors
from gateway.codec.tensors import to_proto
from gateway.errors import GatewayError
from gateway.ops import gctune
from gateway.pipeline import batching

DTYPES = [
    types_pb2.DT_FLOAT,
    types_pb2.DT_DOUBLE,
    types_pb2.DT_INT32,
    types_pb2.DT_INT64,
    types_pb2.DT_UINT8,
    types_pb2.DT_BOOL,
    types_pb2.DT_STRING,
    types_pb2.DT_HALF,
]
ODD_TOKENS = [
    "-0",
    "-0.0",
    "1E-2",
    "1.5e+3",
    "1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "1.",
    ".5",
    "01",
    "+1",
]
NOT_NUMBERS = ["NaN", "Infinity", "-Infinity", "true", "false", "null", '"s"', '{"b64": "AA=="}', "{}", "[]"]
SPACES = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@pytest.fixture(autouse=True)
def small_bodies_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(gctune, "LARGE_BODY_BYTES", 0)
    yield


def _signature(dtype: int) -> meta_graph_pb2.SignatureDef:
    sig = meta_graph_pb2.SignatureDef()
    sig.inputs["x"].dtype = dtype
    sig.inputs["x"].tensor_shape.dim.add(size=-1)
    return sig


@st.composite
def leaves(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind < 4:
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False, width=draw(st.sampled_from([32, 64])))))
    if kind < 8:
        return str(draw(st.integers(-(2**66), 2**66) if kind == 7 else st.integers(-300, 300)))
    return draw(st.sampled_from(ODD_TOKENS + NOT_NUMBERS if kind == 9 else ODD_TOKENS))


@st.composite
def arrays(draw: st.DrawFn) -> str:
    """JSON text of a nested list: mostly regular numbers, sometimes ragged or odd."""
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    ragged = draw(st.integers(0, 7)) == 0
    odd = draw(st.integers(0, 5)) == 0

    def render(depth: int) -> str:
        size = shape[depth] - (1 if ragged and draw(st.booleans()) else 0)
        if depth == len(shape) - 1:
            items = [
                draw(leaves()) if odd else draw(leaves().filter(lambda t: t not in NOT_NUMBERS)) for _ in range(size)
            ]
        else:
            items = [render(depth + 1) for _ in range(size)]
        sep = draw(SPACES)
        return "[" + sep + ("," + sep).join(items) + sep + "]"

    return render(0)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    key = draw(st.sampled_from(["instances", "inputs"]))
    fields = [f'"{key}":{draw(SPACES)}{draw(arrays())}']
    extra = draw(st.sampled_from([None, '"signature_name": ""', '"signature_name": 5', '"other": 1', f'"{key}": 1']))
    if extra:
        fields.insert(draw(st.integers(0, 1)), extra)
    return ("{" + draw(SPACES) + ",".join(fields) + "}").encode()


def outcome(body: bytes, dtype: int, fast: bool) -> tuple[Any, ...]:
    """What the predict pipeline makes of a body: request bytes (canonical) or the error."""
    sig = _signature(dtype)
    spec = model_pb2.ModelSpec(name="m")
    try:
        doc = fastjson.parse_predict(body, max_depth=64) if fast else None
        parsed = doc if doc is not None else jsonio.parse_object(body, max_depth=64)
        bools = doc is None and codec.bools_possible(body)
        _, tensors = codec.decode_predict_inputs(parsed, sig, "", bools_possible=bools)
        if fast:
            raw = wire.predict_request(spec, tensors)
        else:
            raw = codec.build_predict_request(spec, tensors).SerializeToString()
    except GatewayError as exc:
        return ("error", type(exc).__name__, exc.message, exc.details)
    return ("ok", predict_pb2.PredictRequest.FromString(raw).SerializeToString(deterministic=True))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies(), dtype=st.sampled_from(DTYPES))
def test_fast_json_path_matches_the_exact_path(body: bytes, dtype: int) -> None:
    assert outcome(body, dtype, fast=True) == outcome(body, dtype, fast=False)


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data())
def test_regular_number_arrays_take_the_fast_path(shape: list[int], data: st.DataObject) -> None:
    values = data.draw(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))
        )
    )
    text = repr(np.array(values).reshape(shape).tolist()).encode()
    parsed = fastjson.parse_array(text)
    assert parsed is not None and parsed.shape == tuple(shape)
    assert np.array_equal(parsed.array(floating=True), np.asarray(jsonio.parse_fast(text, 64)), equal_nan=True)


@pytest.mark.parametrize(
    "text",
    [
        b"[]",
        b"[[]]",
        b"[[1,2],[3]]",
        b"[[1],[2,3]]",
        b"[1,[2]]",
        b"[[1,2]3]",
        b"[1 2]",
        b"[NaN]",
        b"[true]",
        b"[1,]",
        b'["1"]',
    ],
)
def test_irregular_or_odd_arrays_are_refused(text: bytes) -> None:
    assert fastjson.parse_array(text) is None


def test_placeholder_lookalikes_do_not_fool_the_document_check() -> None:
    body = b'{"instances": [1, 2], "signature_name": "' + fastjson.PLACEHOLDER.encode() + b'"}'
    assert fastjson.parse_predict(body, max_depth=64) is None


@st.composite
def tensors(draw: st.DrawFn) -> codec.Tensor:
    dtype = codec.SUPPORTED[draw(st.sampled_from([1, 2, 3, 9, 10, 7]))]
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    count = int(np.prod(shape, dtype=np.int64))
    if dtype.is_string:
        return codec.Tensor(dtype, shape, draw(st.lists(st.binary(max_size=5), min_size=count, max_size=count)))
    assert dtype.numpy is not None
    raw = draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=count, max_size=count))
    return codec.Tensor(dtype, shape, np.array(raw).astype(dtype.numpy).reshape(shape))


@settings(max_examples=200, deadline=None)
@given(
    inputs=st.dictionaries(st.text(min_size=1, max_size=4), tensors(), max_size=3),
    filters=st.lists(st.text(max_size=3), max_size=2),
)
def test_wire_bytes_parse_to_the_protobuf_request(inputs: dict[str, codec.Tensor], filters: list[str]) -> None:
    spec = model_pb2.ModelSpec(name="m", signature_name="s")
    spec.version.value = 3
    direct = predict_pb2.PredictRequest.FromString(wire.predict_request(spec, inputs, filters))
    assert direct == codec.build_predict_request(spec, inputs, filters)


@st.composite
def batch_outputs(draw: st.DrawFn) -> tuple[list[int], dict[str, np.ndarray[Any, Any]]]:
    rows = draw(st.lists(st.integers(1, 3), min_size=1, max_size=5))
    widths = draw(
        st.dictionaries(st.sampled_from(["y", "z", "a_bytes"]), st.lists(st.integers(1, 3), max_size=2), min_size=1)
    )
    outputs = {}
    for alias, width in widths.items():
        shape = (sum(rows), *width)
        values = draw(st.lists(st.floats(width=32), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        outputs[alias] = np.array(values, dtype=np.float32).reshape(shape)
    return rows, dict(sorted(outputs.items()))  # as codec.output_arrays hands them over


@settings(max_examples=200, deadline=None)
@given(case=batch_outputs(), fmt=st.sampled_from(["row", "columnar"]))
def test_batch_slices_encode_like_their_own_responses(
    case: tuple[list[int], dict[str, Any]], fmt: codec.Format
) -> None:
    rows, outputs = case
    members = [batching._Member({}, n, None) for n in rows]  # type: ignore[arg-type]
    parts = batching.split(outputs, members)
    assert parts is not None
    start = 0
    for n, part in zip(rows, parts, strict=True):
        alone = predict_pb2.PredictResponse()
        for alias, array in outputs.items():
            alone.outputs[alias].CopyFrom(
                to_proto(array[start : start + n], codec.SUPPORTED[1], array[start : start + n].shape)
            )
        assert codec.encode_outputs(part, fmt) == codec.encode_predict_response(alone, fmt)
        start += n


def test_shape_dims_of_zero_are_left_out_like_protobuf_does() -> None:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in (0, 2)]
    assert wire.shape([0, 2]) == tensor_shape_pb2.TensorShapeProto(dim=dims).SerializeToString()


_STRING_ROW = st.one_of(
    st.text(max_size=8),
    st.binary(max_size=12).map(lambda raw: {"b64": base64.b64encode(raw).decode()}),
    # Non-canonical forms the strict decoder refuses: the exact path must take them.
    st.binary(min_size=1, max_size=12).map(lambda raw: {"b64": base64.b64encode(raw).decode()[:-1]}),
    st.sampled_from([{"b64": "QU JD"}, {"b64": "QUI."}, {"b64": "!!"}, {"b64": 1}, 3, None, [1]]),
)


@given(rows=st.lists(_STRING_ROW, min_size=1, max_size=6))
def test_string_rows_fast_path_matches_the_exact_path(rows: list[Any]) -> None:
    """Scalar string rows decoded in one loop give what the per-row walk gives, errors included."""
    string = types_pb2.DT_STRING
    try:
        fast: Any = codec._stack_rows(rows, string, "x", None, False)
    except GatewayError as exc:
        fast = exc.message
    exact: Any
    try:
        pieces = [codec.convert(row, string, "x") for row in rows]
        exact = [v for piece in pieces for v in piece.values] if all(p.shape == () for p in pieces) else None
    except GatewayError:
        exact = "error"
    if isinstance(fast, str):
        assert exact == "error" or exact is None, (rows, fast)
    else:
        assert fast.shape == (len(rows),) and fast.values == exact


real_field_spans = messages.field_spans
_TYPED_FLOATS = {types_pb2.DT_FLOAT: ("float_val", 32), types_pb2.DT_DOUBLE: ("double_val", 64)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from(sorted(_TYPED_FLOATS)), data=st.data())
def test_typed_float_fields_read_from_their_wire_bytes_match_protobufs_list(
    dtype: int, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ModelServer's default ``float_val`` replies, read as packed bytes, equal the element-by-element read."""
    field, width = _TYPED_FLOATS[dtype]
    monkeypatch.setattr(codec_tensors, "PACKED_MIN_VALUES", 2)  # small drawn tensors take the wire path too
    spans: list[list[tuple[int, int]]] = []
    monkeypatch.setattr(messages, "field_spans", lambda *a: spans.append(real_field_spans(*a)) or spans[-1])
    values = data.draw(st.lists(st.floats(width=width), min_size=2, max_size=40))
    padded = data.draw(st.integers(0, 3))  # a shape with more elements: the last value repeats
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto())
    proto.tensor_shape.dim.add(size=len(values) + padded)
    getattr(proto, field).extend(values)
    exact = np.asarray(values + values[-1:] * padded, dtype=codec_tensors.SUPPORTED[dtype].numpy)
    got = codec_tensors.from_proto(proto)
    assert spans and len(spans[-1]) == 1  # the wire path ran
    assert got.dtype == exact.dtype and got.shape == exact.shape
    assert got.tobytes() == exact.tobytes()
