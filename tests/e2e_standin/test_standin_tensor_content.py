"""--enable_serialization_as_tensor_content: the same answers as the default typed fields."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver.testing import DevServer, running_devserver

from .conftest import (
    CASES,
    FORMATS,
    POLL_WAIT_SECONDS,
    Client,
    Format,
    MakeGateway,
    PredictCase,
    assert_predict_matches,
    call,
    tf_outputs,
    version_dir,
)


@pytest.fixture(scope="module")
def tensor_content_standin(standin_config: Path) -> Iterator[DevServer]:
    with running_devserver(
        standin_config,
        poll_wait_seconds=POLL_WAIT_SECONDS,
        extra_args=["--enable_serialization_as_tensor_content"],
    ) as server:
        yield server


async def test_predict_is_identical_to_the_default_mode(
    standin_gateway: Client,
    make_standin_gateway: MakeGateway,
    tensor_content_standin: DevServer,
    standin_models: Path,
) -> None:
    content_gateway = await make_standin_gateway(tensor_content_standin.address)
    for case in CASES:
        for fmt in FORMATS:
            await assert_same_answer(standin_gateway, content_gateway, standin_models, case, fmt)


async def assert_same_answer(typed: Client, content: Client, models: Path, case: PredictCase, fmt: Format) -> None:
    """Byte for byte the answer of the default mode, and exactly TensorFlow's values."""
    path, body = f"/v1/models/{case.model}:predict", case.body(fmt)
    reference, answer = await call(typed, "POST", path, body), await call(content, "POST", path, body)
    assert (answer.status, answer.text) == (reference.status, reference.text), (case.id, fmt)
    assert answer.status == 200, answer.text
    assert_predict_matches(answer.body, fmt, tf_outputs(version_dir(models, case.model), case.inputs))
