"""Predict, Classify and Regress on a resolved Servable, with ModelServer's checks and texts.

The order of checks follows ModelServer's predict_util / classifier / regressor, because a
client (the gateway) sees which error fires first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from devserver.errors import ServingError, failed_precondition, invalid_argument, status_code_from_int
from devserver.models import Servable
from devserver.tensors import array_to_proto, dtype_name, proto_to_tensor

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
SignatureFunction = Callable[..., Mapping[str, tf.Tensor]]


def signature_name(spec: model_pb2.ModelSpec) -> str:
    return spec.signature_name or DEFAULT_SIGNATURE


def fill_model_spec(spec: model_pb2.ModelSpec, servable: Servable, signature: str) -> None:
    """Responses echo the name, the resolved numeric version and the signature used."""
    spec.name = servable.name
    spec.version.value = servable.version
    spec.signature_name = signature


def _joined(keys: Sequence[str] | set[str]) -> str:
    return ",".join(sorted(keys))


def run_signature(function: SignatureFunction, feeds: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Run a signature; TF runtime errors pass through with their own code and text."""
    try:
        return dict(function(**feeds))
    except tf.errors.OpError as exc:
        raise ServingError(status_code_from_int(exc.error_code), exc.message) from exc
    except (TypeError, ValueError) as exc:
        raise invalid_argument(str(exc)) from exc


# ----- Predict ---------------------------------------------------------------------------


def _predict_signature(servable: Servable, name: str) -> tuple[meta_graph_pb2.SignatureDef, SignatureFunction]:
    signature = servable.signature_defs.get(name)
    function = servable.functions.get(name)
    if signature is None or function is None:
        raise failed_precondition(f'Serving signature key "{name}" not found.')
    # Predict may run classify and regress signatures too, but nothing else.
    if signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise invalid_argument(
            "Expected prediction signature method_name to be one of {"
            f"{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}"
        )
    return signature, function


def _verify_input_names(signature: meta_graph_pb2.SignatureDef, sent: Mapping[str, tensor_pb2.TensorProto]) -> None:
    sent_names = set(sent)
    expected = set(signature.inputs)
    extra = sent_names - expected
    # Inputs with a default value in the signature may be left out.
    missing = expected - sent_names - set(signature.defaults)
    if extra or missing:
        raise invalid_argument(
            f"input size does not match signature: {len(sent_names)}!={len(expected)} "
            f"len({{{_joined(sent_names)}}}) != len({{{_joined(expected)}}}). "
            f"Sent extra: {{{_joined(extra)}}}. Missing but required: {{{_joined(missing)}}}."
        )


