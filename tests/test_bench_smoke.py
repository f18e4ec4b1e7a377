"""The bench's smoke mode: every server of the comparison answers every case correctly.

It checks correctness only; the bench prints timings, tests never assert on them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke_answers_every_case_correctly() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "every case answered correctly: True" in done.stdout
    for server in ("gateway", "floor", "baseline", "direct"):
        assert f"| {server} |" in done.stdout
