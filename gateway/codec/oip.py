"""The Open Inference Protocol (KServe V2) over REST: infer JSON and binary tensor data <-> tensors. Pure.

``docs/spec/open-inference-protocol.md`` is the contract ("OIP §N" below). Request::

    {"id": "42",                                         # optional, echoed
     "parameters": {"signature_name": "s",               # optional; "" = serving_default
                    "binary_data_output": true},         # optional default for every output
     "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 3],
                 "data": [[1, 2, 3], [4, 5, 6]]},        # nested or flat, row-major, or
                {"name": "s", "datatype": "BYTES", "shape": [1],
                 "parameters": {"binary_data_size": 9}}], # raw bytes after the JSON header
     "outputs": [{"name": "y", "parameters": {"binary_data": true}}]}   # optional

With the binary extension the body is ``JSON header (Inference-Header-Content-Length bytes)``
followed by one raw segment per input that has ``binary_data_size``, in ``inputs`` order:
little-endian, row-major, BOOL one byte 0/1, BYTES as per-element uint32 LE length + bytes.

Reply::

    {"id": "42", "model_name": "m", "model_version": "2",
     "outputs": [{"name": "y", "datatype": "FP32", "shape": [2, 1], "data": [3.0, 7.5]},
                 {"name": "z", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}}]}

followed, when any output is binary, by their raw segments in ``outputs`` order.

Fixed-size raw inputs become arrays with ``np.frombuffer`` over the body (no copy, no loop);
numeric outputs leave as their array's bytes. Every malformed body is a 400 (``BinaryFraming``
for the framing): sizes are checked against the body before a byte is sliced, so nothing reads
out of bounds and nothing waits for bytes a header promised.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from gateway._pb.tensorflow.core.framework import types_pb2
from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway._pb.tensorflow_serving.apis import get_model_status_pb2
from gateway.codec import jsonio, tensors
from gateway.codec.predict import DEFAULT_SIGNATURE, Limits, Tensor
from gateway.codec.tensors import CARRIED, DType, of_array
from gateway.errors import BinaryFraming, InvalidArgument, OutputNotUtf8, Unimplemented

PLATFORM = "tensorflow_savedmodel"
EXTENSIONS = ("binary_tensor_data",)
HEADER_LENGTH = "Inference-Header-Content-Length"


# OIP datatype -> how the tensor travels to ModelServer (OIP §4).
DATATYPES: dict[str, DType] = {
    "BOOL": CARRIED[types_pb2.DT_BOOL],
    "UINT8": CARRIED[types_pb2.DT_UINT8],
    "UINT16": CARRIED[types_pb2.DT_UINT16],
    "UINT32": CARRIED[types_pb2.DT_UINT32],
    "UINT64": CARRIED[types_pb2.DT_UINT64],
    "INT8": CARRIED[types_pb2.DT_INT8],
    "INT16": CARRIED[types_pb2.DT_INT16],
    "INT32": CARRIED[types_pb2.DT_INT32],
    "INT64": CARRIED[types_pb2.DT_INT64],
    "FP16": CARRIED[types_pb2.DT_HALF],
    "BF16": CARRIED[types_pb2.DT_BFLOAT16],
    "FP32": CARRIED[types_pb2.DT_FLOAT],
    "FP64": CARRIED[types_pb2.DT_DOUBLE],
    "BYTES": CARRIED[types_pb2.DT_STRING],
}
_BY_ENUM: dict[int, str] = {dtype.enum: name for name, dtype in DATATYPES.items()}
KNOWN_DATATYPES = frozenset(DATATYPES)
_NON_FINITE_OUT = {b"NaN": b'"NaN"', b"Infinity": b'"Infinity"', b"-Infinity": b'"-Infinity"'}
_LENGTH = struct.Struct("<I")
# The largest product of a shape's non-zero dims: int64 elements of 8 bytes stay addressable,
# within TF's own int64 element count.
MAX_SHAPE_PRODUCT = (1 << 60) - 1
_DEFAULT_LIMITS = Limits()


def datatype_of(enum: int) -> str:
    """The OIP name of a TF dtype; the enum's own name (``DT_COMPLEX64``) when OIP has none."""
    return _BY_ENUM.get(enum) or _tf_name(enum)


