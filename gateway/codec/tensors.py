"""The one dtype table, and TensorProto <-> numpy. Pure.

Numeric tensors go out as ``tensor_content`` (little-endian bytes, no per-element
Python) and come back from either ``tensor_content`` or the typed ``*_val`` fields,
which ModelServer uses by default.

Two sets: ``SUPPORTED`` holds the dtypes TF Serving's REST JSON converts both ways (the v1
front's contract, spec §4.5, §5.2); ``CARRIED`` adds the 16-bit ones (DT_HALF, DT_BFLOAT16,
DT_UINT16) that travel as tensors but have no TF Serving JSON, which the Open Inference
Protocol front carries. BF16 arrays use ``ml_dtypes.bfloat16``, the numpy type TensorFlow and
tritonclient use too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import numpy.typing as npt

from gateway._pb.tensorflow.core.framework import tensor_pb2, types_pb2
from gateway.codec import messages
from gateway.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class DType:
    """How one TF dtype travels: its TF name (as in error texts), numpy type and proto field."""

    enum: int
    name: str
    numpy: np.dtype[np.generic] | None  # None: strings (object arrays of bytes)
    field: str
    # Closed range accepted from JSON for integer dtypes.
    lo: int | None = None
    hi: int | None = None

    @property
    def is_string(self) -> bool:
        return self.enum == types_pb2.DT_STRING

    @property
    def is_float(self) -> bool:
        return self.enum in _FLOATS

    @property
    def is_int(self) -> bool:
        return self.lo is not None


_FLOATS = frozenset({types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF, types_pb2.DT_BFLOAT16})


def _int(enum: int, name: str, np_type: type[np.generic], field: str) -> DType:
    info = np.iinfo(np_type)  # type: ignore[type-var]
    return DType(enum, name, np.dtype(np_type).newbyteorder("<"), field, int(info.min), int(info.max))


# Every dtype the REST API can convert (spec §4.5, §5.2). Others are UNIMPLEMENTED.
SUPPORTED: dict[int, DType] = {
    d.enum: d
    for d in (
        DType(types_pb2.DT_FLOAT, "float", np.dtype("<f4"), "float_val"),
        DType(types_pb2.DT_DOUBLE, "double", np.dtype("<f8"), "double_val"),
        _int(types_pb2.DT_INT32, "int32", np.int32, "int_val"),
        _int(types_pb2.DT_INT16, "int16", np.int16, "int_val"),
        _int(types_pb2.DT_INT8, "int8", np.int8, "int_val"),
        _int(types_pb2.DT_UINT8, "uint8", np.uint8, "int_val"),
        _int(types_pb2.DT_INT64, "int64", np.int64, "int64_val"),
        _int(types_pb2.DT_UINT32, "uint32", np.uint32, "uint32_val"),
        _int(types_pb2.DT_UINT64, "uint64", np.uint64, "uint64_val"),
        DType(types_pb2.DT_BOOL, "bool", np.dtype(np.bool_), "bool_val"),
        DType(types_pb2.DT_STRING, "string", None, "string_val"),
    )
}

# half_val holds DT_HALF and DT_BFLOAT16 values as their 16-bit patterns, one per int32.
HALF = DType(types_pb2.DT_HALF, "half", np.dtype("<f2"), "half_val")
BFLOAT16 = DType(types_pb2.DT_BFLOAT16, "bfloat16", np.dtype(ml_dtypes.bfloat16), "half_val")
UINT16 = _int(types_pb2.DT_UINT16, "uint16", np.uint16, "int_val")
# Every dtype a tensor can carry between a front and ModelServer.
CARRIED: dict[int, DType] = SUPPORTED | {d.enum: d for d in (HALF, BFLOAT16, UINT16)}
_BY_NUMPY: dict[np.dtype[np.generic], DType] = {d.numpy: d for d in CARRIED.values() if d.numpy is not None}


def of_array(array: npt.NDArray[np.generic]) -> DType | None:
    """The dtype an array of ``from_proto`` carries (object arrays are strings); None if none."""
    if array.dtype == object:
        return SUPPORTED[types_pb2.DT_STRING]
    return _BY_NUMPY.get(array.dtype)


def dtype_name(enum: int) -> str:
    """TF's short name for a dtype (``half``, ``complex64``...), as TF Serving prints it."""
    known = CARRIED.get(enum)
    if known is not None:
        return known.name
    full = types_pb2.DataType.Name(enum) if enum in types_pb2.DataType.values() else f"DT_{enum}"
    return full.removeprefix("DT_").lower()


def raw_bytes(array: npt.NDArray[np.generic]) -> memoryview:
    """A numeric array's bytes, row-major, without a copy when it is contiguous already.

    Viewed as uint8 first: a memoryview cannot carry bfloat16's format code.
    """
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).data


