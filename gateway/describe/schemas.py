"""JSON Schemas (2020-12, as OpenAPI 3.1 uses them) for TF Serving's bodies, built from signatures. Pure.

A tensor's schema follows its signature (``codec/meta.py``'s ``TensorSpec``)::

    dtype            leaf                                  (spec §4.5, §5.2)
    float, double    {"type": "number"}
    intN, uintN      {"type": "integer", "minimum": lo, "maximum": hi}
    bool             {"type": "boolean"}
    string           input: a string or {"b64": "..."}; output: a string, or {"b64": "..."} when
                     the alias ends in ``_bytes``
    others           {} (the REST API answers 501 for them)

    dims [2, -1, 3]  {"type": "array", "minItems": 2, "maxItems": 2,
                      "items": {"type": "array", "minItems": 1,
                                "items": {"type": "array", "minItems": 3, "maxItems": 3, ...}}}
    unknown rank     {} (any nesting)

The Open Inference Protocol's infer bodies (``oip_*``) list tensors by name with their datatype, shape and
flat ``data`` (``docs/spec/open-inference-protocol.md`` §3-§4), from the same signatures.

The row format (``instances`` / ``predictions``) lists slices along dim 0; the columnar format
(``inputs`` / ``outputs``) sends whole tensors. One input or output stands alone; several are
an object keyed by alias. A request is either form (``oneOf``), and so is the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_dtypes

from gateway.codec.meta import SignatureSpec, TensorSpec
from gateway.codec.predict import DEFAULT_SIGNATURE

Schema = dict[str, Any]

B64: Schema = {
    "type": "object",
    "description": "Binary data, base64-encoded (standard alphabet, padded).",
    "properties": {
        "b64": {
            "type": "string",
            "contentEncoding": "base64",
            "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        }
    },
    "required": ["b64"],
    "additionalProperties": False,
}
ERROR: Schema = {
    "type": "object",
    "description": "TF Serving's error envelope; `error` is always the first key, the rest are additive.",
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "integer", "description": "The HTTP status, repeated."},
        "reason": {"type": "string", "description": "A stable machine-readable token (e.g. `not_found`)."},
        "request_id": {"type": "string"},
        "details": {"type": "object"},
    },
    "required": ["error"],
}


def leaf(spec: TensorSpec, alias: str, *, output: bool) -> Schema:
    """One element of a tensor of ``spec``'s dtype, as JSON carries it."""
    dtype = spec.dtype
    if dtype is None:  # TF Serving's JSON refuses it: a 501 as an input, a 400 as an output
        status = 400 if output else 501
        return {"description": f"{spec.dtype_name}: not convertible by the REST API ({status})"}
    if dtype.is_string:
        if output:
            return dict(B64) if alias.endswith("_bytes") else {"type": "string"}
        b64_first = alias.endswith("_bytes")  # binary by name: b64 is what a client should send
        forms = [dict(B64), {"type": "string"}] if b64_first else [{"type": "string"}, dict(B64)]
        return {"anyOf": forms}
    if dtype.is_float:
        return {"type": "number", "format": dtype.name}
    if dtype.is_int:
        # TF Serving reads 3.0 as a float, a 400 for an integer input: write integers without a fraction.
        return {"type": "integer", "format": dtype.name, "minimum": dtype.lo, "maximum": dtype.hi}
    return {"type": "boolean"}


def nested(element: Schema, dims: tuple[int, ...]) -> Schema:
    """Arrays nested ``len(dims)`` deep around ``element``; a fixed dim bounds its array's length.

    An unknown dim with dims inside it needs at least one item: ``[]`` would lose the inner dims
    (its shape is read as ``[0]``) and the model would refuse the rank.
    """
    schema = element
    for depth in reversed(range(len(dims))):
        array: Schema = {"type": "array", "items": schema}
        if dims[depth] >= 0:
            array["minItems"] = array["maxItems"] = dims[depth]
        elif depth < len(dims) - 1:
            array["minItems"] = 1
        schema = array
    return schema


def tensor(spec: TensorSpec, alias: str, *, output: bool) -> Schema:
    """A whole tensor (the columnar form)."""
    if spec.dims is None:
        return {"description": "unknown rank: any nesting"}
    return nested(leaf(spec, alias, output=output), spec.dims)


def row(spec: TensorSpec, alias: str, *, output: bool) -> Schema:
    """One slice along dim 0 (the row form); a scalar has no rows and stands as itself."""
    if spec.dims is None:
        return {"description": "unknown rank: any nesting"}
    return nested(leaf(spec, alias, output=output), spec.dims[1:])


