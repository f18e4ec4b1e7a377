"""PredictRequest bytes written directly in protobuf's wire format.

For a 224x224x3 image, going through Python protobuf objects copies the 600 KB tensor
three times (``tobytes``, ``CopyFrom`` into the map, ``SerializeToString``). Writing the
few framing bytes ourselves copies it once, into the final ``bytes``. The output parses
to exactly the message ``codec.build_predict_request`` builds (tests/test_fastpaths.py), which
small requests use directly: below a few kilobytes protobuf's C serialiser is the faster one.

Field numbers (tensorflow_serving/apis/predict.proto, tensorflow/core/framework/*.proto)::

    PredictRequest   model_spec = 1, inputs = 2 (map entry: key = 1, value = 2), output_filter = 3
    TensorProto      dtype = 1, tensor_shape = 2, tensor_content = 4, string_val = 8
    TensorShapeProto dim = 2;  Dim: size = 1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from gateway._pb.tensorflow_serving.apis import model_pb2
from gateway.codec.predict import Tensor, build_predict_request
from gateway.codec.tensors import raw_bytes

_LEN = 2  # wire type of length-delimited fields
_VARINT = 0


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are written as 10-byte two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def _delimited(field: int, payload: bytes) -> bytes:
    return _tag(field, _LEN) + varint(len(payload)) + payload


def _header(field: int, size: int) -> bytes:
    """Tag and length of a length-delimited field whose payload is written separately."""
    return _tag(field, _LEN) + varint(size)


def shape(dims: Sequence[int]) -> bytes:
    """A TensorShapeProto; a zero size is proto3's default and is left out, as protobuf does."""
    return b"".join(_delimited(2, _tag(1, _VARINT) + varint(d) if d else b"") for d in dims)


Part = bytes | memoryview


def tensor_parts(tensor: Tensor) -> list[Part]:
    """A TensorProto as pieces to join, so the large content is copied only by the final join."""
    parts: list[Part] = [_tag(1, _VARINT) + varint(tensor.dtype.enum)]
    if tensor.shape:
        parts.append(_delimited(2, shape(tensor.shape)))
    if tensor.dtype.is_string:
        parts.extend(_delimited(8, value) for value in tensor.values)
        return parts
    assert tensor.dtype.numpy is not None and isinstance(tensor.values, np.ndarray)
    content = raw_bytes(np.asarray(tensor.values, dtype=tensor.dtype.numpy))
    if content.nbytes:
        parts += [_header(4, content.nbytes), content]
    return parts


def _map_entry(key: str, value_parts: list[Part]) -> list[Part]:
    key_field = _delimited(1, key.encode("utf-8"))
    value_size = sum(len(p) if isinstance(p, bytes) else p.nbytes for p in value_parts)
    value_header = _header(2, value_size)
    size = len(key_field) + len(value_header) + value_size
    return [_header(2, size), key_field, value_header, *value_parts]


# Framing by hand pays off only for large numeric tensor_content, which it copies once instead of
# three times; below this, and for strings at any size, protobuf's C serialiser is faster.
_HAND_FRAMED_BYTES = 16 << 10


def predict_request(
    model_spec: model_pb2.ModelSpec, tensors: Mapping[str, Tensor], output_filter: Iterable[str] = ()
) -> bytes:
    """The serialised PredictRequest for already-validated input tensors."""
    if not any(_large_numeric(t) for t in tensors.values()):
        return build_predict_request(model_spec, tensors, tuple(output_filter)).SerializeToString()
    parts: list[Part] = [_delimited(1, model_spec.SerializeToString())]
    for alias, tensor in tensors.items():
        parts += _map_entry(alias, tensor_parts(tensor))
    parts += [_delimited(3, name.encode("utf-8")) for name in output_filter]
    return b"".join(parts)


def _large_numeric(tensor: Tensor) -> bool:
    values = tensor.values
    return isinstance(values, np.ndarray) and values.nbytes >= _HAND_FRAMED_BYTES
