"""What the example clients share: their flags, the digit image they send, and the line they print.

Each client sends one 28x28 grey image, flattened to 784 floats in [0, 1] (what TF Serving's and
Gradient's MNIST clients send), to the demo's ``mnist`` model, and prints the digit it reads::

    digit 5 (probability 0.998)

The default image, ``digit5.png`` beside this file, is a held-out handwritten 5 from the digits
scikit-learn ships (see ``examples/digits.py``); the model never trained on it.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_IMAGE = Path(__file__).resolve().with_name("digit5.png")
SIDE = 28
INPUT = "images"  # the mnist signature's input alias ...
OUTPUTS = ("classes", "probabilities")  # ... and its outputs


def parser(description: str, url: str, url_help: str) -> argparse.ArgumentParser:
    """The flags every client takes: --url, --model, --image."""
    flags = argparse.ArgumentParser(description=description)
    flags.add_argument("--url", default=url, help=f"{url_help} (default: {url})")
    flags.add_argument("--model", default="mnist", help="model name (default: mnist)")
    flags.add_argument(
        "--image", type=Path, default=DEFAULT_IMAGE, help="image file to classify (default: %(default)s)"
    )
    return flags


def load_image(path: Path | str) -> npt.NDArray[np.float32]:
    """An image file as MNIST clients send it: grey, 28x28, pixel / 255, shape (1, 784) float32."""
    return load_image_bytes(Path(path).read_bytes())


def load_image_bytes(data: bytes) -> npt.NDArray[np.float32]:
    """:func:`load_image` for an image already in memory (PNG, JPEG, or anything Pillow reads)."""
    from PIL import Image  # here, so --help works without Pillow

    with Image.open(io.BytesIO(data)) as image:
        grey = image.convert("L")
        if grey.size != (SIDE, SIDE):
            grey = grey.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        pixels = np.asarray(grey, dtype=np.float32)
    return (pixels / np.float32(255)).reshape(1, SIDE * SIDE)


def answer(classes: Any, probabilities: Any) -> str:
    """The line a client prints for a batch of one: the class and the probability given to it."""
    digit = int(np.asarray(classes).reshape(-1)[0])
    probability = float(np.asarray(probabilities, dtype=np.float64).reshape(-1, 10)[0, digit])
    return f"digit {digit} (probability {probability:.3f})"