def _tf_name(enum: int) -> str:
    return types_pb2.DataType.Name(enum) if enum in types_pb2.DataType.values() else f"DT_{enum}"


# --------------------------------------------------------------------------- request


@dataclass(slots=True)
class Input:
    """One ``inputs[]`` entry: its JSON ``data``, or its raw segment of the body."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Any = None
    raw: memoryview | None = None


@dataclass(slots=True)
class Output:
    name: str
    binary: bool | None  # None: the request's binary_data_output decides


@dataclass(slots=True)
class InferRequest:
    """An infer body whose framing and JSON structure are valid; tensors are built with the signature."""

    id: str | None
    signature_name: str
    binary_output: bool
    inputs: list[Input]
    outputs: list[Output] | None
    output_filter: tuple[str, ...] = field(default=())  # set by ``select_outputs``


def header_length(value: str | None) -> int | None:
    """``Inference-Header-Content-Length``: plain decimal digits, or a 400 (OIP §6)."""
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise BinaryFraming(f"{HEADER_LENGTH} must be a decimal number of bytes, got {value[:32]!r}")
    return int(text)


def parse_infer(body: bytes, header_bytes: int | None, *, max_depth: int) -> InferRequest:
    """Split and check an infer body in one pass over it (OIP §3, §6); tensors come later.

    ``header_bytes`` is the parsed ``Inference-Header-Content-Length`` (None when absent).
    JSON decoder errors escape as ``ValueError``s: the caller runs this inside ``body.decoding()``.
    """
    if header_bytes is not None and not 0 < header_bytes <= len(body):
        raise BinaryFraming(
            f"{HEADER_LENGTH} is {header_bytes}, but the body holds {len(body)} bytes",
            details={"header_length": header_bytes, "body_length": len(body)},
        )
    header = body if header_bytes is None else body[:header_bytes]
    doc = jsonio.parse_object(header, max_depth=max_depth)
    params = _object(doc.get("parameters", {}), "parameters")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidArgument("'id' must be a string")
    signature_name = params.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise InvalidArgument("parameters.signature_name must be a string")
    binary_output = params.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise InvalidArgument("parameters.binary_data_output must be true or false")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidArgument("'inputs' must be a non-empty array of input tensors")
    inputs = [_input(entry, index) for index, entry in enumerate(raw_inputs)]
    _attach_segments(inputs, raw_inputs, body, header_bytes)
    return InferRequest(request_id, signature_name, binary_output, inputs, _outputs(doc.get("outputs")))


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"'{where}' must be an object")
    return value


def _input(entry: Any, index: int) -> Input:
    entry = _object(entry, f"inputs[{index}]")
    name, datatype, shape = entry.get("name"), entry.get("datatype"), entry.get("shape")
    if not isinstance(name, str):
        raise InvalidArgument(f"inputs[{index}] needs a string 'name'")
    if not isinstance(datatype, str):
        raise InvalidArgument(f"input '{name}' needs a string 'datatype'")
    if datatype not in KNOWN_DATATYPES:
        raise InvalidArgument(f"input '{name}': unknown datatype {datatype[:32]!r}", details={"input": name})
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidArgument(f"input '{name}' needs a 'shape' of integers >= 0", details={"input": name})
    check_span(name, shape)
    return Input(name, datatype, tuple(shape), entry.get("data"))


def check_span(name: str, shape: list[int]) -> None:
    """Even with a zero dim (no elements), numpy cannot lay out a shape whose other dims multiply
    past its index range; stop at the first dim that crosses, so a long hostile shape stays cheap."""
    span = 1
    for dim in shape:
        span *= dim or 1
        if span > MAX_SHAPE_PRODUCT:
            raise InvalidArgument(
                f"input '{name}': shape {shape[:8]} spans more than 2**60 elements", details={"input": name}
            )


def _binary_size(entry: dict[str, Any], name: str) -> int | None:
    params = entry.get("parameters")
    if params is None:
        return None
    size = _object(params, f"input '{name}' parameters").get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise BinaryFraming(f"input '{name}': binary_data_size must be an integer >= 0", details={"input": name})
    return size


def _attach_segments(inputs: list[Input], entries: list[Any], body: bytes, header_bytes: int | None) -> None:
    """Slice each binary input's segment off the body; the sizes must cover it exactly."""
    view = memoryview(body)
    offset = len(body) if header_bytes is None else header_bytes
    for item, entry in zip(inputs, entries, strict=True):
        size = _binary_size(entry, item.name)
        if size is None:
            if "data" not in entry:
                raise InvalidArgument(f"input '{item.name}' has neither 'data' nor binary_data_size")
            continue
        if header_bytes is None:
            raise BinaryFraming(f"input '{item.name}' has binary_data_size but the request has no {HEADER_LENGTH}")
        if "data" in entry:
            raise BinaryFraming(f"input '{item.name}' has both 'data' and binary_data_size")
        if size > len(body) - offset:
            raise BinaryFraming(
                f"input '{item.name}': binary_data_size {size} runs past the end of the body",
                details={"input": item.name, "offset": offset, "size": size, "body_length": len(body)},
            )
        item.raw = view[offset : offset + size]
        offset += size
    if offset != len(body):
        assert header_bytes is not None  # without it the JSON is the whole body
        raise BinaryFraming(
            f"binary_data_size values sum to {offset - header_bytes} bytes, "
            f"but {len(body) - header_bytes} follow the JSON header",
            details={"body_length": len(body), "header_length": header_bytes},
        )


