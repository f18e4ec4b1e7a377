"""Codec tables from the spec's examples (sections 4, 5, 6, 8, 9). Pure: no sockets."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pytest

from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)
from gateway.codec import examples as codec_examples
from gateway.codec import meta as codec_meta
from gateway.codec import predict as codec
from gateway.codec.jsonio import parse_object
from gateway.codec.tensors import SUPPORTED, to_proto
from gateway.errors import GatewayError, InvalidArgument, Unimplemented

DT = {d.name: d.enum for d in SUPPORTED.values()} | {"half": 19, "complex64": 8, "uint16": 17}


def signature(**inputs: str) -> meta_graph_pb2.SignatureDef:
    sig = meta_graph_pb2.SignatureDef()
    for alias, dtype in inputs.items():
        sig.inputs[alias].dtype = DT[dtype]
    return sig


def decode(body: bytes, sig: meta_graph_pb2.SignatureDef) -> tuple[str, dict[str, codec.Tensor]]:
    doc = parse_object(body, max_depth=64)
    return codec.decode_predict_inputs(doc, sig, "", bools_possible=codec.bools_possible(body))


def values(tensor: codec.Tensor) -> Any:
    if tensor.dtype.is_string:
        return np.asarray(tensor.values, dtype=object).reshape(tensor.shape).tolist()
    return np.asarray(tensor.values).tolist()


@pytest.mark.parametrize(
    ("body", "sig", "fmt", "expected"),
    [
        (
            b'{"instances": ["foo", "bar", "baz"]}',
            signature(x="string"),
            "row",
            {"x": ((3,), [b"foo", b"bar", b"baz"])},
        ),
        (b'{"instances": [[[1, 2]], [[3, 4]]]}', signature(x="int32"), "row", {"x": ((2, 1, 2), [[[1, 2]], [[3, 4]]])}),
        (
            b'{"instances": [{"tag": "foo", "signal": [1, 2], "sensor": [[1, 2], [3, 4]]},'
            b' {"tag": "bar", "signal": [3, 4], "sensor": [[4, 5], [6, 8]]}]}',
            signature(tag="string", signal="int64", sensor="float"),
            "row",
            {
                "tag": ((2,), [b"foo", b"bar"]),
                "signal": ((2, 2), [[1, 2], [3, 4]]),
                "sensor": ((2, 2, 2), [[[1.0, 2.0], [3.0, 4.0]], [[4.0, 5.0], [6.0, 8.0]]]),
            },
        ),
        (
            b'{"inputs": {"tag": ["foo", "bar"], "signal": [[1, 2, 3], [3, 4, 1]], "extra": 1}}',
            signature(tag="string", signal="int64"),
            "columnar",
            {"tag": ((2,), [b"foo", b"bar"]), "signal": ((2, 3), [[1, 2, 3], [3, 4, 1]])},
        ),
        (b'{"inputs": 3.5}', signature(x="double"), "columnar", {"x": ((), 3.5)}),
        (b'{"inputs": {"b64": "aGVsbG8="}}', signature(x="string"), "columnar", {"x": ((), b"hello")}),
        (
            b'{"instances": [{"b64": "aGk="}, {"b64": "aGk"}]}',
            signature(x="string"),
            "row",
            {"x": ((2,), [b"hi", b"hi"])},
        ),
        (b'{"inputs": []}', signature(x="float"), "columnar", {"x": ((0,), [])}),
        (b'{"inputs": [[], []]}', signature(x="int64"), "columnar", {"x": ((2, 0), [[], []])}),
        (b'{"instances": [true, false]}', signature(x="bool"), "row", {"x": ((2,), [True, False])}),
        (b'{"instances": [1435774380]}', signature(x="float"), "row", {"x": ((1,), [1435774336.0])}),
        (b'{"instances": [1.79769e+308, 2.22507e-308]}', signature(x="float"), "row", {"x": ((2,), [math.inf, 0.0])}),
        (b'{"instances": [18446744073709551615]}', signature(x="uint64"), "row", {"x": ((1,), [2**64 - 1])}),
        (b'{"instances": [4294967295]}', signature(x="uint32"), "row", {"x": ((1,), [2**32 - 1])}),
        (b'{"instances": [-128, 127]}', signature(x="int8"), "row", {"x": ((2,), [-128, 127])}),
        (
            b'{"signature_name": "", "inputs": "caf\\u00e9"}',
            signature(x="string"),
            "columnar",
            {"x": ((), "café".encode())},
        ),
    ],
)
def test_predict_requests(body: bytes, sig: meta_graph_pb2.SignatureDef, fmt: str, expected: dict[str, Any]) -> None:
    got_fmt, tensors = decode(body, sig)
    assert got_fmt == fmt
    assert {alias: (t.shape, values(t)) for alias, t in tensors.items()} == expected


def test_nan_and_infinity_inputs() -> None:
    _, tensors = decode(b'{"instances": [NaN, Infinity, -Infinity]}', signature(x="float"))
    got = np.asarray(tensors["x"].values)
    assert got.dtype == np.float32 and math.isnan(got[0]) and got[1] == math.inf and got[2] == -math.inf


@pytest.mark.parametrize(
    ("body", "sig", "facts"),
    [
        (b'{"instances": [1], "inputs": [1]}', signature(x="float"), ["only one of 'inputs' or 'instances'"]),
        (b'{"foo": [1]}', signature(x="float"), ["Missing 'inputs' or 'instances' key"]),
        (b'{"instances": 1}', signature(x="float"), ["Expecting 'instances' to be an list/array"]),
        (b'{"instances": []}', signature(x="float"), ["No values in 'instances' array"]),
        (b'{"instances": [1]}', signature(a="float", b="float"), ["instances is a plain list"]),
        (b'{"inputs": [1]}', signature(a="float", b="float"), ["inputs is a plain value/list"]),
        (b'{"inputs": {"a": [1]}}', signature(a="float", b="float"), ["Missing named input: b in 'inputs' object."]),
        (
            b'{"instances": [{"a": 1, "b": 2}, [1]]}',
            signature(a="float", b="float"),
            ["Expecting object but got list at item 1"],
        ),
        (b'{"instances": [{"a": 1, "c": 2}]}', signature(a="float", b="float"), ["does not have named input: c"]),
        (b'{"instances": [{"a": 1}]}', signature(a="float", b="float"), ["element: 0", "keys must be equal to: a,b"]),
        (b'{"instances": [1, {"x": 1}]}', signature(x="float"), ["Expecting value/list but got object at item 1"]),
        (b'{"instances": [[1, 2], [3]]}', signature(x="float"), ["element: 1", "Expecting tensor size: 2 but got: 1"]),
        (
            b'{"instances": [[[1], [2]], [[3, 4]]]}',
            signature(x="float"),
            ["element: 1", "Expecting shape [2,1] but got: [1,2]"],
        ),
        (b'{"inputs": [[1, 2], [3]]}', signature(x="float"), ["unexpected size: 1 at level: 1 expected size: 2"]),
        (b'{"inputs": [[1, 2], 3]}', signature(x="float"), ["found at incorrect level: 2", "Expected at level: 2"]),
        (b'{"inputs": [1, [2]]}', signature(x="float"), ["Encountered list at unexpected level: 1 expected < 1"]),
        (b'{"instances": [1.0]}', signature(x="int32"), ["element: 0", "1.0", "Number is not of expected type: int32"]),
        (b'{"instances": [1, "a"]}', signature(x="int64"), ["String is not of expected type: int64"]),
        (b'{"instances": [1, true]}', signature(x="float"), ["element: 1", "True is not of expected type: float"]),
        (b'{"instances": [0, 1]}', signature(x="bool"), ["Number is not of expected type: bool"]),
        (b'{"instances": [null]}', signature(x="float"), ["Null is not of expected type: float"]),
        (b'{"instances": [300]}', signature(x="uint8"), ["out of range for type: uint8"]),
        (b'{"instances": [-1]}', signature(x="uint32"), ["out of range for type: uint32"]),
        (b'{"instances": [2147483648]}', signature(x="int32"), ["out of range for type: int32"]),
        (b'{"instances": [{"b64": "!!"}]}', signature(x="string"), ["Unable to base64 decode"]),
        (b'{"inputs": [{"b64": "aGk", "x": 1}]}', signature(x="string"), ["not formatted correctly for base64 data"]),
        (b'{"instances": [{"b64": "aGk", "x": 1}]}', signature(x="string"), ["does not have named input: b64"]),
        (b'{"inputs": 1}', signature(x="string"), ["Number is not of expected type: string"]),
        (b'{"signature_name": 3, "inputs": 1}', signature(x="float"), ["'signature_name' key must be a string value."]),
        (b'{"instances": [1.5]}', signature(x="half"), ["element: 0", "UNIMPLEMENTED", "to type: half"]),
    ],
)
def test_predict_request_errors_name_the_facts(body: bytes, sig: meta_graph_pb2.SignatureDef, facts: list[str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        doc = parse_object(body, max_depth=64)
        codec.signature_name(doc)
        codec.decode_predict_inputs(doc, sig, "", bools_possible=codec.bools_possible(body))
    for fact in facts:
        assert fact in caught.value.message


def test_unsupported_dtype_is_501_in_columnar_format() -> None:
    with pytest.raises(Unimplemented, match=re.escape("Conversion of JSON Value: 1.5 to type: half")) as caught:
        decode(b'{"inputs": [1.5]}', signature(x="half"))
    assert caught.value.status == 501


def test_signature_without_inputs() -> None:
    with pytest.raises(InvalidArgument, match="Failed to get input map for signature: DEFAULT"):
        decode(b'{"inputs": 1}', meta_graph_pb2.SignatureDef())


def test_unknown_signature() -> None:
    with pytest.raises(InvalidArgument, match='Serving signature name: "nope" not found in signature def'):
        codec.find_signature({"serving_default": signature(x="float")}, "nope")


def test_element_limit() -> None:
    doc = parse_object(b'{"inputs": [[1, 2], [3, 4]]}', max_depth=64)
    with pytest.raises(InvalidArgument, match="more than the limit of 3") as caught:
        codec.decode_predict_inputs(doc, signature(x="float"), "", codec.Limits(max_tensor_elements=3))
    assert caught.value.details["elements"] == 4


def response(**outputs: tuple[Any, str]) -> predict_pb2.PredictResponse:
    reply = predict_pb2.PredictResponse()
    for alias, (array, dtype) in outputs.items():
        if dtype == "string":
            proto = reply.outputs[alias]
            proto.dtype = 7
            for size in np.shape(array):
                proto.tensor_shape.dim.add(size=size)
            proto.string_val.extend(np.asarray(array, dtype=object).ravel().tolist())
        else:
            arr = np.asarray(array, dtype=SUPPORTED[DT[dtype]].numpy)
            reply.outputs[alias].CopyFrom(to_proto(arr, SUPPORTED[DT[dtype]], arr.shape))
    return reply


@pytest.mark.parametrize(
    ("reply", "fmt", "text"),
    [
        (response(y=([2.5, 3.0], "float")), "row", b'{"predictions":[2.5,3.0]}'),
        (response(y=([[2.5, 3.0], [3.5, 4.0]], "float")), "row", b'{"predictions":[[2.5,3.0],[3.5,4.0]]}'),
        (response(y=([3.5, 4.0], "float")), "columnar", b'{"outputs":[3.5,4.0]}'),
        (response(y=(0.1, "float")), "columnar", b'{"outputs":0.1}'),
        (response(y=([0.1], "double")), "columnar", b'{"outputs":[0.1]}'),
        (response(y=([1 / 3], "double")), "columnar", b'{"outputs":[0.3333333333333333]}'),
        (
            response(y=([9000000.0, 999999.0, 3e-05, 555557.5], "float")),
            "columnar",
            b'{"outputs":[9000000.0,999999.0,0.00003,555557.5]}',
        ),
        (
            response(y=([float("nan"), float("inf"), float("-inf")], "float")),
            "columnar",
            b'{"outputs":[NaN,Infinity,-Infinity]}',
        ),
        (response(y=([2**63 - 1], "int64")), "row", b'{"predictions":[9223372036854775807]}'),
        (response(y=([True, False], "bool")), "row", b'{"predictions":[true,false]}'),
        (response(y=([b"a", b"\xff"], "string")), "row", b'{"predictions":["a","\xef\xbf\xbd"]}'),
        (response(out_bytes=([b"\x00\xff"], "string")), "row", b'{"predictions":[{"b64":"AP8="}]}'),
        (
            response(a=([1, 2], "int32"), b=([0.5, 1.5], "float")),
            "row",
            b'{"predictions":[{"a":1,"b":0.5},{"a":2,"b":1.5}]}',
        ),
        (response(a=([1, 2, 3], "int32"), b=([0.5], "float")), "columnar", b'{"outputs":{"a":[1,2,3],"b":[0.5]}}'),
        (response(y=(np.zeros((0, 2)), "float")), "row", b'{"predictions":[]}'),
    ],
)
def test_predict_responses(reply: predict_pb2.PredictResponse, fmt: str, text: bytes) -> None:
    assert codec.encode_predict_response(reply, fmt) == text  # type: ignore[arg-type]


def test_typed_field_responses_decode_like_tensor_content() -> None:
    reply = predict_pb2.PredictResponse()
    proto = reply.outputs["y"]
    proto.dtype = 1
    proto.tensor_shape.dim.add(size=3)
    proto.float_val.extend([0.1, 0.2, 0.3])
    assert codec.encode_predict_response(reply, "row") == b'{"predictions":[0.1,0.2,0.3]}'


@pytest.mark.parametrize(
    ("reply", "fact"),
    [
        (predict_pb2.PredictResponse(), "Cannot convert empty tensor map to JSON"),
        (response(y=(1.0, "float")), "Tensor name: y has no shape information"),
        (response(a=([1, 2], "float"), b=([1], "float")), "has inconsistent batch size"),
    ],
)
def test_row_response_errors(reply: predict_pb2.PredictResponse, fact: str) -> None:
    with pytest.raises(InvalidArgument, match=fact):
        codec.encode_predict_response(reply, "row")


def test_unsupported_output_dtype() -> None:
    reply = predict_pb2.PredictResponse()
    reply.outputs["y"].dtype = 19
    with pytest.raises(InvalidArgument, match="Failed to write JSON value for tensor type: half"):
        codec.encode_predict_response(reply, "columnar")


def examples(body: bytes) -> Any:
    return codec_examples.decode_input(parse_object(body, max_depth=64))


def test_examples_typing() -> None:
    got = examples(
        b'{"context": {"c": "ctx"}, "examples": [{"f": [1.5, 2.5], "i": [1, true], "s": "a",'
        b' "b": {"b64": "AP8="}, "n": NaN, "e": []}]}'
    )
    feats = got.example_list_with_context.examples[0].features.feature
    assert list(feats["f"].float_list.value) == [1.5, 2.5]
    assert list(feats["i"].int64_list.value) == [1, 1]
    assert list(feats["s"].bytes_list.value) == [b"a"]
    assert list(feats["b"].bytes_list.value) == [b"\x00\xff"]
    assert math.isnan(feats["n"].float_list.value[0])
    assert feats["e"].WhichOneof("kind") is None
    assert list(got.example_list_with_context.context.features.feature["c"].bytes_list.value) == [b"ctx"]
    assert examples(b'{"examples": [{"x": 1}]}').WhichOneof("kind") == "example_list"


@pytest.mark.parametrize(
    ("body", "fact"),
    [
        (b'{"x": 1}', "key 'examples' is expected and was not found"),
        (b'{"examples": 1}', "Expecting 'examples' value to be an list/array"),
        (b'{"examples": []}', "'examples' value is an empty array"),
        (b'{"examples": [1]}', "Example must be JSON object but got JSON Number"),
        (b'{"examples": [{"x": [10, 10.0]}]}', "Unexpected element type in feature: x expecting type: int64"),
        (b'{"examples": [{"x": [1.5, 2]}]}', "Unexpected element type in feature: x expecting type: float"),
        (b'{"examples": [{"x": [null]}]}', "Feature: x has element with unexpected JSON type: Null"),
        (b'{"examples": [{"x": [[1]]}]}', "Feature: x has element with unexpected JSON type: Array"),
        (b'{"examples": [{"x": 9223372036854775808}]}', "Feature: x has uint64_t element. Only int64_t is supported."),
    ],
)
def test_examples_errors(body: bytes, fact: str) -> None:
    with pytest.raises(GatewayError) as caught:
        examples(body)
    assert fact in caught.value.message


def test_classify_and_regress_results() -> None:
    classify = classification_pb2.ClassificationResponse()
    first = classify.result.classifications.add()
    first.classes.add(label="car", score=0.2)
    first.classes.add(label="", score=0.7)
    assert codec_examples.encode_classify_response(classify) == b'{"results":[[["car",0.2],["",0.7]]]}'
    regress = regression_pb2.RegressionResponse()
    regress.result.regressions.add(value=3.5)
    regress.result.regressions.add(value=float("nan"))
    assert codec_examples.encode_regress_response(regress) == b'{"results":[3.5,NaN]}'
    with pytest.raises(InvalidArgument, match="Cannot convert empty ClassificationResults to JSON"):
        codec_examples.encode_classify_response(classification_pb2.ClassificationResponse())
    with pytest.raises(InvalidArgument, match="Cannot convert empty RegressionResults to JSON"):
        codec_examples.encode_regress_response(regression_pb2.RegressionResponse())


def test_status_json() -> None:
    reply = get_model_status_pb2.GetModelStatusResponse()
    reply.model_version_status.add(version=123, state=30).status.SetInParent()
    assert json.loads(codec_meta.encode_status(reply)) == {
        "model_version_status": [
            {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_metadata_json() -> None:
    reply = get_model_metadata_pb2.GetModelMetadataResponse()
    reply.model_spec.name = "m"
    reply.model_spec.version.value = 1
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    sig = sig_map.signature_def["serving_default"]
    sig.method_name = "tensorflow/serving/predict"
    sig.inputs["x"].name = "x:0"
    sig.inputs["x"].dtype = 1
    sig.inputs["x"].tensor_shape.dim.add(size=-1)
    sig.outputs["y"].name = "y:0"
    sig.outputs["y"].dtype = 1
    sig.outputs["y"].tensor_shape.unknown_rank = True
    reply.metadata["signature_def"].Pack(sig_map)
    assert json.loads(codec_meta.encode_metadata(reply)) == {
        "model_spec": {"name": "m", "version": "1", "signature_name": ""},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {
                        "inputs": {
                            "x": {
                                "name": "x:0",
                                "dtype": "DT_FLOAT",
                                "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
                            }
                        },
                        "outputs": {
                            "y": {"name": "y:0", "dtype": "DT_FLOAT", "tensor_shape": {"dim": [], "unknown_rank": True}}
                        },
                        "method_name": "tensorflow/serving/predict",
                        "defaults": {},
                    }
                }
            }
        },
    }
