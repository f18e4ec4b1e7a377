"""Predict: REST JSON <-> PredictRequest / PredictResponse. Pure: no aiohttp, no grpc.

Request shapes (spec §4)::

    {"signature_name": "s",                       # optional
     "instances": [<value>, ...]}                 # row: one item per batch row, or
     "instances": [{"a": <value>, "b": ...}, ...] # row, named inputs
     "inputs": <value> | {"a": <value>, ...}}     # columnar: whole tensors

    <value> := number | string | true | false | {"b64": "<base64>"} | [<value>, ...]

Response shapes (spec §5)::

    {"predictions": [<row>, ...]}                 # row request, one output
    {"predictions": [{"y": <row>, "z": ...}, ...]}# row request, several outputs
    {"outputs": <tensor>}                         # columnar, one output
    {"outputs": {"y": <tensor>, "z": ...}}        # columnar, several outputs

Floats print as the shortest text that round-trips in the tensor's own dtype;
non-finite values as bare ``NaN`` / ``Infinity`` / ``-Infinity``; outputs whose alias
ends in ``_bytes`` as ``{"b64": ...}``.

Conversion has two paths with one contract. The fast path hands whole nested lists
to numpy. When it cannot be sure (ragged lists, strings, mixed types, bools,
out-of-range values), the exact path walks the value like TF Serving's json_tensor.cc
and raises the same error, naming the input, element index, and expected vs. actual.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson

from gateway._pb.tensorflow.core.framework import tensor_pb2
from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway._pb.tensorflow_serving.apis import predict_pb2
from gateway.codec.fastjson import NumericJson
from gateway.codec.jsonio import debug_string, non_finite_token
from gateway.codec.tensors import SUPPORTED, DType, dtype_name, from_proto, of_array, to_proto
from gateway.errors import GatewayError, InvalidArgument, Unimplemented

Format = Literal["row", "columnar"]
DEFAULT_SIGNATURE = "serving_default"

_NUMPY_OPTS = orjson.OPT_SERIALIZE_NUMPY
_WHITESPACE = re.compile(rb"[ \t\n\v\f\r]")


@dataclass(frozen=True, slots=True)
class Limits:
    max_tensor_elements: int = 1 << 26


def bools_need_scan(sig: meta_graph_pb2.SignatureDef) -> bool:
    """Whether a body for ``sig`` must be scanned for true/false: only numeric (non-bool, non-string)
    inputs care, since numpy would read true/false among numbers as 1/0."""
    return any(
        (dtype := SUPPORTED.get(info.dtype)) is not None and not dtype.is_string and dtype.name != "bool"
        for info in sig.inputs.values()
    )


def bools_possible(body: bytes) -> bool:
    """Whether a body may hold JSON true/false: two memchr-speed scans, no parsing."""
    return b"true" in body or b"false" in body


@dataclass(frozen=True, slots=True)
class Tensor:
    """One converted input: validated values and their shape."""

    dtype: DType
    shape: tuple[int, ...]
    values: npt.NDArray[np.generic] | list[bytes]

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # np.prod costs microseconds per call on tiny shapes

    def to_proto(self) -> tensor_pb2.TensorProto:
        return to_proto(self.values, self.dtype, self.shape)


# --------------------------------------------------------------------------- request


def signature_name(doc: Mapping[str, Any]) -> str:
    """The requested signature ("" means default); checked before the signature lookup (spec §4.1)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise InvalidArgument(
            f"JSON Value: {debug_string(doc)} not formatted correctly. 'signature_name' key must be a string value."
        )
    return name


def find_signature(sigs: Mapping[str, meta_graph_pb2.SignatureDef], name: str) -> meta_graph_pb2.SignatureDef:
    sig = sigs.get(name or DEFAULT_SIGNATURE)
    if sig is None:
        raise InvalidArgument(f'Serving signature name: "{name or DEFAULT_SIGNATURE}" not found in signature def')
    return sig