def _output_aliases(signature: meta_graph_pb2.SignatureDef, output_filter: Sequence[str]) -> list[str]:
    """The outputs to return: the filter (checked) or, when empty, all of them."""
    if not output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{_joined(set(signature.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def _input_tensors(
    signature: meta_graph_pb2.SignatureDef, sent: Mapping[str, tensor_pb2.TensorProto]
) -> dict[str, tf.Tensor]:
    """Decode every input, then check dtypes as TF's session does when it is fed."""
    protos = dict(sent)
    for alias in set(signature.defaults) - set(protos):
        protos[alias] = signature.defaults[alias]
    tensors = {alias: proto_to_tensor(alias, protos[alias]) for alias in sorted(protos)}
    for index, alias in enumerate(sorted(protos)):
        expected = signature.inputs[alias].dtype
        if protos[alias].dtype != expected:
            raise invalid_argument(
                f"Expects arg[{index}] to be {dtype_name(expected)} but {dtype_name(protos[alias].dtype)} is provided"
            )
    return tensors


def predict(
    servable: Servable, request: predict_pb2.PredictRequest, as_tensor_content: bool
) -> predict_pb2.PredictResponse:
    name = signature_name(request.model_spec)
    signature, function = _predict_signature(servable, name)
    _verify_input_names(signature, request.inputs)
    aliases = _output_aliases(signature, request.output_filter)
    outputs = run_signature(function, _input_tensors(signature, request.inputs))
    response = predict_pb2.PredictResponse()
    for alias in aliases:
        tensor = outputs[alias]
        response.outputs[alias].CopyFrom(array_to_proto(tensor.numpy(), tensor.dtype, as_tensor_content))
    fill_model_spec(response.model_spec, servable, name)
    return response


# ----- Classify / Regress ----------------------------------------------------------------


def serialized_examples(model_input: input_pb2.Input) -> list[bytes]:
    """One serialized Example per input example.

    With a context, ModelServer writes the serialized context followed by the serialized
    example: protobuf merge semantics, where an example's feature overrides the context's.
    """
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        serialized = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = model_input.example_list_with_context
        context = with_context.context.SerializeToString()
        serialized = [context + e.SerializeToString() for e in with_context.examples]
    else:
        serialized = []
    if not serialized:
        raise invalid_argument("Input is empty.")
    return serialized


def _example_signature(
    servable: Servable, name: str, method: str, kind: str
) -> tuple[meta_graph_pb2.SignatureDef, SignatureFunction, str]:
    """Look up a classify/regress signature; return it, its function and its input alias."""
    signature = servable.signature_defs.get(name)
    function = servable.functions.get(name)
    if signature is None or function is None:
        raise invalid_argument(f"No signature was found with the name: {name}")
    if signature.method_name != method:
        raise invalid_argument(f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    ((alias, info),) = signature.inputs.items()
    if info.dtype != types_pb2.DT_STRING:
        raise invalid_argument(f"Expected input Tensor of DT_STRING. Got: {types_pb2.DataType.Name(info.dtype)}")
    return signature, function, alias


def _run_on_examples(
    function: SignatureFunction, alias: str, model_input: input_pb2.Input
) -> tuple[dict[str, tf.Tensor], int]:
    examples = serialized_examples(model_input)
    outputs = run_signature(function, {alias: tf.constant(examples, dtype=tf.string)})
    return outputs, len(examples)


def _check_matrix(kind: str, tensor: tf.Tensor, dtype: tf.DType, batch: int) -> np.ndarray:
    """Classify outputs must be [batch, num_classes] of the right dtype."""
    if tensor.dtype != dtype:
        raise invalid_argument(
            f"Expected {kind} Tensor of {types_pb2.DataType.Name(dtype.as_datatype_enum)}. "
            f"Got: {types_pb2.DataType.Name(tensor.dtype.as_datatype_enum)}"
        )
    if tensor.shape.rank != 2:
        raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {tensor.shape.as_list()}")
    if tensor.shape[0] != batch:
        raise invalid_argument(f"Expected {kind} output batch size of {batch}. Got: {tensor.shape[0]}")
    return np.asarray(tensor.numpy())


def _classification_outputs(signature: meta_graph_pb2.SignatureDef) -> tuple[str | None, str | None]:
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    classes = "classes" if "classes" in signature.outputs else None
    scores = "scores" if "scores" in signature.outputs else None
    if classes is None and scores is None:
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" or "scores".'
        )
    return classes, scores


def _classification_result(
    classes: np.ndarray | None, scores: np.ndarray | None, batch: int
) -> classification_pb2.ClassificationResult:
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    num_classes = (classes if classes is not None else scores).shape[1]  # type: ignore[union-attr]
    result = classification_pb2.ClassificationResult()
    for row in range(batch):
        classifications = result.classifications.add()
        for column in range(num_classes):
            item = classifications.classes.add()
            if classes is not None:
                item.label = bytes(classes[row, column]).decode("utf-8", errors="replace")
            if scores is not None:
                item.score = float(scores[row, column])
    return result


def classify(
    servable: Servable, request: classification_pb2.ClassificationRequest
) -> classification_pb2.ClassificationResponse:
    name = signature_name(request.model_spec)
    signature, function, alias = _example_signature(servable, name, CLASSIFY_METHOD, "classification")
    classes_alias, scores_alias = _classification_outputs(signature)
    outputs, batch = _run_on_examples(function, alias, request.input)
    classes = _check_matrix("classes", outputs[classes_alias], tf.string, batch) if classes_alias else None
    scores = _check_matrix("scores", outputs[scores_alias], tf.float32, batch) if scores_alias else None
    response = classification_pb2.ClassificationResponse()
    response.result.CopyFrom(_classification_result(classes, scores, batch))
    fill_model_spec(response.model_spec, servable, name)
    return response


def _regression_values(tensor: tf.Tensor, batch: int) -> list[float]:
    if tensor.dtype != tf.float32:
        raise invalid_argument(
            f"Expected output Tensor of DT_FLOAT.  Got: {types_pb2.DataType.Name(tensor.dtype.as_datatype_enum)}"
        )
    shape = tensor.shape.as_list()
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise invalid_argument(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {shape}"
        )
    if shape[0] != batch:
        raise invalid_argument(f"Input batch size did not match output batch size: {batch} vs. {shape[0]}")
    return [float(v) for v in tensor.numpy().reshape(-1)]


def regress(servable: Servable, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
    name = signature_name(request.model_spec)
    signature, function, alias = _example_signature(servable, name, REGRESS_METHOD, "regression")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "outputs" not in signature.outputs:
        raise invalid_argument('Expected regression signature outputs to contain "outputs".')
    outputs, batch = _run_on_examples(function, alias, request.input)
    response = regression_pb2.RegressionResponse()
    for value in _regression_values(outputs["outputs"], batch):
        response.result.regressions.add().value = value
    fill_model_spec(response.model_spec, servable, name)
    return response
