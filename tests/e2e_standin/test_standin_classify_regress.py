"""Classify and regress on half_plus_two: the results equal TensorFlow's on the same Examples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import (
    CLASSIFY,
    HP2,
    HP2_ROUTES,
    REGRESS,
    Client,
    assert_classified,
    assert_regressed,
    example_oracle,
    examples_body,
    ok,
    version_dir,
)

# verb -> its signature, and the check of an answer against TensorFlow's output
VERBS: dict[str, tuple[str, Callable[[Any, np.ndarray], None]]] = {
    "classify": (CLASSIFY, assert_classified),
    "regress": (REGRESS, assert_regressed),
}


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize(("path", "version"), HP2_ROUTES.items())
async def test_equals_tensorflow(
    standin_gateway: Client, standin_models: Path, verb: str, path: str, version: int
) -> None:
    signature, check = VERBS[verb]
    answer = await ok(standin_gateway, "POST", f"{path}:{verb}", examples_body(signature))
    check(answer, example_oracle(version_dir(standin_models, "half_plus_two", version), signature))


async def test_regress_with_context(standin_gateway: Client, standin_models: Path) -> None:
    # The context's features join every example: here x comes from the context for both.
    request = {"signature_name": REGRESS, "context": {"x": 4.0}, "examples": [{}, {}]}
    answer = await ok(standin_gateway, "POST", f"{HP2}:regress", request)
    assert_regressed(answer, example_oracle(version_dir(standin_models, "half_plus_two"), REGRESS, [4.0, 4.0]))
