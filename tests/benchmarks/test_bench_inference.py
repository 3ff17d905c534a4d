"""The benchmark script runs end to end in --quick mode (correctness only: no timing asserts)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_inference.py"


def test_quick_benchmark_prints_a_side_by_side_table(tmp_path):
    out = tmp_path / "table.md"
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--tasks", "depth", "--cache", str(tmp_path / "c"),
                        "--output", str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    header = next(line for line in r.stdout.splitlines() if line.startswith("| task |"))
    names = [c.strip() for c in header.strip("|").split("|")]
    rows = [dict(zip(names, (c.strip() for c in line.strip("|").split("|"))))
            for line in r.stdout.splitlines() if line.startswith("| depth |")]
    assert len(rows) == 2  # ensemble 1 and 3 at 64 px, 1 step
    for row in rows:
        assert float(row["ours s/img"]) > 0 and float(row["diffusers s/img"]) > 0
        assert re.fullmatch(r"\d+\.\d+x", row["speed-up"])
        assert float(row["max abs diff"]) <= 1e-4  # batch size 1, float32: same numbers as diffusers
        assert row["deviation"] == "0.00%"
    assert out.read_text() == r.stdout


def test_fast_tier_deviation_is_reported(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--tasks", "depth", "--ensembles", "1",
                        "--ours-dtype", "bfloat16", "--cache", str(tmp_path / "c")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ours bfloat16" in r.stdout and "diffusers float32" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("| depth |"))
    deviation = float(row.strip("|").split("|")[-1].strip().rstrip("%"))
    assert 0 < deviation < 100  # bf16 changes the numbers (noise is drawn in bf16 too); reported, not asserted small


def test_onnx_backend_row_reports_speed_and_a_small_deviation(tmp_path):
    """``--ours-backend onnx``: exported once into the cache, then timed; float32 ONNX Runtime stays within the
    fast tier's tolerance of diffusers' float32 output (ensemble 1: no ensembling noise amplification)."""
    import pytest

    pytest.importorskip("onnxruntime")
    from marigold_toolkit.pipeline.backends import FAST_TIER_ABSREL_TOL

    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--tasks", "depth", "--ensembles", "1",
                        "--ours-backend", "onnx", "--cache", str(tmp_path / "c")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ours float32 (onnx)" in r.stdout
    assert (tmp_path / "c" / "tiny-depth-v1-1-onnx" / "manifest.json").is_file()
    row = next(line for line in r.stdout.splitlines() if line.startswith("| depth |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[5]) > 0  # ours s/img
    assert float(cells[-1].rstrip("%")) / 100 <= FAST_TIER_ABSREL_TOL
