"""Build the example SavedModels served by the ModelServer stand-in (``devserver``).

Usage: ``python examples/build_models.py [OUT_DIR] [--force]`` (OUT_DIR defaults to
``examples/models``). Each model lands in ``OUT_DIR/<name>/<version>/``. A version that
already holds a ``saved_model.pb`` is skipped unless ``--force`` is given, so the script
is cheap to rerun. Everything is synthetic: no downloads.

Models (see ``examples/models.config``):
  half_plus_two  v1: y = 0.5x + 2, v2: y = 0.5x + 3; predict, classify and regress signatures
  multi_io       mixed-dtype inputs and outputs
  string_bytes   string outputs, one of them non-UTF-8 (alias ends in ``_bytes``)
  mnist          784 -> 10 softmax with fixed synthetic weights
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Keep TF quiet before it is imported: this script's output should be readable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "models"
MNIST_SEED = 20240601

# A builder returns the tf.Module to save, its signatures, and the method_name of every
# signature that is not a plain predict signature.
Built = tuple[tf.Module, dict[str, tf.types.experimental.ConcreteFunction], dict[str, str]]


class HalfPlusTwo(tf.Module):
    """y = a*x + b with a = 0.5; b is 2 (v1) or 3 (v2) so versions are distinguishable."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        # Variables (not constants) so loading exercises the variables/ directory too.
        self.a = tf.Variable(0.5, dtype=tf.float32, name="a")
        self.b = tf.Variable(offset, dtype=tf.float32, name="b")

    def compute(self, x: tf.Tensor) -> tf.Tensor:
        return self.a * x + self.b

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": self.compute(x)}

    def _parse_x(self, serialized: tf.Tensor) -> tf.Tensor:
        # Same feature spec as ModelServer's half_plus_two: one float `x` per Example.
        features = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        return features["x"]  # shape [batch, 1]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": self.compute(self._parse_x(inputs))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"outputs": tf.reshape(self.compute(self._parse_x(inputs)), [-1])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress_column(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        # [batch, 1] output: ModelServer's Regress accepts this shape as well as [batch].
        return {"outputs": self.compute(self._parse_x(inputs))}


def build_half_plus_two(offset: float) -> Built:
    module = HalfPlusTwo(offset)
    signatures = {
        "serving_default": module.predict.get_concrete_function(),
        "classify_x_to_y": module.classify.get_concrete_function(),
        "regress_x_to_y": module.regress.get_concrete_function(),
        "regress_x_to_y2": module.regress_column.get_concrete_function(),
    }
    methods = {
        "classify_x_to_y": CLASSIFY_METHOD,
        "regress_x_to_y": REGRESS_METHOD,
        "regress_x_to_y2": REGRESS_METHOD,
    }
    return module, signatures, methods


class MultiIO(tf.Module):
    """Several inputs of mixed dtypes, several outputs of mixed dtypes."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="a"),
            tf.TensorSpec([None], tf.int64, name="b"),
            tf.TensorSpec([None], tf.string, name="s"),
        ]
    )
    def predict(self, a: tf.Tensor, b: tf.Tensor, s: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            "sum": tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32),
            "b_times_2": b * 2,
            "s_upper": tf.strings.upper(s),
            "s_len": tf.strings.length(s),
        }


def build_multi_io() -> Built:
    module = MultiIO()
    return module, {"serving_default": module.predict.get_concrete_function()}, {}


class StringBytes(tf.Module):
    """Echoes text, and returns raw non-UTF-8 bytes under an alias ending in `_bytes`."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def predict(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        # b"\xff\x00" is never valid UTF-8, so a REST layer must base64 it.
        return {"echo": tf.identity(text), "raw_bytes": tf.strings.join([b"\xff\x00", text])}


def build_string_bytes() -> Built:
    module = StringBytes()
    return module, {"serving_default": module.predict.get_concrete_function()}, {}


class Mnist(tf.Module):
    """A dense softmax layer with deterministic synthetic weights (no dataset needed)."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.RandomState(MNIST_SEED)
        self.w = tf.Variable(rng.normal(0.0, 0.05, (784, 10)).astype(np.float32), name="w")
        self.b = tf.Variable(rng.normal(0.0, 0.1, (10,)).astype(np.float32), name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="images")])
    def predict(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = tf.nn.softmax(tf.matmul(images, self.w) + self.b)
        return {"probabilities": probabilities, "classes": tf.argmax(probabilities, axis=1)}


def build_mnist() -> Built:
    module = Mnist()
    return module, {"serving_default": module.predict.get_concrete_function()}, {}


# name -> {version -> builder}
MODELS: dict[str, dict[int, Callable[[], Built]]] = {
    "half_plus_two": {1: lambda: build_half_plus_two(2.0), 2: lambda: build_half_plus_two(3.0)},
    "multi_io": {1: build_multi_io},
    "string_bytes": {1: build_string_bytes},
    "mnist": {1: build_mnist},
}


def set_method_names(export_dir: Path, methods: dict[str, str]) -> None:
    """Rewrite signature method_names in saved_model.pb.

    tf.saved_model.save marks every signature as predict; ModelServer (and the stand-in)
    decide Classify/Regress support by method_name, so patch the proto after saving.
    """
    if not methods:
        return
    pb_path = export_dir / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(pb_path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        for key, method in methods.items():
            meta_graph.signature_def[key].method_name = method
    pb_path.write_bytes(saved_model.SerializeToString())
    # The fingerprint hashes saved_model.pb; a stale one would only mislead, and loaders
    # treat it as optional.
    (export_dir / "fingerprint.pb").unlink(missing_ok=True)


def build_version(model_dir: Path, version: int, builder: Callable[[], Built]) -> None:
    """Save into a temporary sibling, then rename: a poller never sees a half-written version."""
    module, signatures, methods = builder()
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".building-{version}-", dir=model_dir))
    try:
        export_dir = staging / "export"
        tf.saved_model.save(module, str(export_dir), signatures=signatures)
        set_method_names(export_dir, methods)
        final = model_dir / str(version)
        if final.exists():
            shutil.rmtree(final)
        export_dir.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_all(out_dir: Path, force: bool = False) -> list[str]:
    """Build every missing model version under out_dir; return what was built."""
    built: list[str] = []
    for name, versions in MODELS.items():
        for version, builder in versions.items():
            target = out_dir / name / str(version)
            if not force and (target / "saved_model.pb").is_file():
                continue
            build_version(out_dir / name, version, builder)
            built.append(f"{name}/{version}")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild models that exist")
    args = parser.parse_args(argv)
    started = time.monotonic()
    built = build_all(args.out_dir.resolve(), force=args.force)
    elapsed = time.monotonic() - started
    summary = ", ".join(built) if built else "nothing (all present; use --force to rebuild)"
    print(f"built {summary} in {args.out_dir} ({elapsed:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