def request_format(doc: Mapping[str, Any]) -> Format:
    if "instances" in doc and "inputs" in doc:
        raise InvalidArgument(
            f"JSON Value: {debug_string(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if "instances" in doc:
        return "row"
    if "inputs" in doc:
        return "columnar"
    raise InvalidArgument("Missing 'inputs' or 'instances' key")


def decode_predict_inputs(
    doc: Mapping[str, Any],
    sig: meta_graph_pb2.SignatureDef,
    sig_name: str,
    limits: Limits = Limits(),
    *,
    bools_possible: bool = True,
) -> tuple[Format, dict[str, Tensor]]:
    """JSON body -> validated input tensors keyed by alias (spec §4.1 steps 4-7)."""
    if not sig.inputs:
        raise InvalidArgument(f"Failed to get input map for signature: {sig_name or 'DEFAULT'}")
    fmt = request_format(doc)
    dtypes = {alias: info.dtype for alias, info in sig.inputs.items()}
    if fmt == "row":
        tensors = _decode_rows(doc, doc["instances"], dtypes, bools_possible)
    else:
        tensors = _decode_columns(doc["inputs"], dtypes, bools_possible)
    total = sum(t.size for t in tensors.values())
    if total > limits.max_tensor_elements:
        raise InvalidArgument(
            f"Request holds {total} tensor elements, more than the limit of {limits.max_tensor_elements}",
            details={"elements": total, "max_tensor_elements": limits.max_tensor_elements},
        )
    return fmt, tensors


def build_predict_request(
    model_spec: Any, tensors: Mapping[str, Tensor], output_filter: Sequence[str] = ()
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.CopyFrom(model_spec)
    for alias, tensor in tensors.items():
        request.inputs[alias].CopyFrom(tensor.to_proto())
    request.output_filter.extend(output_filter)
    return request


def _decode_columns(value: Any, dtypes: Mapping[str, int], bools_possible: bool) -> dict[str, Tensor]:
    if isinstance(value, NumericJson):
        fast = _from_numeric_json(value, dtypes)
        if fast is not None:
            return fast
        value = value.value()
    if not isinstance(value, dict) or is_b64(value):
        if len(dtypes) != 1:
            raise InvalidArgument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        ((alias, dtype),) = dtypes.items()
        return {alias: convert(value, dtype, alias, bools_possible)}
    tensors = {}
    for alias in sorted(dtypes):
        if alias not in value:
            raise InvalidArgument(f"Missing named input: {alias} in 'inputs' object.")
        tensors[alias] = convert(value[alias], dtypes[alias], alias, bools_possible)
    return tensors


def _decode_rows(
    doc: Mapping[str, Any], rows: Any, dtypes: Mapping[str, int], bools_possible: bool
) -> dict[str, Tensor]:
    if isinstance(rows, NumericJson):
        # A whole regular array is both the stack of its rows and one columnar tensor.
        fast = _from_numeric_json(rows, dtypes)
        if fast is not None:
            return fast
        rows = rows.value()
    if not isinstance(rows, list):
        raise InvalidArgument(f"JSON Value: {debug_string(doc)} Expecting 'instances' to be an list/array")
    if not rows:
        raise InvalidArgument(f"JSON Value: {debug_string(doc)} No values in 'instances' array")
    named = isinstance(rows[0], dict) and not is_b64(rows[0])
    if not named:
        if len(dtypes) != 1:
            raise InvalidArgument(
                "instances is a plain list, but expecting list of objects as multiple input tensors "
                "required as per tensorinfo_map"
            )
        ((alias, dtype),) = dtypes.items()
        return {alias: _stack_rows(rows, dtype, alias, None, bools_possible)}
    expected = sorted(dtypes)
    for index, row in enumerate(rows):
        _check_named_row(index, row, dtypes, expected)
    return {
        alias: _stack_rows([row[alias] for row in rows], dtypes[alias], alias, alias, bools_possible)
        for alias in expected
    }


def _check_named_row(index: int, row: Any, dtypes: Mapping[str, int], expected: list[str]) -> None:
    if not isinstance(row, dict) or is_b64(row):
        kind = "list" if isinstance(row, list) else json_type(row).lower()
        raise InvalidArgument(f"Expecting object but got {kind} at item {index} of input list")
    for key in row:
        if key not in dtypes:
            raise InvalidArgument(
                f"Failed to process element: {index} of 'instances' list. JSON object: does not have named input: {key}"
            )
    if len(row) != len(expected):
        raise InvalidArgument(
            f"Failed to process element: {index} of 'instances' list. JSON object: {debug_string(row)} "
            f"keys must be equal to: {','.join(expected)}"
        )


def _stack_rows(rows: list[Any], dtype_enum: int, alias: str, key: str | None, bools_possible: bool) -> Tensor:
    """Row format: each item is one batch row; the tensor is their stack."""
    dtype = SUPPORTED.get(dtype_enum)
    if dtype is not None and not dtype.is_string:
        fast = _fast_numeric(rows, dtype, bools_possible)
        if fast is not None:
            return fast
    elif dtype is not None:
        strings = _scalar_strings(rows)
        if strings is not None:
            return Tensor(dtype, (len(strings),), strings)
    first: Tensor | None = None
    pieces: list[Tensor] = []
    for index, row in enumerate(rows):
        where = f"Failed to process element: {index}{'' if key is None else ' key: ' + key} of 'instances' list."
        if key is None and isinstance(row, dict) and not is_b64(row):
            raise InvalidArgument(f"Expecting value/list but got object at item {index} of input list")
        try:
            piece = convert(row, dtype_enum, alias, bools_possible)
        except GatewayError as exc:
            code = "UNIMPLEMENTED" if isinstance(exc, Unimplemented) else "INVALID_ARGUMENT"
            raise InvalidArgument(f"{where} Error: {code}: {exc.message}", details=exc.details) from None
        if first is None:
            first = piece
        elif piece.size != first.size:
            raise InvalidArgument(
                f"{where} Expecting tensor size: {first.size} but got: {piece.size}",
                details={"input": alias, "index": index},
            )
        elif piece.shape != first.shape:
            raise InvalidArgument(
                f"{where} Expecting shape {_shape_text(first.shape)} but got: {_shape_text(piece.shape)}",
                details={"input": alias, "index": index},
            )
        pieces.append(piece)
    assert first is not None
    shape = (len(pieces), *first.shape)
    if first.dtype.is_string:
        return Tensor(first.dtype, shape, [v for p in pieces for v in p.values])
    return Tensor(first.dtype, shape, np.stack([np.asarray(p.values) for p in pieces]).reshape(shape))


def _scalar_strings(rows: list[Any]) -> list[bytes] | None:
    """Rows that are each one string or one canonical ``{"b64": ...}``, decoded in a tight loop;
    None when anything else (or a value to reject) needs the exact path and its messages."""
    out = []
    for row in rows:
        if type(row) is str:
            out.append(row.encode("utf-8", "surrogatepass"))
        elif type(row) is dict and len(row) == 1 and type(row.get("b64")) is str:
            try:
                out.append(binascii.a2b_base64(row["b64"], strict_mode=True))
            except (binascii.Error, ValueError):
                return None
        else:
            return None
    return out


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


# --------------------------------------------------------------------------- values


def convert(value: Any, dtype_enum: int, alias: str, bools_possible: bool = True) -> Tensor:
    """One JSON value -> one tensor of the signature's dtype, or TF Serving's error."""
    dtype = SUPPORTED.get(dtype_enum)
    if dtype is None:
        raise Unimplemented(
            f"Conversion of JSON Value: {debug_string(_first_leaf(value))} to type: {dtype_name(dtype_enum)}",
            details={"input": alias},
        )
    if not dtype.is_string:
        fast = _fast_numeric(value, dtype, bools_possible)
        if fast is not None:
            return fast
    shape = _infer_shape(value)
    flat: list[Any] = []
    _walk(value, shape, 0, flat, dtype, alias)
    if dtype.is_string:
        return Tensor(dtype, shape, flat)
    assert dtype.numpy is not None
    return Tensor(dtype, shape, _cast(np.array(flat, dtype=_wide(dtype)), dtype).reshape(shape))


def _first_leaf(value: Any) -> Any:
    # TF Serving fails on the first leaf it converts, so that is the value it names.
    while isinstance(value, list) and value:
        value = value[0]
    return value


def _from_numeric_json(value: NumericJson, dtypes: Mapping[str, int]) -> dict[str, Tensor] | None:
    """The tensor of a body's pre-parsed number array, or None when the exact path must look."""
    dtype = SUPPORTED.get(next(iter(dtypes.values()))) if len(dtypes) == 1 else None
    if dtype is None or dtype.is_string:
        return None
    fast = _fast_numeric(value.array(floating=dtype.is_float), dtype, bools_possible=False)
    return None if fast is None else {next(iter(dtypes)): fast}


def _fast_numeric(value: Any, dtype: DType, bools_possible: bool) -> Tensor | None:
    """numpy's view of a homogeneous numeric value, or None when the exact path must decide."""
    if isinstance(value, dict | str) or value is None:
        return None
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):
        return None
    if array.size == 0:
        # Only nested empty lists make an empty array: their dtype is numpy's guess.
        return Tensor(dtype, array.shape, np.zeros(array.shape, dtype=dtype.numpy))
    if not _compatible(array, dtype, bools_possible):
        return None
    return Tensor(dtype, array.shape, _cast(array, dtype))


def _compatible(array: npt.NDArray[Any], dtype: DType, bools_possible: bool) -> bool:
    kind = array.dtype.kind
    if bools_possible and dtype.name != "bool":
        # numpy turns true/false into 1/0 next to numbers; only the exact path can tell.
        return False
    if dtype.is_float:
        return kind in "iuf"
    if dtype.is_int:
        if kind not in "iu":
            return False
        assert dtype.lo is not None and dtype.hi is not None
        return bool(int(array.min()) >= dtype.lo and int(array.max()) <= dtype.hi)
    return kind == "b"


def _wide(dtype: DType) -> Any:
    if dtype.is_float:
        return np.float64
    if dtype.is_int:
        return np.uint64 if dtype.name == "uint64" else np.int64
    return dtype.numpy


def _cast(array: npt.NDArray[Any], dtype: DType) -> npt.NDArray[np.generic]:
    assert dtype.numpy is not None
    if dtype.is_float and array.dtype.kind in "iu":
        # TF Serving reads every JSON number as a double first, then casts.
        array = array.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return array.astype(dtype.numpy, copy=False)


def _infer_shape(value: Any) -> tuple[int, ...]:
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _walk(value: Any, shape: tuple[int, ...], depth: int, out: list[Any], dtype: DType, alias: str) -> None:
    rank = len(shape)
    if isinstance(value, list):
        if depth >= rank:
            raise InvalidArgument(
                f"Encountered list at unexpected level: {depth} expected < {rank}",
                details={"input": alias},
            )
        if len(value) != shape[depth]:
            raise InvalidArgument(
                f"Encountered list at unexpected size: {len(value)} at level: {depth} expected size: {shape[depth]}",
                details={"input": alias, "level": depth, "expected": shape[depth], "actual": len(value)},
            )
        for item in value:
            _walk(item, shape, depth + 1, out, dtype, alias)
        return
    if depth != rank:
        raise InvalidArgument(
            f"JSON Value: {debug_string(value)} found at incorrect level: {depth + 1} in the JSON DOM. "
            f"Expected at level: {rank}",
            details={"input": alias},
        )
    out.append(_leaf(value, dtype, alias, len(out)))


def _leaf(value: Any, dtype: DType, alias: str, index: int) -> Any:
    if dtype.is_string:
        return _string_leaf(value, alias, index)
    ok = (
        isinstance(value, bool)
        if dtype.name == "bool"
        else _is_number(value) and (dtype.is_float or isinstance(value, int))
    )
    if not ok:
        raise _type_error(value, dtype, alias, index)
    if dtype.is_int:
        assert dtype.lo is not None and dtype.hi is not None
        if not dtype.lo <= value <= dtype.hi:
            raise InvalidArgument(
                f"JSON Value: {value} is out of range for type: {dtype.name} [{dtype.lo}, {dtype.hi}]",
                details={"input": alias, "index": index, "expected": dtype.name, "actual": str(value)},
            )
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _string_leaf(value: Any, alias: str, index: int) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, dict):
        if not is_b64(value):
            raise InvalidArgument(
                f"JSON Value: {debug_string(value)} not formatted correctly for base64 data",
                details={"input": alias, "index": index},
            )
        return b64decode(value["b64"], alias, index)
    raise _type_error(value, SUPPORTED[7], alias, index)