def _batch(rows: Schema, tensors: Mapping[str, TensorSpec]) -> Schema:
    schema: Schema = {"type": "array", "items": rows}
    fixed = {spec.dims[0] for spec in tensors.values() if spec.dims and spec.dims[0] >= 0}
    if len(fixed) == 1:
        schema["minItems"] = schema["maxItems"] = fixed.pop()
    else:
        schema["minItems"] = 1  # an empty instances list is a 400 (spec §4.2)
    return schema


def _keyed(parts: Mapping[str, Schema]) -> Schema:
    return {"type": "object", "properties": dict(parts), "required": list(parts), "additionalProperties": False}


def _form(tensors: Mapping[str, TensorSpec], output: bool, columnar: bool) -> Schema:
    make = tensor if columnar else row
    parts = {alias: make(spec, alias, output=output) for alias, spec in tensors.items()}
    if len(parts) > 1:
        return _keyed(parts) if columnar else _batch(_keyed(parts), tensors)
    (only,) = parts.values()
    if output:
        return only if columnar else _batch(only, tensors)
    # One input may still be named (spec §4.2 "named" mode), but every row the same way.
    if columnar:
        return {"anyOf": [only, _keyed(parts)]}
    return {"anyOf": [_batch(only, tensors), _batch(_keyed(parts), tensors)]}


def predict_request(signatures: Mapping[str, SignatureSpec]) -> Schema:
    """A predict body for any of ``signatures``: ``signature_name`` picks one (the default when absent).

    A signature with an input the REST API cannot convert (``half``, ``complex64``...) is left out:
    every call to it is a 501, so no body for it is valid.
    """
    variants = [_request_variant(name, sig) for name, sig in signatures.items() if callable_over_rest(sig)]
    if not variants:
        return {"not": {}, "description": "No signature of this model can be called over REST (501)."}
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def callable_over_rest(sig: SignatureSpec) -> bool:
    """Whether JSON can carry every input of ``sig``."""
    return bool(sig.inputs) and all(spec.dtype is not None for spec in sig.inputs.values())


def _request_variant(name: str, sig: SignatureSpec) -> Schema:
    schema: Schema = {
        "type": "object",
        "title": name,
        "properties": {"signature_name": {"const": name}},
        "oneOf": [
            _either("instances", _form(sig.inputs, False, False), "inputs"),
            _either("inputs", _form(sig.inputs, False, True), "instances"),
        ],
    }
    if name != DEFAULT_SIGNATURE:
        schema["required"] = ["signature_name"]
    return schema


def _either(key: str, value: Schema, other: str) -> Schema:
    """``key`` present with ``value``, and ``other`` absent: a body with both is a 400 (spec §4)."""
    return {"properties": {key: value, other: False}, "required": [key]}


def predict_response(signatures: Mapping[str, SignatureSpec]) -> Schema:
    """What predict answers for any of ``signatures``, in the request's form."""
    variants = [_response_variant(name, sig) for name, sig in signatures.items() if sig.outputs]
    if not variants:
        return generic_predict_response()
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _response_variant(name: str, sig: SignatureSpec) -> Schema:
    return {
        "title": name,
        "oneOf": [
            _only("predictions", _form(sig.outputs, True, False)),
            _only("outputs", _form(sig.outputs, True, True)),
        ],
    }


def _only(key: str, value: Schema) -> Schema:
    return {"type": "object", "properties": {key: value}, "required": [key], "additionalProperties": False}


# --------------------------------------------------------------------------- bodies of models not yet seen

VALUE: Schema = {
    "description": 'A number, string, boolean, {"b64": ...} object, or a nested array of them.',
}


def generic_predict_request() -> Schema:
    return {
        "type": "object",
        "properties": {"signature_name": {"type": "string"}},
        "oneOf": [
            _either("instances", {"type": "array", "minItems": 1}, "inputs"),
            _either("inputs", VALUE, "instances"),
        ],
    }


def generic_predict_response() -> Schema:
    return {"oneOf": [_only("predictions", {"type": "array"}), _only("outputs", VALUE)]}


_FEATURE_VALUE: Schema = {"anyOf": [{"type": "number"}, {"type": "string"}, B64]}
_FEATURES: Schema = {
    "type": "object",
    "description": "A tf.Example: feature name -> a value or a flat list of values (numbers, strings, b64).",
    "additionalProperties": {"anyOf": [_FEATURE_VALUE, {"type": "array", "items": _FEATURE_VALUE}]},
}


