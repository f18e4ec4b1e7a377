"""Atheris target for the Open Inference Protocol's binary framing: header length -> split -> tensors -> reply.

Every input must end in a value or a ``GatewayError`` with a 4xx (or the codec's 501 for a dtype it
cannot carry); any other exception is a bug, and so is a tensor built from bytes outside its segment
of the body (an out-of-bounds read) or a reply whose framing does not add up.

Two input forms, so that libFuzzer mutates what matters:

- **raw** (the committed seeds in ``fuzz/corpus_oip``): ``<Inference-Header-Content-Length>\\n<body>``;
  a first line of ``-`` means no header. The body is what a client POSTs: JSON header, then segments.
- **structured**: an input starting with byte ``0x01`` is read with ``atheris.FuzzedDataProvider`` into
  a request with the shapes random bytes rarely reach: one to four inputs with names from a small set
  (duplicates included), datatypes right or wrong, shapes with zero, huge and many dims,
  ``binary_data_size`` exact, off by a few, negative, huge, non-integer or missing, BYTES segments
  with truncated or lying length prefixes, and a header length exact, off by a few, zero, past the
  body or not a number.

Each request goes through ``oip.header_length`` and ``oip.parse_infer`` (the framing), then
``oip.decode_inputs`` against every signature in :data:`SIGNATURES`, then, when it decoded, the
inputs are echoed back through ``oip.encode_infer`` in the binary and JSON forms and the reply is
split again by its own header length.

Run: ``python fuzz/fuzz_oip_binary.py NEW_DIR fuzz/corpus_oip -timeout=10 -atheris_runs=200000``;
``python fuzz/fuzz_oip_binary.py --seeds fuzz/corpus_oip`` (re)writes the seeds. A four-minute
campaign from these seeds (``-max_total_time=240``, after shapes past numpy's range became a 400)
ran 1,753,183 inputs, reached 371 coverage edges and 931 features, and found nothing.
"""

from __future__ import annotations

import importlib
import json
import math
import struct
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This checkout's gateway, not whichever one the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":
    import atheris

    with atheris.instrument_imports(include=["gateway"]):
        for _module in ("codec.oip", "codec.jsonio", "codec.tensors"):
            importlib.import_module(f"gateway.{_module}")

import numpy as np

from gateway._pb.tensorflow.core.framework import types_pb2
from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway.codec import oip
from gateway.codec.predict import Limits
from gateway.errors import GatewayError

