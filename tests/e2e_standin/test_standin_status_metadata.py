"""Status and metadata: the JSON TF Serving prints, with the SavedModels' own signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from .conftest import LATEST, Client, ok, version_dir, versions_and_states

OK_STATUS = {"error_code": "OK", "error_message": ""}


def saved_signature_defs(model_dir: Path) -> dict[str, Any]:
    """The SavedModel's signature_def map as TF Serving's metadata prints it (the oracle)."""
    saved_model = saved_model_pb2.SavedModel.FromString((model_dir / "saved_model.pb").read_bytes())
    (meta_graph,) = saved_model.meta_graphs
    return {
        key: json_format.MessageToDict(
            signature, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        )
        for key, signature in meta_graph.signature_def.items()
    }


async def test_status_lists_every_version_available_newest_first(standin_gateway: Client) -> None:
    body = await ok(standin_gateway, "GET", "/v1/models/half_plus_two")
    assert versions_and_states(body) == [("2", "AVAILABLE"), ("1", "AVAILABLE")]


async def test_status_entries_carry_an_ok_status(standin_gateway: Client) -> None:
    # Spec 8: ModelServer always sets ModelVersionStatus.status, so every entry prints
    # "status": {"error_code": "OK", "error_message": ""} for a healthy version.
    body = await ok(standin_gateway, "GET", "/v1/models/half_plus_two")
    assert body == {
        "model_version_status": [
            {"version": "2", "state": "AVAILABLE", "status": OK_STATUS},
            {"version": "1", "state": "AVAILABLE", "status": OK_STATUS},
        ]
    }


@pytest.mark.parametrize("model", sorted(LATEST))
async def test_status_of_every_model(standin_gateway: Client, model: str) -> None:
    expected = [(str(version), "AVAILABLE") for version in range(LATEST[model], 0, -1)]
    assert versions_and_states(await ok(standin_gateway, "GET", f"/v1/models/{model}")) == expected


@pytest.mark.parametrize("model", sorted(LATEST))
async def test_metadata_is_the_saved_models_signatures(
    standin_gateway: Client, standin_models: Path, model: str
) -> None:
    body = await ok(standin_gateway, "GET", f"/v1/models/{model}/metadata")
    assert body["model_spec"] == {"name": model, "version": str(LATEST[model]), "signature_name": ""}
    assert list(body["metadata"]) == ["signature_def"]
    assert body["metadata"]["signature_def"] == {
        "signature_def": saved_signature_defs(version_dir(standin_models, model))
    }


async def test_metadata_spells_dtypes_and_shapes_like_tf_serving(standin_gateway: Client) -> None:
    signatures = (await ok(standin_gateway, "GET", "/v1/models/multi_io/metadata"))["metadata"]["signature_def"]
    default = signatures["signature_def"]["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    dims = {alias: [dim["size"] for dim in info["tensor_shape"]["dim"]] for alias, info in default["inputs"].items()}
    assert dims == {"a": ["-1", "3"], "b": ["-1"], "s": ["-1"]}
    dtypes = {alias: info["dtype"] for alias, info in {**default["inputs"], **default["outputs"]}.items()}
    assert dtypes == {
        "a": "DT_FLOAT",
        "b": "DT_INT64",
        "s": "DT_STRING",
        "sum": "DT_FLOAT",
        "b_times_2": "DT_INT64",
        "s_upper": "DT_STRING",
        "s_len": "DT_INT32",
    }
    assert all(info["tensor_shape"]["unknown_rank"] is False for info in default["inputs"].values())