def _outputs(value: Any) -> list[Output] | None:
    if value is None or value == []:
        return None  # none listed: every output
    if not isinstance(value, list):
        raise InvalidArgument("'outputs' must be an array")
    outputs = []
    for index, entry in enumerate(value):
        entry = _object(entry, f"outputs[{index}]")
        name = entry.get("name")
        if not isinstance(name, str):
            raise InvalidArgument(f"outputs[{index}] needs a string 'name'")
        params = _object(entry.get("parameters", {}), f"output '{name}' parameters")
        binary = params.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidArgument(f"output '{name}': binary_data must be true or false")
        if params.get("classification") is not None:
            raise Unimplemented("The classification output parameter is not supported", details={"output": name})
        outputs.append(Output(name, binary))
    return outputs


def decode_inputs(
    request: InferRequest, sig: meta_graph_pb2.SignatureDef, limits: Limits = _DEFAULT_LIMITS
) -> dict[str, Tensor]:
    """The request's tensors, checked against the signature: names, datatypes, shapes (OIP §3, §4)."""
    expected = sorted(sig.inputs)
    given = [item.name for item in request.inputs]
    unknown = [name for name in given if name not in sig.inputs]
    if unknown or len(set(given)) != len(given):
        problem = f"unknown input '{unknown[0]}'" if unknown else "an input is given twice"
        raise InvalidArgument(f"{problem}; the signature expects {expected}", details={"expected": expected})
    missing = [name for name in expected if name not in given]
    if missing:
        raise InvalidArgument(f"missing input '{missing[0]}'; the signature expects {expected}")
    total = sum(math.prod(item.shape) for item in request.inputs)
    if total > limits.max_tensor_elements:
        raise InvalidArgument(
            f"Request holds {total} tensor elements, more than the limit of {limits.max_tensor_elements}",
            details={"elements": total, "max_tensor_elements": limits.max_tensor_elements},
        )
    return {item.name: _tensor(item, sig.inputs[item.name]) for item in request.inputs}


def _tensor(item: Input, info: meta_graph_pb2.TensorInfo) -> Tensor:
    dtype = _check_datatype(item, info.dtype)
    _check_shape(item, info)
    count = math.prod(item.shape)
    if item.raw is not None:
        return Tensor(dtype, item.shape, _from_raw(item, dtype, count))
    return Tensor(dtype, item.shape, _from_json(item, dtype, count))


