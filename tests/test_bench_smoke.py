"""The bench's smoke mode: every server of the comparison answers every case correctly; and
RESULTS.md is rendered from the samples alone.

It checks correctness only; the bench prints timings, tests never assert on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import cases, report
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
    for case in ("image_v2_binary", "image_v2_json"):  # V2 infer, answered and checked by the gateway and floor
        assert f"| {case} | 1 | gateway |" in done.stdout
        assert f"| {case} | 1 | floor |" in done.stdout


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


def test_v2_image_rows_render_beside_v1_json() -> None:
    run = Run(meta={"command": "python -m bench", "rounds": 2, "defaults": {"rounds": 5}})
    for rnd, (v1, binary, text) in enumerate([(16.0, 1.0, 17.0), (20.0, 1.6, 19.0)]):
        run.samples += [
            _sample("gateway", "image_row", 1, rnd, v1, requests=100),
            _sample("gateway", "image_v2_binary", 1, rnd, binary, requests=1500),
            _sample("gateway", "image_v2_json", 1, rnd, text, requests=90),
            _sample("floor", "image_v2_binary", 1, rnd, 0.5),
        ]
    text = report.render(run)
    # Medians 1.3 / 18.0; per-round 1.0/16.0 and 1.6/20.0.
    assert "| image_v2_binary CPU/req vs image_row (v1 JSON), c=1 | 0.072 x (0.062-0.080) | < 0.1 x | met |" in text
    assert "| image_v2_binary | 1 | 1.30 (1.00-1.60) | 18.0 (16.0-20.0) | 0.072 (0.062-0.080) | 0.500 | 2.60 |" in text
    assert "| image_v2_json | 1 | 18.0 (17.0-19.0) | 18.0 (16.0-20.0) | 1.00 (0.95-1.06) |" in text


def test_v2_checks_decode_the_reply_and_refuse_a_wrong_value() -> None:
    want = cases.output_rows("image", 1)
    header = {"model_name": "image", "outputs": [{"name": "y", "datatype": "FP32", "shape": list(want.shape)}]}
    raw = want.astype("<f4").tobytes()
    header["outputs"][0]["parameters"] = {"binary_data_size": len(raw)}
    head = json.dumps(header).encode()
    binary = cases.by_name("image_v2_binary")
    reply = binary.reply(head + raw, {"inference-header-content-length": str(len(head))})
    assert binary.check(reply)
    wrong = bytearray(raw)
    wrong[-1] ^= 0x40  # one float of the last element
    assert not binary.check(binary.reply(head + bytes(wrong), {"inference-header-content-length": str(len(head))}))
    as_json = cases.by_name("image_v2_json")
    doc = {"model_name": "image", "outputs": [{"name": "y", "datatype": "FP32", "shape": list(want.shape)}]}
    doc["outputs"][0]["data"] = want.ravel().tolist()
    assert as_json.check(as_json.reply(json.dumps(doc).encode(), {}))
    doc["outputs"][0]["data"][7] += 1.0
    assert not as_json.check(as_json.reply(json.dumps(doc).encode(), {}))