def shape_of(proto: tensor_pb2.TensorProto) -> tuple[int, ...]:
    return tuple(int(d.size) for d in proto.tensor_shape.dim)


def to_proto(
    array: npt.NDArray[np.generic] | Sequence[bytes], dtype: DType, shape: Sequence[int]
) -> tensor_pb2.TensorProto:
    """A TensorProto for already-validated values: bytes for strings, an array otherwise."""
    proto = tensor_pb2.TensorProto()
    proto.dtype = dtype.enum  # type: ignore[assignment]  # the enum is an int on the wire
    for size in shape:
        proto.tensor_shape.dim.add(size=int(size))
    if dtype.is_string:
        proto.string_val.extend(array)
    else:
        assert dtype.numpy is not None and isinstance(array, np.ndarray)
        proto.tensor_content = np.ascontiguousarray(array, dtype=dtype.numpy).tobytes()
    return proto


def from_proto(proto: tensor_pb2.TensorProto) -> npt.NDArray[np.generic]:
    """The tensor's values as an array of its shape (object array of bytes for strings).

    Any ``CARRIED`` dtype decodes; the v1 front refuses the 16-bit ones when it writes JSON.
    """
    dtype = CARRIED.get(proto.dtype)
    if dtype is None:
        raise InvalidArgument(f"Failed to write JSON value for tensor type: {dtype_name(proto.dtype)}")
    shape = shape_of(proto)
    count = math.prod(shape)  # np.prod costs microseconds per call on tiny shapes
    if dtype.is_string:
        strings = decode_string_content(proto.tensor_content, count) if proto.tensor_content else proto.string_val
        values = np.empty(len(strings), dtype=object)
        values[:] = list(strings)
        return _fill(values, count, shape)
    assert dtype.numpy is not None
    if proto.tensor_content:
        flat = np.frombuffer(proto.tensor_content, dtype=dtype.numpy)
        if flat.size != count:
            raise InvalidArgument(
                f"Tensor has {flat.size} values in tensor_content but its shape {list(shape)} needs {count}"
            )
        return flat.reshape(shape)
    return _fill(_typed(proto, dtype), count, shape)


# Fixed-width typed fields (tensor.proto's field numbers): packed on the wire, their bytes are the
# little-endian array itself. Converting the repeated field instead walks it element by element,
# milliseconds for an image; below this many values that walk is cheaper than serialising.
_PACKED_FIXED = {"float_val": 5, "double_val": 6}
PACKED_MIN_VALUES = 256


def _typed(proto: tensor_pb2.TensorProto, dtype: DType) -> npt.NDArray[np.generic]:
    """The typed ``*_val`` field as an array; large float and double fields straight from their wire bytes."""
    assert dtype.numpy is not None
    if dtype.field == "half_val":
        # The low 16 bits of each int32 are the value's bit pattern, not its number.
        return np.asarray(proto.half_val, dtype=np.int32).astype("<u2").view(dtype.numpy)
    values = getattr(proto, dtype.field)
    number = _PACKED_FIXED.get(dtype.field)
    if number is not None and len(values) >= PACKED_MIN_VALUES:
        wire = proto.SerializeToString()
        spans = messages.field_spans(wire, number)
        if len(spans) == 1 and spans[0][1] - spans[0][0] == len(values) * dtype.numpy.itemsize:
            return np.frombuffer(wire, dtype=dtype.numpy, count=len(values), offset=spans[0][0])
    return np.asarray(values, dtype=dtype.numpy)


def decode_string_content(content: bytes, count: int) -> list[bytes]:
    """TF's string tensor_content: ``count`` varint lengths, then the bytes back to back.

    ModelServer writes this with --enable_serialization_as_tensor_content.
    """
    lengths: list[int] = []
    pos = 0
    try:
        for _ in range(count):
            length, shift = 0, 0
            while True:
                byte = content[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            lengths.append(length)
    except IndexError:
        raise InvalidArgument("String tensor_content ends inside its length prefix") from None
    if pos + sum(lengths) != len(content):
        raise InvalidArgument("String tensor_content lengths do not match its size")
    out = []
    for length in lengths:
        out.append(content[pos : pos + length])
        pos += length
    return out


def _fill(values: npt.NDArray[np.generic], count: int, shape: Sequence[int]) -> npt.NDArray[np.generic]:
    # TF lets typed fields hold fewer values than the shape needs: the last one repeats
    # (and none at all means zeros), exactly as tf.make_ndarray reads them.
    if values.size == count:
        return values.reshape(shape)
    if values.size > count:
        raise InvalidArgument(f"Tensor has {values.size} values but its shape {list(shape)} holds {count}")
    if values.size == 0:
        filler = b"" if values.dtype == object else 0
        return np.full(shape, filler, dtype=values.dtype)
    padded = np.concatenate([values, np.full(count - values.size, values[-1], dtype=values.dtype)])
    return padded.reshape(shape)