def _check_datatype(item: Input, enum: int) -> DType:
    wanted = _BY_ENUM.get(enum)
    if wanted is None:  # every _BY_ENUM value is a DATATYPES key
        raise Unimplemented(
            f"input '{item.name}': the model's dtype {_tf_name(enum)} has no Open Inference Protocol "
            "datatype this server supports",
            details={"input": item.name},
        )
    if item.datatype != wanted:
        raise InvalidArgument(
            f"input '{item.name}': model expects {wanted} ({_tf_name(enum)}), request has {item.datatype}",
            details={"input": item.name, "expected": wanted, "actual": item.datatype},
        )
    return DATATYPES[wanted]


def _check_shape(item: Input, info: meta_graph_pb2.TensorInfo) -> None:
    if info.tensor_shape.unknown_rank:
        return
    dims = [int(d.size) for d in info.tensor_shape.dim]
    if len(dims) != len(item.shape) or any(d not in (-1, g) for d, g in zip(dims, item.shape, strict=True)):
        raise InvalidArgument(
            f"input '{item.name}': model expects shape {dims}, request has {list(item.shape)}",
            details={"input": item.name, "expected": dims, "actual": list(item.shape)},
        )


def _from_raw(item: Input, dtype: DType, count: int) -> npt.NDArray[Any] | list[bytes]:
    assert item.raw is not None
    if dtype.is_string:
        return _split_bytes(item.raw, count, item.name)
    assert dtype.numpy is not None
    if len(item.raw) != count * dtype.numpy.itemsize:
        raise BinaryFraming(
            f"input '{item.name}': {len(item.raw)} bytes of binary data, but shape {list(item.shape)} "
            f"of {item.datatype} needs {count * dtype.numpy.itemsize}",
            details={"input": item.name},
        )
    if dtype.name == "bool":
        octets = np.frombuffer(item.raw, dtype=np.uint8)
        if octets.size and int(octets.max()) > 1:
            raise BinaryFraming(f"input '{item.name}': BOOL bytes must be 0 or 1", details={"input": item.name})
        return octets.view(np.bool_).reshape(item.shape)
    return np.frombuffer(item.raw, dtype=dtype.numpy).reshape(item.shape)


def _split_bytes(raw: memoryview, count: int, name: str) -> list[bytes]:
    """BYTES elements: exactly ``count`` of (uint32 LE length, bytes), covering ``raw`` exactly."""
    values: list[bytes] = []
    pos, end = 0, len(raw)
    while pos < end:
        if end - pos < 4 or len(values) == count:
            break
        (length,) = _LENGTH.unpack_from(raw, pos)
        pos += 4
        if length > end - pos:
            break
        values.append(raw[pos : pos + length].tobytes())
        pos += length
    if pos != end or len(values) != count:
        raise BinaryFraming(
            f"input '{name}': BYTES data does not hold exactly {count} length-prefixed elements",
            details={"input": name},
        )
    return values


