"""In-process checks of the stand-in's building blocks: tensor encodings and config parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from devserver.config_file import ConfigError, PolicyKind, VersionPolicy, parse_config_text
from devserver.tensors import array_to_proto, dtype_name

NUMERIC_CASES = [
    (np.array([1.5, -2.25, np.inf], dtype=np.float32), tf.float32, "float_val"),
    (np.array([[1e300, -0.0]], dtype=np.float64), tf.float64, "double_val"),
    (np.array([1, -2, 3], dtype=np.int8), tf.int8, "int_val"),
    (np.array([255, 0], dtype=np.uint8), tf.uint8, "int_val"),
    (np.array([65535], dtype=np.uint16), tf.uint16, "int_val"),
    (np.array([2**40, -1], dtype=np.int64), tf.int64, "int64_val"),
    (np.array([2**63 + 5], dtype=np.uint64), tf.uint64, "uint64_val"),
    (np.array([True, False]), tf.bool, "bool_val"),
    (np.array([0.5, 65504.0], dtype=np.float16), tf.float16, "half_val"),
    (np.array([1 + 2j, -3j], dtype=np.complex64), tf.complex64, "scomplex_val"),
]


@pytest.mark.parametrize(("array", "dtype", "field"), NUMERIC_CASES)
def test_typed_fields_round_trip(array: np.ndarray, dtype: tf.DType, field: str) -> None:
    proto = array_to_proto(array, dtype)
    assert proto.tensor_content == b""
    assert len(getattr(proto, field)) == array.size * (2 if array.dtype.kind == "c" else 1)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)


@pytest.mark.parametrize(("array", "dtype", "field"), NUMERIC_CASES)
def test_tensor_content_round_trip(array: np.ndarray, dtype: tf.DType, field: str) -> None:
    proto = array_to_proto(array, dtype, as_tensor_content=True)
    assert not getattr(proto, field)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)


def test_scalar_and_empty_tensors() -> None:
    scalar = array_to_proto(np.array(2.5, dtype=np.float32), tf.float32)
    assert list(scalar.float_val) == [2.5]
    assert not scalar.tensor_shape.dim
    empty = array_to_proto(np.zeros((0, 3), dtype=np.float32), tf.float32)
    assert [d.size for d in empty.tensor_shape.dim] == [0, 3]
    assert not empty.float_val


def test_strings_in_tensor_content_use_tf_encoding() -> None:
    long = b"x" * 200  # a length that needs two varint bytes
    proto = array_to_proto(np.array([b"ab", long], dtype=object), tf.string, as_tensor_content=True)
    assert proto.tensor_content == b"\x02\xc8\x01" + b"ab" + long


def test_dtype_names_match_tensorflow_runtime() -> None:
    assert dtype_name(types_pb2.DT_FLOAT) == "float"
    assert dtype_name(types_pb2.DT_DOUBLE) == "double"
    assert dtype_name(types_pb2.DT_HALF) == "half"
    assert dtype_name(types_pb2.DT_STRING) == "string"
    assert dtype_name(types_pb2.DT_INT64) == "int64"


CONFIG = """
model_config_list {
  config { name: 'a' base_path: 'models/a' model_platform: 'tensorflow' }
  config {
    name: 'b' base_path: '/abs/b' model_platform: 'tensorflow'
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: 'stable' value: 3 }
  }
  config { name: 'c' base_path: 'c' model_version_policy { specific { versions: 1 versions: 4 } } }
  config { name: 'd' base_path: 'd' model_version_policy { all {} } }
}
"""


def test_config_parsing(tmp_path: Path) -> None:
    models = {m.name: m for m in parse_config_text(CONFIG, tmp_path)}
    assert models["a"].base_path == (tmp_path / "models" / "a").resolve()
    assert models["a"].policy == VersionPolicy()
    assert models["b"].base_path == Path("/abs/b")
    assert models["b"].policy == VersionPolicy(PolicyKind.LATEST, num_versions=2)
    assert models["b"].labels == {"stable": 3}
    assert models["c"].policy == VersionPolicy(PolicyKind.SPECIFIC, versions=frozenset({1, 4}))
    assert models["d"].policy.kind is PolicyKind.ALL


def test_version_policies_pick_aspired_versions() -> None:
    on_disk = {1, 2, 5, 9}
    assert VersionPolicy().aspired(on_disk) == {9}
    assert VersionPolicy(PolicyKind.LATEST, num_versions=2).aspired(on_disk) == {5, 9}
    assert VersionPolicy(PolicyKind.ALL).aspired(on_disk) == on_disk
    assert VersionPolicy(PolicyKind.SPECIFIC, versions=frozenset({2, 3})).aspired(on_disk) == {2}
    assert VersionPolicy().aspired(set()) == set()


def test_config_rejects_duplicates_and_garbage(tmp_path: Path) -> None:
    duplicate = "model_config_list { config { name: 'a' base_path: 'x' } config { name: 'a' base_path: 'y' } }"
    with pytest.raises(ConfigError, match="multiple times"):
        parse_config_text(duplicate, tmp_path)
    with pytest.raises(ConfigError, match="Invalid model config"):
        parse_config_text("model_config_list { nonsense: 1 }", tmp_path)
    with pytest.raises(ConfigError, match="no base_path"):
        parse_config_text("model_config_list { config { name: 'a' } }", tmp_path)