def _type_error(value: Any, dtype: DType, alias: str, index: int) -> InvalidArgument:
    actual = json_type(value)
    return InvalidArgument(
        f"JSON Value: {debug_string(value)} Type: {actual} is not of expected type: {dtype.name}",
        details={"input": alias, "index": index, "expected": dtype.name, "actual": actual},
    )


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def b64decode(text: str, alias: str = "", index: int = 0) -> bytes:
    """Decode like absl::Base64Unescape: whitespace skipped, padding optional, '.' pads."""
    try:
        # The common case, canonical padded base64, in one C call; anything else takes the exact path.
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    raw = _WHITESPACE.sub(b"", text.encode("ascii", "replace")).replace(b".", b"=")
    unpadded = raw.rstrip(b"=")
    if len(unpadded) % 4 == 1 or (raw != unpadded and len(raw) % 4):
        raise InvalidArgument("Unable to base64 decode", details={"input": alias, "index": index})
    try:
        return base64.b64decode(unpadded + b"=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("Unable to base64 decode", details={"input": alias, "index": index}) from None


# --------------------------------------------------------------------------- response


def encode_predict_response(response: predict_pb2.PredictResponse, fmt: Format) -> bytes:
    """PredictResponse -> the REST body (spec §5). Output aliases are written sorted."""
    return encode_outputs(output_arrays(response), fmt)


def output_arrays(response: predict_pb2.PredictResponse) -> dict[str, npt.NDArray[Any]]:
    return {alias: from_proto(response.outputs[alias]) for alias in sorted(response.outputs)}


def encode_outputs(arrays: Mapping[str, npt.NDArray[Any]], fmt: Format) -> bytes:
    """Output tensors (sorted by alias) -> the REST body; micro-batching hands in row slices."""
    if not arrays:
        raise InvalidArgument("Cannot convert empty tensor map to JSON")
    arrays = _writable(arrays)
    if fmt == "columnar":
        return _encode_columnar(arrays)
    return _encode_rows(arrays)


def _writable(arrays: Mapping[str, npt.NDArray[Any]]) -> Mapping[str, npt.NDArray[Any]]:
    """TF Serving's JSON writer has no case for DT_HALF, DT_BFLOAT16 or DT_UINT16 (spec §5.2): it fails
    the whole request on the first such value it writes, so an empty tensor of one still passes
    (written as its nested empty lists, which any numeric dtype prints alike)."""
    out = dict(arrays)
    for alias, array in arrays.items():
        dtype = of_array(array)
        if dtype is not None and dtype.enum in SUPPORTED:
            continue
        if array.size:
            raise InvalidArgument(
                f"Failed to write JSON value for tensor type: {'unknown' if dtype is None else dtype.name}"
            )
        out[alias] = array.astype(np.float32)
    return out


def _encode_columnar(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    if len(arrays) == 1:
        ((alias, array),) = arrays.items()
        return orjson.dumps({"outputs": tensor_json(array, alias)})
    return orjson.dumps({"outputs": {alias: tensor_json(a, alias) for alias, a in arrays.items()}})


def _encode_rows(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    batch: int | None = None
    for alias, array in arrays.items():
        if array.ndim == 0:
            raise InvalidArgument(f"Tensor name: {alias} has no shape information ")
        if batch is not None and array.shape[0] != batch:
            raise InvalidArgument(
                f"Tensor name: {alias} has inconsistent batch size: {array.shape[0]} expecting: {batch}"
            )
        batch = array.shape[0]
    if len(arrays) == 1:
        ((alias, array),) = arrays.items()
        return orjson.dumps({"predictions": tensor_json(array, alias)})
    assert batch is not None
    rows = [{alias: tensor_json(a[i, ...], alias) for alias, a in arrays.items()} for i in range(batch)]
    return orjson.dumps({"predictions": rows})


def tensor_json(array: npt.NDArray[Any], alias: str) -> orjson.Fragment:
    """One tensor (or sub-tensor) as JSON text."""
    if array.dtype == object:
        return orjson.Fragment(orjson.dumps(_strings(array, alias.endswith("_bytes")).tolist()))
    if array.ndim == 0:
        return orjson.Fragment(_scalar_json(array.reshape(1)[0]))
    text = orjson.dumps(array, option=_NUMPY_OPTS)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            text = _restore_non_finite(text, array[~finite])
    return orjson.Fragment(text)


def _scalar_json(value: np.generic) -> bytes:
    if isinstance(value, np.floating) and not np.isfinite(value):
        return non_finite_token(float(value))
    return orjson.dumps(value, option=_NUMPY_OPTS)


def _restore_non_finite(text: bytes, non_finite: npt.NDArray[Any]) -> bytes:
    # orjson writes null for NaN/inf. A numeric array has no other nulls, and they come
    # in row-major order, so the k-th null is the k-th non-finite value.
    parts = text.split(b"null")
    out = [parts[0]]
    for value, rest in zip(non_finite.tolist(), parts[1:], strict=True):
        out.append(non_finite_token(value))
        out.append(rest)
    return b"".join(out)


def _strings(array: npt.NDArray[Any], as_b64: bool) -> npt.NDArray[Any]:
    flat = array.ravel()
    out = np.empty(flat.size, dtype=object)
    if as_b64:
        out[:] = [{"b64": base64.b64encode(v).decode("ascii")} for v in flat]
    else:
        # TF Serving copies raw bytes, producing invalid JSON for non-UTF-8 strings; we
        # substitute U+FFFD instead (README: Differences from TF Serving).
        out[:] = [v.decode("utf-8", "replace") for v in flat]
    return out.reshape(array.shape)