def _flatten(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidArgument(f"input '{name}': 'data' must be an array", details={"input": name})
    if not value or not isinstance(value[0], list):
        return value
    flat: list[Any] = []
    stack = [value]
    while stack:  # iterative, row-major: per nested list, not per element
        top = stack.pop()
        if top and isinstance(top[0], list):
            stack.extend(reversed(top))
        else:
            flat.extend(top)
    return flat


def _from_json(item: Input, dtype: DType, count: int) -> npt.NDArray[Any] | list[bytes]:
    flat = _flatten(item.data, item.name)
    if len(flat) != count:
        raise InvalidArgument(
            f"input '{item.name}': {len(flat)} elements in 'data', but shape {list(item.shape)} holds {count}",
            details={"input": item.name, "expected": count, "actual": len(flat)},
        )
    if dtype.is_string:
        return [_text_element(value, item.name, index) for index, value in enumerate(flat)]
    assert dtype.numpy is not None
    # One C-speed pass for the element types: bool is an int subclass that numpy would turn into 0/1.
    types = set(map(type, flat))
    array: npt.NDArray[Any] | None = None
    if dtype.name == "bool":
        array = _numbers(flat, "b") if types <= {bool} else None
    elif dtype.is_int:
        array = _integers(flat, dtype) if types <= {int} else None
    elif types <= {int, float}:
        array = _numbers(flat, "iuf")
    elif types <= {int, float, str}:
        array = _non_finite(flat)
    if array is None:
        raise _bad_element(flat, item, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(dtype.numpy).reshape(item.shape)  # floats: rounded to nearest
    if dtype.is_float:
        overflow = np.isinf(cast).ravel() & np.isfinite(array)
        if overflow.any():
            index = int(np.argmax(overflow))
            raise InvalidArgument(
                f"input '{item.name}' element {index}: {flat[index]} overflows {item.datatype}",
                details={"input": item.name, "index": index},
            )
    return cast


def _numbers(flat: list[Any], kinds: str) -> npt.NDArray[Any] | None:
    """numpy's view of a homogeneous JSON list when its element kind is one of ``kinds``."""
    if not flat:
        return np.zeros(0, dtype=np.bool_ if kinds == "b" else np.int64)
    try:
        array = np.asarray(flat)
    except (ValueError, OverflowError, TypeError):
        return None
    if array.dtype.kind in "iu" and "f" in kinds:
        array = array.astype(np.float64)  # JSON numbers are doubles first, then the tensor's dtype
    return array if array.ndim == 1 and array.dtype.kind in kinds else None


def _integers(flat: list[Any], dtype: DType) -> npt.NDArray[Any] | None:
    """JSON integers as int64 (uint64 for UINT64: numpy's own guess fails above 2**63), in range."""
    try:
        array = np.array(flat, dtype=np.uint64 if dtype.name == "uint64" else np.int64)
    except (OverflowError, ValueError):
        return None
    assert dtype.lo is not None and dtype.hi is not None
    if array.size and (int(array.min()) < dtype.lo or int(array.max()) > dtype.hi):
        return None
    return array


def _non_finite(flat: list[Any]) -> npt.NDArray[Any] | None:
    """Numbers mixed with the non-finite strings both clients may write (OIP §4)."""
    values = []
    for value in flat:
        if isinstance(value, str):
            if value not in jsonio.NON_FINITE:
                return None
            values.append(jsonio.NON_FINITE[value])
        else:
            values.append(float(value))
    return np.array(values, dtype=np.float64)


def _bad_element(flat: list[Any], item: Input, dtype: DType) -> InvalidArgument:
    """The first element the fast checks refused, named with its flat index (the slow path)."""
    for index, value in enumerate(flat):
        if not _element_ok(value, dtype):
            return InvalidArgument(
                f"input '{item.name}' element {index}: {jsonio.debug_string(value, 64)} is not a valid "
                f"{item.datatype} value",
                details={"input": item.name, "index": index, "expected": item.datatype},
            )
    return InvalidArgument(f"input '{item.name}': 'data' holds values that are not {item.datatype}")


def _element_ok(value: Any, dtype: DType) -> bool:
    if dtype.name == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if dtype.is_int:
        assert dtype.lo is not None and dtype.hi is not None
        return isinstance(value, int) and dtype.lo <= value <= dtype.hi
    return isinstance(value, int | float) or (isinstance(value, str) and value in jsonio.NON_FINITE)


def _text_element(value: Any, name: str, index: int) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(
            f"input '{name}' element {index}: BYTES elements must be JSON strings",
            details={"input": name, "index": index},
        )
    return value.encode("utf-8", "surrogatepass")


def select_outputs(request: InferRequest, sig: meta_graph_pb2.SignatureDef) -> tuple[str, ...]:
    """``PredictRequest.output_filter``: the requested outputs, else every one OIP can carry (OIP §3, §4)."""
    if request.outputs is None:
        request.output_filter = tuple(alias for alias in sorted(sig.outputs) if sig.outputs[alias].dtype in _BY_ENUM)
        return request.output_filter
    names = [output.name for output in request.outputs]
    expected = sorted(sig.outputs)
    for name in names:
        if name not in sig.outputs:
            raise InvalidArgument(f"unknown output '{name}'; the signature has {expected}", details={"output": name})
        if sig.outputs[name].dtype not in _BY_ENUM:
            raise Unimplemented(
                f"output '{name}' has dtype {_tf_name(sig.outputs[name].dtype)}, which this server cannot return",
                details={"output": name},
            )
    if len(set(names)) != len(names):
        raise InvalidArgument("an output is requested twice", details={"outputs": names})
    request.output_filter = tuple(names)
    return request.output_filter


# --------------------------------------------------------------------------- response


@dataclass(frozen=True, slots=True)
class Reply:
    """An infer reply: the body, and the JSON header's length when binary segments follow it."""

    body: bytes
    header_length: int | None


def encode_infer(
    request: InferRequest, model_name: str, model_version: int | None, arrays: Mapping[str, npt.NDArray[Any]]
) -> Reply:
    """The reply for ``arrays`` in the order of ``request.output_filter`` (OIP §3, §6)."""
    binary_flags = {output.name: output.binary for output in request.outputs or ()}
    entries: list[dict[str, Any]] = []
    segments: list[bytes | memoryview] = []
    for name in request.output_filter or sorted(arrays):
        array = arrays.get(name)
        if array is None:
            continue
        datatype = _output_datatype(array, name)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        flag = binary_flags.get(name)
        # BF16 is always binary: tritonclient reads JSON data with numpy, which cannot turn the
        # strings "NaN" / "Infinity" into bfloat16, and no other spelling is valid JSON (OIP §6).
        if datatype == "BF16" or (flag if flag is not None else request.binary_output):
            segment = _raw_output(array, datatype)
            entry["parameters"] = {"binary_data_size": len(segment) if isinstance(segment, bytes) else segment.nbytes}
            segments.append(segment)
        else:
            entry["data"] = orjson.Fragment(_json_output(array, datatype, name))
        entries.append(entry)
    doc: dict[str, Any] = {}
    if request.id is not None:
        doc["id"] = request.id
    doc["model_name"] = model_name
    if model_version is not None:
        doc["model_version"] = str(model_version)
    doc["outputs"] = entries
    header = orjson.dumps(doc)
    if not segments:
        return Reply(header, None)
    return Reply(b"".join([header, *segments]), len(header))


def raw_outputs(
    request: InferRequest, arrays: Mapping[str, npt.NDArray[Any]]
) -> list[tuple[str, str, tuple[int, ...], bytes | memoryview]]:
    """Each output as (name, datatype, shape, raw segment), in ``encode_infer``'s order: what the
    gRPC front puts in ``raw_output_contents`` (OIP §8), typed and framed as binary REST outputs are."""
    selected = ((name, arrays.get(name)) for name in request.output_filter or sorted(arrays))
    return [
        (name, datatype, array.shape, _raw_output(array, datatype))
        for name, array in selected
        if array is not None
        for datatype in (_output_datatype(array, name),)
    ]


def _output_datatype(array: npt.NDArray[Any], name: str) -> str:
    dtype = of_array(array)
    if dtype is None:
        raise Unimplemented(f"output '{name}' has a dtype this server cannot return", details={"output": name})
    return _BY_ENUM[dtype.enum]


def length_prefixed(values: Iterable[bytes]) -> bytes:
    """BYTES elements in the binary encoding: each a little-endian uint32 length, then its bytes."""
    return b"".join(part for value in values for part in (_LENGTH.pack(len(value)), value))


def _raw_output(array: npt.NDArray[Any], datatype: str) -> bytes | memoryview:
    if datatype == "BYTES":
        return length_prefixed(array.ravel().tolist())
    if not array.size:
        return b""
    # Little-endian on every platform numpy runs us on; ascontiguousarray copies only a strided slice.
    return tensors.raw_bytes(array)


def _json_output(array: npt.NDArray[Any], datatype: str, name: str) -> bytes:
    flat = array.ravel()
    if datatype == "BYTES":
        texts = []
        for index, value in enumerate(flat.tolist()):
            try:
                texts.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise OutputNotUtf8(
                    f"output '{name}' element {index} is not valid UTF-8; request binary_data",
                    details={"output": name, "index": index},
                ) from None
        return orjson.dumps(texts)
    text = orjson.dumps(_json_numbers(flat, datatype), option=orjson.OPT_SERIALIZE_NUMPY)
    if datatype in _FLOAT_DATATYPES:
        non_finite = flat[~np.isfinite(flat)]
        if non_finite.size:
            # orjson writes null for each; they come in order, so the k-th null is the k-th value.
            parts = text.split(b"null")
            out = [parts[0]]
            for value, rest in zip(non_finite.tolist(), parts[1:], strict=True):
                out += [_NON_FINITE_OUT[jsonio.non_finite_token(value)], rest]
            text = b"".join(out)
    return text


_FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})


