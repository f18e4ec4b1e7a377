"""Build the example SavedModels served by the ModelServer stand-in (``devserver``).

Usage: ``python examples/build_models.py [OUT_DIR] [--force]`` (OUT_DIR defaults to
``examples/models``). Each model lands in ``OUT_DIR/<name>/<version>/``. A version that
already holds a ``saved_model.pb`` is skipped unless ``--force`` is given, so the script
is cheap to rerun. Nothing is downloaded: the digits mnist learns ship with scikit-learn.

Models (see ``examples/models.config``):
  half_plus_two  v1: y = 0.5x + 2, v2: y = 0.5x + 3; predict, classify and regress signatures
  multi_io       mixed-dtype inputs and outputs
  string_bytes   string outputs, one of them non-UTF-8 (alias ends in ``_bytes``)
  mnist          784 floats in [0, 1] -> 10 class probabilities and the class: a small network
                 trained here, in about a second, on scikit-learn's handwritten digits laid out
                 as MNIST (see examples/digits.py); it reads real handwriting
  dtypes         one input and one output per Open Inference Protocol datatype: BOOL, INT8,
                 UINT8, INT16, UINT16, INT32, INT64, FP16, BF16, FP32, FP64 and BYTES (see DTYPES)
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
# Training mnist multiplies small matrices: BLAS threads only contend there (ten times slower on
# two busy cores), and one thread also fixes the order of every float sum, so each build is alike.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Run as a script, this file's folder is first on sys.path, so its sibling imports as is.
import digits
import numpy as np
import numpy.typing as npt
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "models"
MNIST_SEED = 20240601
MNIST_HIDDEN = 128
MNIST_EPOCHS = 40
MNIST_BATCH = 64
MNIST_LEARNING_RATE = 3e-3
MNIST_MAX_SHIFT = 2  # pixels: real MNIST digits sit a pixel or two off the box's centre

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


# --------------------------------------------------------------------------- mnist

Weights = tuple[npt.NDArray[np.float32], ...]


def _shifted(images: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Each (784,) image moved by its own random offset of up to MNIST_MAX_SHIFT pixels.

    The margin around the 20x20 box is 4 pixels, so rolling never wraps ink around an edge.
    """
    side, reach = digits.SIDE, MNIST_MAX_SHIFT
    squares = images.reshape(-1, side, side)
    offsets = rng.integers(-reach, reach + 1, size=(len(images), 2))
    out = np.empty_like(squares)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            chosen = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
            out[chosen] = np.roll(squares[chosen], (dy, dx), axis=(1, 2))
    return out.reshape(len(images), -1)


