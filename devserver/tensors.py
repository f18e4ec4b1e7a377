"""TensorProto <-> numpy conversion with ModelServer's output encodings.

ModelServer writes outputs with ``Tensor::AsProtoField`` (typed repeated fields, every
element listed) unless ``--enable_serialization_as_tensor_content`` asks for
``AsProtoTensorContent`` (raw little-endian bytes; strings as TF's varint-prefixed
string list). ``tf.make_tensor_proto`` picks tensor_content for any numeric tensor of more
than one element, so neither mode can use it as is.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from devserver.errors import invalid_argument

# Which repeated field AsProtoField fills for each dtype (see tensor.proto's comments).
_TYPED_FIELD: dict[int, str] = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
}

# tf.DType.name differs from TF's C++ DataTypeString for these; error texts use the latter.
_CPP_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "half"}


def dtype_name(dtype_enum: int) -> str:
    """The name TF's C++ runtime prints for a DataType (e.g. DT_FLOAT -> "float")."""
    try:
        name = tf.dtypes.as_dtype(dtype_enum).name
    except TypeError:
        return types_pb2.DataType.Name(dtype_enum) if dtype_enum in types_pb2.DataType.values() else str(dtype_enum)
    return str(_CPP_TYPE_NAMES.get(name, name))


def proto_to_tensor(alias: str, proto: tensor_pb2.TensorProto) -> tf.Tensor:
    """Decode a request tensor; any malformation is ModelServer's `tensor parsing error`."""
    try:
        array = tf.make_ndarray(proto)
        return tf.constant(array, dtype=tf.dtypes.as_dtype(proto.dtype))
    except (TypeError, ValueError, tf.errors.OpError) as exc:
        raise invalid_argument(f"tensor parsing error: {alias}") from exc


def _tensor_shape(array: np.ndarray) -> tf.TensorShape:
    return tf.TensorShape(list(array.shape))


def _as_uint16_bits(array: np.ndarray) -> np.ndarray:
    # half_val carries half/bfloat16 values as their raw 16-bit patterns.
    return array.reshape(-1).view(np.uint16).astype(np.int32)


def _typed_values(dtype_enum: int, array: np.ndarray) -> list[object]:
    # tolist() yields Python scalars, which every protobuf runtime accepts.
    flat = array.reshape(-1)
    if dtype_enum in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        flat = _as_uint16_bits(array)
    elif dtype_enum in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        # Complex values are stored as interleaved (real, imag) pairs.
        flat = np.stack([flat.real, flat.imag], axis=-1).reshape(-1)
    elif dtype_enum == types_pb2.DT_STRING:
        return [bytes(item) for item in flat]
    return list(flat.tolist())


def _encode_string_list(values: list[bytes]) -> bytes:
    """TF's EncodeStringList: all lengths as varint32, then all the bytes."""
    out = bytearray()
    for value in values:
        length = len(value)
        while length >= 0x80:
            out.append((length & 0x7F) | 0x80)
            length >>= 7
        out.append(length)
    for value in values:
        out += value
    return bytes(out)


def array_to_proto(array: np.ndarray, dtype: tf.DType, as_tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """Encode an output tensor the way ModelServer does (typed fields by default)."""
    array = np.asarray(array, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    proto.tensor_shape.CopyFrom(_tensor_shape(array).as_proto())
    if as_tensor_content:
        if dtype == tf.string:
            proto.tensor_content = _encode_string_list([bytes(v) for v in array.reshape(-1)])
        else:
            proto.tensor_content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        return proto
    field = _TYPED_FIELD.get(dtype.as_datatype_enum)
    if field is None:
        # Resource/variant outputs cannot be served by ModelServer either.
        raise invalid_argument(f"Unsupported output tensor type: {dtype_name(dtype.as_datatype_enum)}")
    getattr(proto, field).extend(_typed_values(dtype.as_datatype_enum, array))
    return proto
