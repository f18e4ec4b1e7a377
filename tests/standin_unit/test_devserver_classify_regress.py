"""Classify and Regress on half_plus_two's example-based signatures."""

from __future__ import annotations

import pytest
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2
from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub

from .devserver_helpers import float_example, spec


def example_input(*xs: float) -> input_pb2.Input:
    return input_pb2.Input(example_list=input_pb2.ExampleList(examples=[float_example(x=x) for x in xs]))


def test_classify_scores(predict_stub: PredictionServiceStub) -> None:
    request = classification_pb2.ClassificationRequest(
        model_spec=spec("half_plus_two", version=1, signature="classify_x_to_y"), input=example_input(1.0, 4.0)
    )
    response = predict_stub.Classify(request, timeout=30)
    rows = [[(c.label, c.score) for c in row.classes] for row in response.result.classifications]
    assert rows == [[("", 2.5)], [("", 4.0)]]
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "classify_x_to_y"


@pytest.mark.parametrize("signature", ["regress_x_to_y", "regress_x_to_y2"])
def test_regress_on_both_output_shapes(predict_stub: PredictionServiceStub, signature: str) -> None:
    request = regression_pb2.RegressionRequest(
        model_spec=spec("half_plus_two", signature=signature), input=example_input(1.0, 2.0, 0.0)
    )
    response = predict_stub.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [3.5, 4.0, 3.0]
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == signature


def test_regress_with_label(predict_stub: PredictionServiceStub) -> None:
    request = regression_pb2.RegressionRequest(
        model_spec=spec("half_plus_two", label="stable", signature="regress_x_to_y"), input=example_input(2.0)
    )
    response = predict_stub.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [3.0]
    assert response.model_spec.version.value == 1


def test_context_features_are_merged_into_each_example(predict_stub: PredictionServiceStub) -> None:
    """Examples without `x` take it from the context; an example's own `x` wins."""
    with_context = input_pb2.ExampleListWithContext(
        context=float_example(x=10.0), examples=[float_example(), float_example(x=2.0)]
    )
    request = regression_pb2.RegressionRequest(
        model_spec=spec("half_plus_two", version=1, signature="regress_x_to_y"),
        input=input_pb2.Input(example_list_with_context=with_context),
    )
    response = predict_stub.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [7.0, 3.0]