def train_digits(images: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> Weights:
    """784 -> MNIST_HIDDEN (ReLU) -> 10, trained with Adam on softmax cross-entropy.

    Plain numpy with one fixed seed: the same weights on every build, in about a second, and
    no Keras to import. Each epoch sees every image at a fresh small offset.
    """
    rng = np.random.default_rng(MNIST_SEED)
    pixels, hidden = images.shape[1], MNIST_HIDDEN
    params = [
        (rng.standard_normal((pixels, hidden)) * np.sqrt(2 / pixels)).astype(np.float32),  # He init for ReLU
        np.zeros(hidden, np.float32),
        (rng.standard_normal((hidden, 10)) * np.sqrt(1 / hidden)).astype(np.float32),
        np.zeros(10, np.float32),
    ]
    first, second = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    beta1, beta2, steps = 0.9, 0.999, 0
    one_hot = np.eye(10, dtype=np.float32)[labels]
    for _ in range(MNIST_EPOCHS):
        shifted, order = _shifted(images, rng), rng.permutation(len(images))
        for start in range(0, len(images), MNIST_BATCH):
            batch = order[start : start + MNIST_BATCH]
            grads = _gradients(params, shifted[batch], one_hot[batch])
            steps += 1
            for param, grad, m, v in zip(params, grads, first, second, strict=True):
                m[:] = beta1 * m + (1 - beta1) * grad
                v[:] = beta2 * v + (1 - beta2) * grad * grad
                m_hat, v_hat = m / (1 - beta1**steps), v / (1 - beta2**steps)
                param -= (MNIST_LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)
    return tuple(params)


def _gradients(
    params: list[npt.NDArray[np.float32]], x: npt.NDArray[np.float32], y: npt.NDArray[np.float32]
) -> Weights:
    """Mean softmax cross-entropy gradients for (w1, b1, w2, b2) on one batch."""
    w1, b1, w2, b2 = params
    hidden = np.maximum(x @ w1 + b1, 0)
    logits = hidden @ w2 + b2
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    d_logits = (probabilities - y) / len(x)
    d_hidden = (d_logits @ w2.T) * (hidden > 0)
    return x.T @ d_hidden, d_hidden.sum(axis=0), hidden.T @ d_logits, d_logits.sum(axis=0)


class Mnist(tf.Module):
    """The trained digit classifier, with the signature MNIST clients call."""

    def __init__(self, weights: Weights) -> None:
        super().__init__()
        w1, b1, w2, b2 = weights
        self.w1 = tf.Variable(w1, name="w1")
        self.b1 = tf.Variable(b1, name="b1")
        self.w2 = tf.Variable(w2, name="w2")
        self.b2 = tf.Variable(b2, name="b2")

    @tf.function(input_signature=[tf.TensorSpec([None, digits.PIXELS], tf.float32, name="images")])
    def predict(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        # The first op multiplies the images by w1: a wrong width fails there, with TF's own text.
        hidden = tf.nn.relu(tf.matmul(images, self.w1) + self.b1)
        probabilities = tf.nn.softmax(tf.matmul(hidden, self.w2) + self.b2)
        return {"probabilities": probabilities, "classes": tf.argmax(probabilities, axis=1)}


def build_mnist() -> Built:
    data = digits.split()
    module = Mnist(train_digits(data.train_images, data.train_labels))
    return module, {"serving_default": module.predict.get_concrete_function()}, {}


# --------------------------------------------------------------------------- dtypes

# Input alias -> its dtype; every output is ``<alias>_out``.
DTYPES = {
    "bool": tf.bool,
    "int8": tf.int8,
    "uint8": tf.uint8,
    "int16": tf.int16,
    "uint16": tf.uint16,
    "int32": tf.int32,
    "int64": tf.int64,
    "fp16": tf.float16,
    "bf16": tf.bfloat16,
    "fp32": tf.float32,
    "fp64": tf.float64,
    "bytes": tf.string,
}
# The dtypes TF Serving's REST JSON cannot write (DT_HALF, DT_BFLOAT16, DT_UINT16): any request
# whose signature takes or returns one fails there, so signature tf_serving_json leaves them out.
NOT_TF_SERVING_JSON = ("fp16", "bf16", "uint16")


def _dtype_output(alias: str, value: tf.Tensor) -> tf.Tensor:
    """Numbers + 1 (wrapping as the dtype does), booleans negated, bytes unchanged.

    Every output differs from its input where it can, so a front that echoed inputs, or
    mixed two tensors up, would be caught; bytes stay as sent so non-UTF-8 data round-trips.
    """
    if value.dtype == tf.bool:
        return tf.logical_not(value)
    if value.dtype == tf.string:
        return tf.identity(value)
    return value + tf.ones_like(value)


def _dtype_function(aliases: list[str]) -> tf.types.experimental.ConcreteFunction:
    """A signature taking [None]-shaped inputs ``aliases`` and returning ``<alias>_out`` for each."""
    specs = [tf.TensorSpec([None], DTYPES[alias], name=alias) for alias in aliases]

    def compute(*values: tf.Tensor) -> dict[str, tf.Tensor]:
        return {f"{alias}_out": _dtype_output(alias, value) for alias, value in zip(aliases, values, strict=True)}

    return tf.function(compute, input_signature=specs).get_concrete_function()


@tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
def _narrow(x: tf.Tensor) -> dict[str, tf.Tensor]:
    """A float32 in, cast to each dtype TF Serving's JSON cannot write: its outputs alone fail there."""
    return {alias: tf.cast(x, DTYPES[alias]) for alias in NOT_TF_SERVING_JSON}


def build_dtypes() -> Built:
    """serving_default carries every datatype; tf_serving_json what TF Serving's JSON can carry.

    TF Serving's REST API (and so the v1 front) cannot read or write DT_HALF, DT_BFLOAT16 or
    DT_UINT16, which fails any request to serving_default there: ``tf_serving_json`` takes the
    others, ``fp16`` takes fp16 alone (an input v1 refuses), and ``narrow`` returns the three
    from a float32 input (outputs v1 refuses).
    """
    everything = list(DTYPES)
    signatures = {
        "serving_default": _dtype_function(everything),
        "tf_serving_json": _dtype_function([alias for alias in everything if alias not in NOT_TF_SERVING_JSON]),
        "fp16": _dtype_function(["fp16"]),
        "narrow": _narrow.get_concrete_function(),
    }
    return tf.Module(), signatures, {}


# name -> {version -> builder}
MODELS: dict[str, dict[int, Callable[[], Built]]] = {
    "half_plus_two": {1: lambda: build_half_plus_two(2.0), 2: lambda: build_half_plus_two(3.0)},
    "multi_io": {1: build_multi_io},
    "string_bytes": {1: build_string_bytes},
    "mnist": {1: build_mnist},
    "dtypes": {1: build_dtypes},
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