LIMITS = Limits(max_tensor_elements=100_000)
MAX_DEPTH = 64  # the gateway's default server.max_json_depth
STRUCTURED = 0x01
NAMES = ["x", "y", "s", "b", "x"]
DATATYPES = [*sorted(oip.KNOWN_DATATYPES), "FP8", ""]
ITEM_BYTES = {"BOOL": 1, "INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "FP16": 2, "BF16": 2}
ITEM_BYTES |= {"INT32": 4, "UINT32": 4, "FP32": 4, "INT64": 8, "UINT64": 8, "FP64": 8}


def _signature(shape: list[int] | None = None, **inputs: int) -> meta_graph_pb2.SignatureDef:
    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for alias, dtype in inputs.items():
        info = sig.inputs[alias]
        info.dtype = dtype  # type: ignore[assignment]
        if shape is None:
            info.tensor_shape.unknown_rank = True
        else:
            for size in shape:
                info.tensor_shape.dim.add(size=size)
        sig.outputs[f"{alias}_out"].dtype = dtype  # type: ignore[assignment]
    return sig


SIGNATURES = (
    _signature(x=types_pb2.DT_FLOAT),
    _signature([-1, 2], x=types_pb2.DT_FLOAT),
    _signature(s=types_pb2.DT_STRING),
    _signature(b=types_pb2.DT_BOOL, x=types_pb2.DT_INT64),
    _signature(x=types_pb2.DT_HALF, y=types_pb2.DT_BFLOAT16),
    _signature(x=types_pb2.DT_UINT16, s=types_pb2.DT_STRING, b=types_pb2.DT_UINT8),
    _signature(x=types_pb2.DT_COMPLEX64),
)


def check_input(data: bytes) -> None:
    """libFuzzer's entry point."""
    header, body = structured(data[1:]) if data[:1] == bytes([STRUCTURED]) else raw(data)
    check_request(header, body)


def raw(data: bytes) -> tuple[str | None, bytes]:
    head, newline, body = data.partition(b"\n")
    if not newline:
        return None, data
    return (None if head == b"-" else head.decode("latin-1")), body


def check_request(header_value: str | None, body: bytes) -> None:
    """Raise AssertionError unless the request ends in a value or a client error."""
    parsed = _client(lambda: oip.parse_infer(body, oip.header_length(header_value), max_depth=MAX_DEPTH))
    if parsed is None:
        return
    _check_segments(parsed, body, header_value)
    for sig in SIGNATURES:
        tensors = _client(lambda sig=sig: oip.decode_inputs(parsed, sig, LIMITS))
        if tensors is not None:
            _check_tensors(parsed, tensors)
            _check_reply(parsed, tensors)


def _client(step: Callable[[], Any]) -> Any:
    try:
        return step()
    except GatewayError as exc:
        if not 400 <= exc.http_status < 500 and exc.http_status != 501:
            raise AssertionError(f"{type(exc).__name__} with status {exc.http_status}: {exc.message}") from exc
        return None


def _check_segments(parsed: oip.InferRequest, body: bytes, header_value: str | None) -> None:
    """Accepted framing tiles the body exactly: header, then each segment in order."""
    segments = [item.raw for item in parsed.inputs if item.raw is not None]
    if not segments:
        return
    assert header_value is not None, "binary segments without Inference-Header-Content-Length"
    offset = int(header_value.strip())
    for segment in segments:
        assert segment.obj is body, "a segment is not a view of the body"
        assert bytes(segment) == body[offset : offset + len(segment)], "a segment is not where the sizes say"
        offset += len(segment)
    assert offset == len(body), f"segments end at {offset}, the body at {len(body)}"


def _check_tensors(parsed: oip.InferRequest, tensors: dict[str, Any]) -> None:
    for item in parsed.inputs:
        tensor = tensors[item.name]
        assert tensor.shape == item.shape, (item.name, tensor.shape, item.shape)
        count = math.prod(item.shape)
        if isinstance(tensor.values, np.ndarray):
            assert tensor.values.size == count and tensor.values.shape == item.shape, item.name
            if item.raw is not None:
                assert tensor.values.tobytes() == bytes(item.raw), f"{item.name}: values are not its segment"
        else:
            assert len(tensor.values) == count, item.name
            if item.raw is not None:
                framed = b"".join(struct.pack("<I", len(v)) + v for v in tensor.values)
                assert framed == bytes(item.raw), f"{item.name}: BYTES values are not its segment"


def _check_reply(parsed: oip.InferRequest, tensors: dict[str, Any]) -> None:
    """Echo the inputs as outputs, binary and JSON: the reply's own framing must add up."""
    arrays = {
        name: (t.values if isinstance(t.values, np.ndarray) else np.array(t.values, dtype=object).reshape(t.shape))
        for name, t in tensors.items()
    }
    for binary in (True, False):
        request = oip.InferRequest(parsed.id, "", binary, parsed.inputs, None)
        reply = _client(lambda request=request: oip.encode_infer(request, "m", 1, arrays))
        if reply is None:
            continue
        length = len(reply.body) if reply.header_length is None else reply.header_length
        doc = json.loads(reply.body[:length])
        sizes = [o["parameters"]["binary_data_size"] for o in doc["outputs"] if "parameters" in o]
        assert length + sum(sizes) == len(reply.body), "reply segments do not add up"
        assert [o["name"] for o in doc["outputs"]] == sorted(arrays)


# --------------------------------------------------------------------------- structured inputs


def structured(data: bytes) -> tuple[str | None, bytes]:
    import atheris

    fdp = atheris.FuzzedDataProvider(data)
    # Mostly a request meant for one of SIGNATURES (its names and datatypes), so that most inputs
    # get past the framing into the tensors and the reply; then names and datatypes go astray.
    sig = SIGNATURES[fdp.ConsumeIntInRange(0, len(SIGNATURES) - 1)]
    names = sorted(sig.inputs)
    if fdp.ConsumeIntInRange(0, 3) == 0:
        names = [fdp.PickValueInList(NAMES) for _ in range(fdp.ConsumeIntInRange(1, 4))]  # duplicates too
    entries: list[dict[str, Any]] = []
    segments: list[bytes] = []
    for name in names:
        wanted = oip.datatype_of(sig.inputs[name].dtype) if name in sig.inputs else "FP32"
        datatype = wanted if fdp.ConsumeIntInRange(0, 7) else fdp.PickValueInList(DATATYPES)
        entry, segment = _entry(fdp, name, datatype)
        entries.append(entry)
        if segment is not None:
            segments.append(segment)
    doc: dict[str, Any] = {"inputs": entries}
    if fdp.ConsumeBool():
        doc["outputs"] = [
            {"name": f"{fdp.PickValueInList(NAMES)}_out", "parameters": {"binary_data": fdp.ConsumeBool()}}
        ]
    header = json.dumps(doc).encode()
    body = header + b"".join(segments) + (fdp.ConsumeBytes(2) if fdp.ConsumeIntInRange(0, 7) == 0 else b"")
    return _header_value(fdp, len(header), len(body)), body


def _entry(fdp: Any, name: str, datatype: str) -> tuple[dict[str, Any], bytes | None]:
    shape = _shape(fdp)
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    count = math.prod(shape) if all(isinstance(d, int) and d >= 0 for d in shape) else 0
    if fdp.ConsumeIntInRange(0, 5) == 0:
        entry["data"] = [fdp.ConsumeIntInRange(0, 1) for _ in range(min(count, 8))]
        return entry, None
    if datatype == "BYTES":
        segment = _bytes_segment(fdp, min(count, 16))
    else:
        size = min(count, 64) * ITEM_BYTES.get(datatype, 1)
        segment = fdp.ConsumeBytes(size).ljust(size, b"\0")  # zero-filled when the input runs out
        if datatype == "BOOL" and fdp.ConsumeIntInRange(0, 3):
            segment = bytes(b & 1 for b in segment)
    entry["parameters"] = {"binary_data_size": _size(fdp, len(segment))}
    if fdp.ConsumeIntInRange(0, 15) == 0:
        entry["data"] = []  # both data and binary_data_size
    return entry, segment


def _shape(fdp: Any) -> list[Any]:
    choice = fdp.ConsumeIntInRange(0, 15)  # mostly small shapes, so most requests get past the framing
    if choice == 0:
        return [2**62, 2**62, 0]  # zero elements, but dims whose product overflows int64
    if choice == 1:
        return [0] * fdp.ConsumeIntInRange(0, 40) + [2**63 - 1]
    if choice == 2:
        return [fdp.ConsumeIntInRange(-2, 3), 1.5 if fdp.ConsumeBool() else "2"]
    return [fdp.ConsumeIntInRange(0, 4) for _ in range(fdp.ConsumeIntInRange(0, 3))]


def _size(fdp: Any, exact: int) -> Any:
    if fdp.ConsumeIntInRange(0, 3):
        return exact
    return [
        exact + fdp.ConsumeIntInRange(-4, 4),
        -exact - 1,
        2**64,
        float(exact),
        str(exact),
        True,
        None,
    ][fdp.ConsumeIntInRange(0, 6)]


def _bytes_segment(fdp: Any, count: int) -> bytes:
    parts = []
    for _ in range(count):
        value = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 6))
        lie = fdp.ConsumeIntInRange(0, 7)
        length = len(value) if lie > 1 else [len(value) + fdp.ConsumeIntInRange(1, 9), 2**32 - 1][lie]
        parts.append(struct.pack("<I", length) + value)
    joined = b"".join(parts)
    cut = fdp.ConsumeIntInRange(0, 3)
    return joined[: len(joined) - cut] if fdp.ConsumeIntInRange(0, 7) == 0 else joined  # a truncated prefix


