"""Classify and regress: REST JSON <-> tf.Example requests and their results. Pure.

Request (spec §6.1)::

    {"signature_name": "s",                      # optional
     "context": {"<feature>": <v> | [<v>, ...]}, # optional, shared by every example
     "examples": [{"<feature>": <v> | [<v>, ...], ...}, ...]}

    <v> := string -> bytes_list | {"b64": ...} -> bytes_list
         | integer or true/false -> int64_list | decimal, NaN, Infinity -> float_list

The first element of a feature fixes its kind; ints and decimals never mix.

Response (spec §6.2)::

    classify: {"results": [[["<label>", <score>], ...], ...]}   # one list per example
    regress:  {"results": [<value>, ...]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson

from gateway._pb.tensorflow.core.example import example_pb2, feature_pb2
from gateway._pb.tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2
from gateway.codec.jsonio import debug_string, non_finite_token
from gateway.codec.predict import b64decode, is_b64, json_type
from gateway.errors import InvalidArgument

Kind = Literal["bytes", "float", "int64"]
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


def decode_input(doc: Mapping[str, Any]) -> input_pb2.Input:
    """The ``Input`` of a ClassificationRequest / RegressionRequest."""
    context = doc.get("context")
    examples = doc.get("examples")
    if examples is None and "examples" not in doc:
        raise InvalidArgument(
            f"JSON Value: {debug_string(doc)} When method is classify, key 'examples' is expected and was not found"
        )
    if not isinstance(examples, list):
        raise InvalidArgument(f"JSON Value: {debug_string(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise InvalidArgument(f"JSON Value: {debug_string(doc)} 'examples' value is an empty array")
    decoded = [decode_example(e) for e in examples]
    result = input_pb2.Input()
    if "context" in doc:
        result.example_list_with_context.examples.extend(decoded)
        result.example_list_with_context.context.CopyFrom(decode_example(context))
    else:
        result.example_list.examples.extend(decoded)
    return result


def decode_example(value: Any) -> example_pb2.Example:
    if not isinstance(value, dict):
        raise InvalidArgument(f"Example must be JSON object but got JSON {json_type(value)}")
    example = example_pb2.Example()
    features = example.features.feature
    for name, raw in value.items():
        values = raw if type(raw) is list else [raw]
        if not _fill_uniform(features[name], values):
            features[name].CopyFrom(_feature(name, values))
    return example


def _fill_uniform(feature: feature_pb2.Feature, values: list[Any]) -> bool:
    """One C call per feature when every value has the same plain type (the common case); False when
    the element-by-element rules must decide (mixed kinds, bools, b64 objects, big integers)."""
    kinds = set(map(type, values))
    if kinds == {float}:
        feature.float_list.value.extend(values)
    elif kinds == {str}:
        feature.bytes_list.value.extend([v.encode("utf-8", "surrogatepass") for v in values])
    elif kinds == {int} and min(values) >= _INT64_MIN and max(values) <= _INT64_MAX:
        feature.int64_list.value.extend(values)
    else:
        return False
    return True


def _feature(name: str, values: list[Any]) -> feature_pb2.Feature:
    feature = feature_pb2.Feature()
    kind: Kind | None = None
    for value in values:
        this, converted = _element(name, value)
        if kind is None:
            kind = this
        elif this != kind:
            raise InvalidArgument(
                f"Unexpected element type in feature: {name} expecting type: {kind}",
                details={"feature": name, "expected": kind, "actual": this},
            )
        getattr(feature, f"{this}_list").value.append(converted)
    return feature


def _element(name: str, value: Any) -> tuple[Kind, Any]:
    if isinstance(value, str):
        return "bytes", value.encode("utf-8", "surrogatepass")
    if is_b64(value):
        return "bytes", b64decode(value["b64"], name)
    if isinstance(value, bool):
        return "int64", int(value)
    if isinstance(value, int):
        if value <= _INT64_MAX and value >= -_INT64_MAX - 1:
            return "int64", value
        if 0 < value <= _UINT64_MAX:
            raise InvalidArgument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        return "float", float(value)
    if isinstance(value, float):
        return "float", value
    raise InvalidArgument(
        f"Feature: {name} has element with unexpected JSON type: {json_type(value)}",
        details={"feature": name, "actual": json_type(value)},
    )


def encode_classify_response(response: classification_pb2.ClassificationResponse) -> bytes:
    classifications = response.result.classifications
    if not classifications:
        raise InvalidArgument("Cannot convert empty ClassificationResults to JSON")
    results = [[[c.label, _float32(c.score)] for c in item.classes] for item in classifications]
    return orjson.dumps({"results": results})


def encode_regress_response(response: regression_pb2.RegressionResponse) -> bytes:
    regressions = response.result.regressions
    if not regressions:
        raise InvalidArgument("Cannot convert empty RegressionResults to JSON")
    return orjson.dumps({"results": [_float32(r.value) for r in regressions]})


def _float32(value: float) -> orjson.Fragment:
    # Proto floats arrive as Python doubles; print them as the float32 they are.
    single = np.float32(value)
    if np.isfinite(single):
        return orjson.Fragment(orjson.dumps(single, option=orjson.OPT_SERIALIZE_NUMPY))
    return orjson.Fragment(non_finite_token(float(single)))


def classify_arrays(response: classification_pb2.ClassificationResponse) -> dict[str, npt.NDArray[Any]]:
    """A classify result as arrays, to compare two of them: every label and score in order, and the
    number of classes each example got (so the flat lists cannot line up by accident)."""
    classifications = response.result.classifications
    classes = [c for item in classifications for c in item.classes]
    return {
        "classes_per_example": np.array([len(item.classes) for item in classifications], dtype=np.int64),
        "labels": np.array([c.label.encode() for c in classes], dtype=object),
        "scores": np.array([c.score for c in classes], dtype=np.float32),
    }


def regress_arrays(response: regression_pb2.RegressionResponse) -> dict[str, npt.NDArray[Any]]:
    """A regress result as arrays: one value per example."""
    return {"values": np.array([r.value for r in response.result.regressions], dtype=np.float32)}