def examples_request() -> Schema:
    """classify and regress (spec §6): tf.Examples as JSON objects of features, and an optional context."""
    return {
        "type": "object",
        "properties": {
            "signature_name": {"type": "string"},
            "context": _FEATURES,
            "examples": {"type": "array", "items": _FEATURES, "minItems": 1},
        },
        "required": ["examples"],
    }


def classify_response() -> Schema:
    pair = {"type": "array", "items": {"type": ["string", "number"]}, "minItems": 2, "maxItems": 2}  # [label, score]
    return _only("results", {"type": "array", "items": {"type": "array", "items": pair}})


def regress_response() -> Schema:
    return _only("results", {"type": "array", "items": {"type": "number"}})


# --------------------------------------------------------------------------- the Open Inference Protocol

_NON_FINITE: Schema = {"enum": ["NaN", "Infinity", "-Infinity"]}


def oip_element(spec: TensorSpec) -> Schema:
    """One element of ``data`` for a tensor of ``spec``'s datatype (OIP §4)."""
    dtype = spec.oip_dtype
    if dtype is None:
        return {"description": f"{spec.datatype}: not carried by JSON"}
    if dtype.is_string:
        return {"type": "string"}
    if dtype.is_int:
        return {"type": "integer", "minimum": dtype.lo, "maximum": dtype.hi}
    if dtype.name == "bool":
        return {"type": "boolean"}
    assert dtype.numpy is not None
    # ml_dtypes' finfo knows numpy's floats and bfloat16 alike (numpy's refuses bfloat16); past it: 400.
    largest = float(ml_dtypes.finfo(dtype.numpy).max)  # type: ignore[no-untyped-call]
    return {"anyOf": [{"type": "number", "minimum": -largest, "maximum": largest}, _NON_FINITE]}


def _oip_shape(spec: TensorSpec) -> Schema:
    """The rank when known; each dim's size is not pinned, since ``prefixItems`` trips schemathesis."""
    shape: Schema = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    if spec.dims is not None:
        shape["minItems"] = shape["maxItems"] = len(spec.dims)
    return shape


def oip_tensor(alias: str, spec: TensorSpec) -> Schema:
    """An entry of ``inputs`` or ``outputs`` in JSON: name, datatype, shape and flat ``data``."""
    return {
        "type": "object",
        "properties": {
            "name": {"const": alias},
            "datatype": {"const": spec.datatype},
            "shape": _oip_shape(spec),
            "data": {"type": "array", "items": oip_element(spec)},
        },
        "required": ["name", "datatype", "shape", "data"],
    }


def callable_over_oip(sig: SignatureSpec) -> bool:
    return bool(sig.inputs) and all(spec.oip_dtype is not None for spec in sig.inputs.values())


def oip_infer_request(signatures: Mapping[str, SignatureSpec]) -> Schema:
    """An infer body in JSON for any signature OIP can call; ``parameters.signature_name`` picks it."""
    variants = [_oip_request(name, sig) for name, sig in signatures.items() if callable_over_oip(sig)]
    if not variants:
        return {"not": {}, "description": "No signature of this model can be called over OIP (501)."}
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _oip_request(name: str, sig: SignatureSpec) -> Schema:
    inputs = [{**oip_tensor(alias, spec), "additionalProperties": False} for alias, spec in sig.inputs.items()]
    # Each input once (a repeat or a missing one is a 400): n entries, each one of the n inputs.
    listed: Schema = {"type": "array", "items": {"anyOf": inputs}, "minItems": len(inputs), "maxItems": len(inputs)}
    parameters: Schema = {
        "type": "object",
        "properties": {"signature_name": {"const": name}},
        "additionalProperties": False,
    }
    schema: Schema = {
        "type": "object",
        "title": name,
        "properties": {
            "id": {"type": "string"},
            "parameters": parameters,
            "inputs": listed,
            "outputs": {
                "type": "array",
                "uniqueItems": True,
                "items": {
                    "type": "object",
                    "properties": {"name": {"enum": list(sig.outputs)}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["inputs"],
    }
    if name != DEFAULT_SIGNATURE:
        parameters["required"] = ["signature_name"]
        schema["required"] = ["inputs", "parameters"]
    return schema


def oip_infer_response(signatures: Mapping[str, SignatureSpec]) -> Schema:
    """The JSON answer: an entry per output computed, each as its signature describes it."""
    outputs = [oip_tensor(alias, spec) for sig in signatures.values() for alias, spec in sig.outputs.items()]
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "outputs": {"type": "array", "items": {"anyOf": outputs} if outputs else {}},
        },
        "required": ["model_name", "outputs"],
    }