def _json_numbers(flat: npt.NDArray[Any], datatype: str) -> npt.NDArray[Any]:
    """What orjson writes for a numeric output. FP16 goes as float32, which holds each half
    exactly: the shortest float32 text reads back to the same half, at C speed."""
    return flat.astype(np.float32) if datatype == "FP16" else flat


# --------------------------------------------------------------------------- metadata and status


def encode_server_metadata(version: str) -> bytes:
    return orjson.dumps({"name": "tfserving-gateway", "version": version, "extensions": list(EXTENSIONS)})


def available_versions(reply: get_model_status_pb2.GetModelStatusResponse) -> list[int]:
    """The AVAILABLE versions of a status reply, ascending."""
    available = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")
    return sorted(int(entry.version) for entry in reply.model_version_status if entry.state == available)


def unready_reason(reply: get_model_status_pb2.GetModelStatusResponse, version: int | None) -> str | None:
    """None when ``version`` (any version, if None) is AVAILABLE; else the states seen, for the 503."""
    available = available_versions(reply)
    if (version is None and available) or version in available:
        return None
    states = ", ".join(
        f"{entry.version}: {get_model_status_pb2.ModelVersionStatus.State.Name(entry.state)}"
        for entry in reply.model_version_status
        if version is None or entry.version == version
    )
    return f"no version is AVAILABLE ({states or 'none loaded'})"


