"""Atheris target for the request parser: body bytes -> the predict handler's parse -> codec decode.

Every input must end in a value or a ``GatewayError`` with a 4xx; anything else is a bug, and so
is an input that takes longer than libFuzzer's ``-timeout``.

Inputs are decoded structure-aware (:func:`body_for`), so that short libFuzzer inputs reach the
shapes random bytes never do (issue 9):

- an input that starts like JSON text (``{``, ``[``, whitespace, or any byte from 0x20 up) is the
  body itself, as in the committed ``*.json`` seeds;
- an input whose first byte is another control byte is a *template*::

      byte 0     selector: bits 0-1 pick a Content-Encoding wrapper, undone by ``gateway.web.body``'s
                 reader (none, gzip, two concatenated deflate streams, truncated gzip)
      byte 1     where the fragment goes (PLACES: signature_name, instances, inputs, inside a row object,
                 examples, context, an ignored key, a duplicate key)
      byte 2     which fragment (KINDS: deep nesting, long number, long string, surrogate, keys,
                 many objects, a big regular array with a defect, b64, garbage)
      bytes 3-5  a size, log-scaled so most inputs stay small and fast: the top 3 bits m, the
                 low 21 bits v, size = v mod (10^m + 1) (depth up to 10^5, digits up to 10^4, counts)
      byte 6     the fragment's variant (list/object nesting and how it closes, number form, ...)
      byte 7     byte-level damage (``hostile.FRAMES``)
      rest       the leaf or the garbage bytes

Run: ``python fuzz/fuzz_request.py NEW_DIR fuzz/corpus -timeout=10 -atheris_runs=200000`` (libFuzzer
writes new inputs into the first directory, so keep the committed corpus second).
``python fuzz/fuzz_request.py --seeds fuzz/corpus`` (re)writes the named template seeds.

The corpus: ``*.json`` are plain bodies; the other named seeds are the issue-9 shapes as
templates (:data:`SEEDS`); ``found_*`` are the inputs a 15-minute campaign (114,505 runs, after
the parser was bounded, no failure) added coverage with, one per template shape, named by
``[wrapper_]fragment_variant_in_place``.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile

if __name__ == "__main__":
    import atheris

    # Coverage feedback for the gateway's own modules only: instrumenting numpy, protobuf and
    # aiohttp too (instrument_all) costs most of a minute at start and guides nothing we own.
    with atheris.instrument_imports(include=["gateway"]):
        for _module in ("web.body", "codec.predict", "codec.examples", "codec.fastjson", "codec.jsonio"):
            importlib.import_module(f"gateway.{_module}")

from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader

from gateway._pb.tensorflow.core.framework import types_pb2
from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway.codec import examples as codec_examples
from gateway.codec import fastjson, jsonio
from gateway.codec import predict as codec
from gateway.errors import GatewayError
from gateway.web import body as request_body

LIMITS = codec.Limits(max_tensor_elements=10_000)
MAX_DEPTH = 64  # the gateway's default server.max_json_depth
MAX_INFLATED = 8 << 20
_LOOP = asyncio.new_event_loop()  # gateway.web.body's reader is async; one loop for every input


def _signature(**inputs: int) -> meta_graph_pb2.SignatureDef:
    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for alias, dtype in inputs.items():
        sig.inputs[alias].dtype = dtype  # type: ignore[assignment]
        sig.inputs[alias].name = f"{alias}:0"
    return sig


SIGNATURES = (
    _signature(x=types_pb2.DT_FLOAT),
    _signature(x=types_pb2.DT_INT8),
    _signature(x=types_pb2.DT_STRING),
    _signature(x=types_pb2.DT_BOOL),
    _signature(a=types_pb2.DT_INT64, b=types_pb2.DT_DOUBLE),
    _signature(x=types_pb2.DT_HALF),
)


def check_one(data: bytes) -> None:
    """Raise if ``data`` makes the parser fail with anything but a GatewayError with a 4xx status.

    The same steps, in the same order, as ``handlers.predict``: the numeric fast path, then the
    exact parser, then the signature name and the codec; plus the examples codec.
    """
    try:
        fast = fastjson.parse_predict(data, max_depth=MAX_DEPTH)
        doc = fast if fast is not None else jsonio.parse_object(data, max_depth=MAX_DEPTH)
        codec.signature_name(doc)
    except GatewayError as exc:
        _client_error(exc)
        return
    if fast is None and (lone := lone_surrogate(doc)) is not None:
        raise AssertionError(f"accepted the unpaired surrogate in {lone!r} (TF Serving answers 400)")
    bools = fast is None and codec.bools_possible(data)
    for sig in SIGNATURES:
        _decode(lambda sig=sig: codec.decode_predict_inputs(doc, sig, "", LIMITS, bools_possible=bools))
    _decode(lambda: codec_examples.decode_input(doc))


def lone_surrogate(doc: Any) -> str | None:
    """The first key or string in ``doc`` holding a lone UTF-16 surrogate (no UTF-8 exists for it)."""
    stack = [doc]
    while stack:
        node = stack.pop()
        texts = [node] if isinstance(node, str) else list(node) if isinstance(node, dict) else []
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return text[:40]
        if isinstance(node, dict | list):
            stack.extend(node.values() if isinstance(node, dict) else node)
    return None


def _decode(step: Callable[[], Any]) -> None:
    try:
        step()
    except GatewayError as exc:
        _client_error(exc)


def _client_error(exc: GatewayError) -> None:
    if not 400 <= exc.http_status < 500 and exc.http_status != 501:
        raise AssertionError(f"{type(exc).__name__} with status {exc.http_status}: {exc.message}")


# --------------------------------------------------------------------------- structure-aware decoding

PLACES: tuple[Callable[[Any], Any], ...] = (
    lambda f: {"signature_name": f, "instances": [1.0]},
    lambda f: {"instances": f},
    lambda f: {"inputs": f},
    lambda f: {"instances": [f, f]},
    lambda f: {"instances": [{"a": f, "b": 1.5}]},
    lambda f: {"inputs": {"a": [1], "b": f}},
    lambda f: {"signature_name": "s", "examples": [{"x": f}]},
    lambda f: {"examples": [{"x": 1.0}], "context": f},
    lambda f: {"ignored": f, "instances": [1.0]},
    lambda f: hostile.Pairs((("instances", [1.0]), ("instances", f))),
)


def _fragment(kind: int, size: int, variant: int, rest: bytes) -> Any:
    # Counts of objects, keys and rows stay at 2*10^4: instrumented, the gateway's per-element
    # Python runs ~20x slower, and bigger ones only trip libFuzzer's timeout (the HTTP fuzzer
    # sends 10^5 of each uninstrumented). Depth, digits and string lengths go to the full size.
    builders: tuple[Callable[[], Any], ...] = (
        lambda: hostile.Deep(
            size % (hostile.MAX_DEPTH + 1),
            hostile.DEEP_KINDS[variant % len(hostile.DEEP_KINDS)],
            hostile.DEEP_CLOSES[(variant >> 2) % len(hostile.DEEP_CLOSES)],
            rest[:16] or b"1",
        ),
        lambda: hostile.LongNumber(size % (hostile.MAX_DIGITS + 1), hostile.NUMBER_FORMS[variant % 8]),
        lambda: hostile.LongString(size % 200_001, hostile.STRING_UNITS[variant % len(hostile.STRING_UNITS)]),
        lambda: hostile.Surrogate(variant),
        lambda: hostile.Keys(size % 20_001, bool(variant & 1)),
        lambda: hostile.ManyObjects(size % 20_001),
        lambda: hostile.Regular(
            size % 5_001, variant % 16 + 1, hostile.REGULAR_DEFECTS[(variant >> 4) % len(hostile.REGULAR_DEFECTS)]
        ),
        lambda: hostile.B64(size % 200_001, bool(variant & 1)),
        lambda: hostile.Garbage(rest),
    )
    return builders[kind % len(builders)]()


def _is_template(data: bytes) -> bool:
    return len(data) >= 8 and data[0] < 0x20 and data[0] not in b"\t\n\r"


def body_for(data: bytes) -> bytes | None:
    """The request body an input stands for; None when its Content-Encoding wrapper does not inflate."""
    if not _is_template(data):
        return data
    selector, place, kind = data[0], data[1], data[2]
    size, variant, damage = _size(int.from_bytes(data[3:6], "big")), data[6], data[7]
    piece = _fragment(kind, size, variant, data[8:])
    body = hostile.render(PLACES[place % len(PLACES)](piece))
    body = hostile.frame(body, hostile.FRAMES[damage % len(hostile.FRAMES)], size)
    return _through_encoding(body, selector % 4, size)


def _through_encoding(body: bytes, wrapper: int, size: int) -> bytes | None:
    """Compress as a client would (maybe broken), then inflate with the gateway's own body reader.

    None when the gateway refuses the wire bytes with a 4xx (it must never raise anything else).
    """
    if wrapper == 0:
        return body
    coding, defect = [("gzip", "none"), ("deflate", "concatenated"), ("gzip", "truncated")][wrapper - 1]
    _, wire = hostile.encode(body, coding, defect, size)
    reader = StreamReader(BaseProtocol(_LOOP), 1 << 25, loop=_LOOP)  # a limit that never pauses reading
    reader.feed_data(wire)
    reader.feed_eof()
    try:
        return _LOOP.run_until_complete(request_body._collect(reader, (coding,), MAX_INFLATED))
    except GatewayError as exc:
        _client_error(exc)
        return None


def check_input(data: bytes) -> None:
    """libFuzzer's entry point: decode the input, then :func:`check_one` on the body."""
    body = body_for(data)
    if body is not None:
        check_one(body)


