"""Handwritten digits in MNIST's layout, from the data set scikit-learn ships (nothing is downloaded).

scikit-learn's ``load_digits`` holds 1,797 handwritten digits as 8x8 images with values 0..16.
MNIST clients (TF Serving's ``mnist_client``, Gradient's sample) send 28x28 images flattened to
784 floats in [0, 1], the digit scaled into the centre 20x20 box with a 4-pixel margin. This module
turns the former into the latter, so a model trained here answers those clients:

- :func:`mnist_layout`: 8x8 digits (0..16) -> 28x28 floats in [0, 1], digit in the centre 20x20.
- :func:`split`: the fixed train / held-out split the demo model is built and tested with.
- :func:`typical_held_out`: a held-out digit nobody would misread, for demos.
- :func:`render_png`: a digit as a 28x28 8-bit grey PNG, the kind of file MNIST clients load
  (``examples/clients/common.py`` reads it back as they do).

Numpy, scikit-learn and Pillow only: ``examples/build_models.py`` and the tests import it, and
neither should pay for TensorFlow here.
"""

from __future__ import annotations

import io
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

SIDE = 28
BOX = 20  # MNIST fits each digit in a 20x20 box ...
MARGIN = (SIDE - BOX) // 2  # ... centred in the 28x28 image
PIXELS = SIDE * SIDE
HELD_OUT_EVERY = 5  # every fifth sample is held out: never trained on, used to measure accuracy

Floats = npt.NDArray[np.float32]


class Split(NamedTuple):
    """Images as (n, 784) floats in [0, 1] and their labels (n,) int64."""

    train_images: Floats
    train_labels: npt.NDArray[np.int64]
    test_images: Floats
    test_labels: npt.NDArray[np.int64]


def _bilinear_matrix(source: int, target: int) -> Floats:
    """The (target, source) matrix that resamples a 1-D signal bilinearly (pixel centres aligned)."""
    centres = (np.arange(target) + 0.5) * source / target - 0.5
    low = np.clip(np.floor(centres).astype(int), 0, source - 1)
    high = np.clip(low + 1, 0, source - 1)
    weight = np.clip(centres - low, 0.0, 1.0)
    matrix = np.zeros((target, source), dtype=np.float32)
    np.add.at(matrix, (np.arange(target), low), 1.0 - weight)
    np.add.at(matrix, (np.arange(target), high), weight)
    return matrix


def mnist_layout(images8: npt.NDArray[Any]) -> Floats:
    """(n, 8, 8) digits with values 0..16 -> (n, 28, 28) float32 in [0, 1], MNIST's layout."""
    resample = _bilinear_matrix(images8.shape[-1], BOX)
    # One matrix product per axis resizes every image at once (separable bilinear filter).
    boxed = np.einsum("ij,njk,lk->nil", resample, np.asarray(images8, dtype=np.float32) / 16.0, resample)
    out = np.zeros((len(images8), SIDE, SIDE), dtype=np.float32)
    out[:, MARGIN : MARGIN + BOX, MARGIN : MARGIN + BOX] = np.clip(boxed, 0.0, 1.0)
    return out


def raw_digits() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """scikit-learn's bundled digits: (1797, 8, 8) images 0..16 and their labels."""
    from sklearn.datasets import load_digits  # imported here: clients that only read PNGs skip it

    data = load_digits()
    return data.images, data.target.astype(np.int64)


def held_out(count: int) -> npt.NDArray[np.bool_]:
    """Which of count samples are held out (every HELD_OUT_EVERY-th, starting with the first)."""
    test: npt.NDArray[np.bool_] = np.arange(count) % HELD_OUT_EVERY == 0
    return test


def split() -> Split:
    """The fixed split: the demo model trains on ~80% and is measured on the rest."""
    images8, labels = raw_digits()
    images = mnist_layout(images8).reshape(-1, PIXELS)
    test = held_out(len(labels))
    return Split(images[~test], labels[~test], images[test], labels[test])


def typical_held_out(digit: int) -> npt.NDArray[np.float64]:
    """The held-out 8x8 sample (0..16) of digit nearest to the training samples' mean of it.

    A typical hand, chosen without asking any model: some handwritten 5s close their top
    loop and are honestly read as 9s, and a demo image should not be one of those.
    """
    images8, labels = raw_digits()
    test = held_out(len(labels))
    mean = images8[~test & (labels == digit)].mean(axis=0)
    candidates = np.flatnonzero(test & (labels == digit))
    distances = ((images8[candidates] - mean) ** 2).sum(axis=(1, 2))
    typical: npt.NDArray[np.float64] = images8[candidates[np.argmin(distances)]]
    return typical


def render_png(image8: npt.NDArray[Any]) -> bytes:
    """An 8x8 digit (0..16) as a 28x28 8-bit grey PNG, white on black as MNIST draws it.

    Pillow's bicubic filter upscales it, not the bilinear one the model is trained on, so the
    PNG is a fair test of a model that never saw it.
    """
    from PIL import Image

    small = Image.fromarray(np.round(np.asarray(image8) * (255 / 16)).astype(np.uint8), mode="L")
    canvas = Image.new("L", (SIDE, SIDE), 0)
    canvas.paste(small.resize((BOX, BOX), Image.Resampling.BICUBIC), (MARGIN, MARGIN))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
