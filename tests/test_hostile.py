"""The pathological-input corpus (bench/hostile.py) through real sockets into a gateway process.

Contract, for every case: an answer with the expected status (a 4xx envelope for every bad body,
never a 5xx or a hang), ``/healthz`` on a second connection never held for anything like a hang
(HANG_BOUND_SECONDS) for bodies up to 8 MB while the case is handled, and the gateway still serving
correct answers afterwards. The bound is a hang detector, not a speed claim: the loop stalls the
defects caused were tens of seconds, and a shared CI machine must not fail it by being busy. The
figures themselves (answer time, worst /healthz, CPU) are measured, not asserted, by
``python -m bench.hostile`` (bench/HOSTILE.md).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bench import hostile, run
from tests.gateway_process import GatewayProcess, gateway_config

HANG_BOUND_SECONDS = 5.0
HEALTH_BOUND_BODY_BYTES = 8 * hostile.MB + 512 * 1024  # the corpus's "8 MB" arrays carry a little framing


@pytest.fixture(scope="module")
def backend_target(tmp_path_factory: pytest.TempPathFactory) -> object:
    with run.backend(tmp_path_factory.mktemp("hostile-backend"), None) as (target, _):
        yield target


def _problems(row: hostile.Row, case: hostile.Case) -> list[str]:
    problems = []
    if row.status not in case.expect:
        problems.append(f"status {row.status}, expected one of {sorted(case.expect)}")
    if row.status >= 400 and not row.envelope:
        problems.append("no JSON error envelope")
    if row.health_failures:
        problems.append(f"{row.health_failures} health probes failed")
    if row.body_bytes <= HEALTH_BOUND_BODY_BYTES and row.worst_health_seconds > HANG_BOUND_SECONDS:
        problems.append(f"/healthz took {row.worst_health_seconds:.2f} s")
    return problems


async def test_every_hostile_case_is_answered_and_health_keeps_answering(
    backend_target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with GatewayProcess(gateway_config(backend_target)) as gateway:
        assert gateway.proc is not None
        rows = await hostile.measure(gateway.url, gateway.proc.pid)
        # Still serving, and serving right, after the whole corpus.
        async with aiohttp.ClientSession() as session:
            payload = {"instances": [[1.0, 2.0, 3.0]]}
            async with session.post(gateway.url + "/v1/models/small:predict", json=payload) as response:
                assert response.status == 200
                assert "predictions" in await response.json()
        assert gateway.proc.returncode is None
        assert "Traceback" not in gateway.stderr()
    table = hostile.table(rows)
    (tmp_path / "hostile.md").write_text(table)
    with capsys.disabled():
        print("\n" + table)
    assert [row.case for row in rows] == [case.name for case in hostile.CORPUS]
    failures = {row.case: p for row, case in zip(rows, hostile.CORPUS, strict=True) if (p := _problems(row, case))}
    assert not failures, f"{failures}\n{table}"


def test_the_corpus_covers_what_the_issue_lists() -> None:
    """A guard against the corpus quietly shrinking: each family of hostile input is present."""
    names = " ".join(case.name for case in hostile.CORPUS)
    for family in (
        "nest signature_name",
        "nest instances",
        "nest inputs",
        "nest ignored",
        "nest objects",
        "open",
        "4,301 digits",
        "10^6 digits",
        "decimal",
        "exponent",
        "escapes",
        "surrogate",
        "invalid UTF-8",
        "-NaN",
        "tiny objects",
        "distinct keys",
        "duplicate keys",
        "invalid base64",
        "last byte wrong",
        "ragged last row",
        "gzip bomb",
        "gzip header on garbage",
        "deflate header on garbage",
        "br header on garbage",
    ):
        assert family in names, family
