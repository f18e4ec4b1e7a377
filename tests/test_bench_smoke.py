"""The bench's smoke mode: every server of the comparison answers every case correctly; and
RESULTS.md is rendered from the samples alone.

It checks correctness only; the bench prints timings, tests never assert on them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import report
from bench.results import Block, Run, Sample

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


def _sample(server: str, case: str, c: int, rnd: int, cpu_ms: float, requests: int = 1000) -> Sample:
    return Sample(case, c, server, rnd, 0, requests, 2.0, 1.0, 2.0, 0, cpu_ms, 90.0, 5.0)


def test_results_md_is_rendered_from_the_samples_alone(tmp_path: Path) -> None:
    run = Run(meta={"command": "python -m bench", "rounds": 3, "defaults": {"rounds": 5}})
    for rnd, (gw, fl, bl) in enumerate([(0.50, 0.40, 0.60), (0.70, 0.50, 0.50), (0.60, 0.45, 0.80)]):
        run.samples += [
            _sample("gateway", "small_predict", 1, rnd, gw),
            _sample("floor", "small_predict", 1, rnd, fl),
            _sample("baseline", "small_predict", 1, rnd, bl),
        ]
    run.blocks.append(Block("small_predict", 1, [["gateway", "floor", "baseline"]] * 3, [1.0] * 3, [2.0] * 3, 6.0))
    run.startup_s["gateway"] = [0.5, 0.6, 0.7]
    run.idle_rss_mb["gateway"] = [70.0, 71.0, 72.0]
    text = report.render(run)
    # Median 0.60 over median 0.45; the per-round ratios run from 0.50/0.40 to 0.70/0.50.
    assert "| small predict CPU/req vs floor, c=1 | 1.33 x (1.25-1.40) | <= 1.25 x (stretch <= 1.15) |" in text
    assert "| small_predict CPU/req vs baseline, c=1 | 1.00 x (0.75-1.40) | < 1 x | **missed**" in text
    assert "| small_predict | 1 | gateway | 500 (500-500) |" in text
    assert "**Reduced run:** 3 rounds instead of 5" in text
    saved = tmp_path / "RESULTS.json"
    saved.write_text(run.to_json())
    assert report.render(Run.from_json(saved)) == text