def _header_value(fdp: Any, exact: int, body: int) -> str | None:
    choice = fdp.ConsumeIntInRange(0, 15)
    if choice == 0:
        return None
    if choice > 5:
        return str(exact)
    return [
        str(exact + fdp.ConsumeIntInRange(-3, 3)),
        str(body + 1),
        "0",
        fdp.ConsumeUnicodeNoSurrogates(4),
    ][(choice - 1) % 4]


# --------------------------------------------------------------------------- seeds


def _seed(header: dict[str, Any], *segments: bytes, length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return f"{len(text) if length is None else length}\n".encode() + text + b"".join(segments)


def _binary(name: str, datatype: str, shape: list[int], size: int) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}


SEEDS: dict[str, bytes] = {
    "fp32_binary.bin": _seed({"inputs": [_binary("x", "FP32", [2], 8)]}, struct.pack("<2f", 1.0, 2.0)),
    "fp32_binary_out.bin": _seed(
        {
            "inputs": [_binary("x", "FP32", [3, 2], 24)],
            "outputs": [{"name": "x_out", "parameters": {"binary_data": True}}],
        },
        struct.pack("<6f", *range(6)),
    ),
    "bytes_binary.bin": _seed({"inputs": [_binary("s", "BYTES", [2], 10)]}, b"\x02\x00\x00\x00hi\x00\x00\x00\x00"),
    "bool_int64_binary.bin": _seed(
        {"inputs": [_binary("b", "BOOL", [2], 2), _binary("x", "INT64", [2], 16)]},
        b"\x01\x00",
        struct.pack("<2q", -1, 2**62),
    ),
    "fp16_bf16_binary.bin": _seed(
        {"inputs": [_binary("x", "FP16", [2], 4), _binary("y", "BF16", [2], 4)]},
        np.array([1.5, -np.inf], dtype="<f2").tobytes(),
        b"\xc0\x3f\x80\x7f",
    ),
    "mixed_json_and_binary.bin": _seed(
        {
            "inputs": [
                {"name": "x", "datatype": "UINT16", "shape": [2], "data": [0, 65535]},
                _binary("s", "BYTES", [1], 5),
                _binary("b", "UINT8", [1], 1),
            ]
        },
        b"\x01\x00\x00\x00\xff",
        b"\x07",
    ),
    "json_only.bin": b"-\n"
    + json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}]}).encode(),
    "structured_start.bin": bytes([STRUCTURED]) + bytes(range(64)),
}


def main() -> None:
    if sys.argv[1:2] == ["--seeds"]:
        directory = Path(sys.argv[2])
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in SEEDS.items():
            (directory / name).write_bytes(data)
        return
    import atheris

    warnings.simplefilter("error")  # numpy's RuntimeWarnings (a cast of a signalling NaN...) are findings too
    atheris.Setup(sys.argv, check_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
