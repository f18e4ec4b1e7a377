"""Atheris target for the request parser: body bytes -> jsonio.parse_object -> codec decode.

Every input must end in a value or a ``GatewayError`` (an envelope with a 4xx); anything else
is a bug. Run: ``python fuzz/fuzz_request.py NEW_DIR fuzz/corpus -atheris_runs=2000`` (libFuzzer writes
new inputs into the first directory, so keep the committed corpus second).
"""

from __future__ import annotations

import sys
from typing import Any

from gateway import codec, codec_examples, jsonio
from gateway._pb.tensorflow.core.framework import types_pb2
from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway.errors import GatewayError

LIMITS = codec.Limits(max_tensor_elements=10_000)


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
    """Raise if ``data`` makes the parser fail with anything but a GatewayError with a 4xx status."""
    try:
        doc = jsonio.parse_object(data, max_depth=16)
    except GatewayError as exc:
        _client_error(exc)
        return
    for sig in SIGNATURES:
        _decode(
            lambda sig=sig: codec.decode_predict_inputs(doc, sig, "", LIMITS, bools_possible=codec.bools_possible(data))
        )
    _decode(lambda: codec_examples.decode_input(doc))


def _decode(step: Any) -> None:
    try:
        step()
    except GatewayError as exc:
        _client_error(exc)


def _client_error(exc: GatewayError) -> None:
    if not 400 <= exc.http_status < 500 and exc.http_status != 501:
        raise AssertionError(f"{type(exc).__name__} with status {exc.http_status}: {exc.message}")


def main() -> None:
    import atheris

    atheris.instrument_all()  # coverage feedback for the gateway's modules, already imported above
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