def _size(raw: int) -> int:
    # A uniform 24-bit size would make almost every input a 10^5-level body; the magnitude
    # bits make each decade equally likely, so libFuzzer runs mostly small, fast inputs.
    return (raw & _VALUE_MASK) % (10 ** (raw >> _VALUE_BITS) + 1)


_VALUE_BITS = 21
_VALUE_MASK = (1 << _VALUE_BITS) - 1


def template(
    *, place: int, kind: int, size: int = 0, variant: int = 0, damage: int = 0, wrapper: int = 0, rest: bytes = b""
) -> bytes:
    """The input bytes for a template (the inverse of :func:`body_for`), for named seeds."""
    raw = len(str(size)) << _VALUE_BITS | size  # 10^digits > size, so _size gives size back
    return bytes([0x10 | wrapper, place, kind]) + raw.to_bytes(3, "big") + bytes([variant, damage]) + rest


SEEDS: dict[str, bytes] = {
    # The issue-9 findings (deep nesting capped at 2^24 - 1 by the 24-bit size; 10^5 is what we generate).
    "deep_signature_name_100k.bin": template(place=0, kind=0, size=100_000),
    "deep_instances_100k.bin": template(place=1, kind=0, size=100_000),
    "deep_ignored_key_objects_100k.bin": template(place=8, kind=0, size=100_000, variant=1),
    "deep_unbalanced_open_10k.bin": template(place=2, kind=0, size=10_000, variant=1 << 2),
    "deep_mixed_swapped_1k.bin": template(place=4, kind=0, size=1_000, variant=2 | 4 << 2),
    "deep_65.bin": template(place=1, kind=0, size=65),
    "number_5000_digits.bin": template(place=3, kind=1, size=5_000),
    "number_4301_digits_in_example.bin": template(place=6, kind=1, size=4_301),
    "number_exponent_10k.bin": template(place=1, kind=1, size=10_000, variant=4),
    "number_decimal_10k.bin": template(place=5, kind=1, size=10_000, variant=2),
    "number_mantissa_10k.bin": template(place=3, kind=1, size=10_000, variant=6),
    "surrogate_lone_high.bin": template(place=2, kind=3, variant=0),
    "surrogate_in_example.bin": template(place=6, kind=3, variant=5),
    "surrogate_cesu_bytes.bin": template(place=3, kind=3, variant=8),
    "escapes_unicode_100k.bin": template(place=0, kind=2, size=100_000, variant=2),
    "keys_duplicate_20k.bin": template(place=7, kind=4, size=20_000),
    "keys_distinct_20k.bin": template(place=8, kind=4, size=20_000, variant=1),
    "many_objects_20k.bin": template(place=1, kind=5, size=20_000),
    "regular_last_byte_wrong.bin": template(place=1, kind=6, size=5_000, variant=7 | 1 << 4),
    "regular_ragged_last.bin": template(place=2, kind=6, size=5_000, variant=7 | 2 << 4),
    "b64_invalid_100k.bin": template(place=4, kind=7, size=100_000),
    "duplicate_instances_key.bin": template(place=9, kind=1, size=3),
    "gzip_deep_instances.bin": template(place=1, kind=0, size=50_000, wrapper=1),
    "gzip_truncated.bin": template(place=1, kind=1, size=300, wrapper=3),
    "truncated_body.bin": template(place=1, kind=6, size=3_000, variant=3, damage=1),
}


def write_seeds(directory: Path) -> None:
    for name, data in SEEDS.items():
        (directory / name).write_bytes(data)


def main() -> None:
    if sys.argv[1:2] == ["--seeds"]:
        write_seeds(Path(sys.argv[2]))
        return
    import atheris

    atheris.Setup(sys.argv, check_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