def encode_model_metadata(
    name: str,
    signature_name: str,
    sigs: Mapping[str, meta_graph_pb2.SignatureDef],
    status: get_model_status_pb2.GetModelStatusResponse,
) -> bytes:
    """Model metadata from the signature and the status (OIP §2)."""
    chosen = signature_name or DEFAULT_SIGNATURE
    sig = sigs.get(chosen)
    if sig is None:
        raise InvalidArgument(f'Serving signature name: "{chosen}" not found in signature def')
    return orjson.dumps(
        {
            "name": name,
            "versions": [str(v) for v in available_versions(status)],
            "platform": PLATFORM,
            "inputs": _tensor_metadata(sig.inputs),
            "outputs": _tensor_metadata(sig.outputs),
            "properties": {"signature_name": chosen, "signatures": ",".join(_callable(sigs))},
        }
    )


def _callable(sigs: Mapping[str, meta_graph_pb2.SignatureDef]) -> list[str]:
    """Signature keys a client can name, sorted: SavedModel's own ``__saved_model_init_op`` is not one."""
    return sorted(key for key in sigs if not key.startswith("__"))


def _tensor_metadata(infos: Mapping[str, meta_graph_pb2.TensorInfo]) -> list[dict[str, Any]]:
    return [
        {"name": alias, "datatype": datatype_of(info.dtype), "shape": _dims(info)}
        for alias, info in sorted(infos.items())
    ]


def _dims(info: meta_graph_pb2.TensorInfo) -> list[int]:
    if info.tensor_shape.unknown_rank:
        return [-1]
    return [int(d.size) for d in info.tensor_shape.dim]
