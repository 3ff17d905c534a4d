"""The benchmark script runs end to end in --quick mode (correctness only: no timing asserts)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end-to-end: subprocesses / whole recipes (`-m "not slow"` leaves it out)

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


def _rows(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    names = [c.strip() for c in next(ln for ln in lines if ln.startswith("| task |")).strip("|").split("|")]
    return [dict(zip(names, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines if ln.startswith("| depth |")]


def test_variants_share_one_reference_and_onnx_stays_within_tolerance(tmp_path):
    """``--ours eager,onnx``: one diffusers reference per configuration, a row per variant; the ONNX export is
    made once into the cache; float32 ONNX Runtime stays within the fast tier's tolerance of diffusers' float32
    output (ensemble 1: no ensembling noise amplification). FLOP columns come from the meta-tensor count."""
    import pytest

    pytest.importorskip("onnxruntime")
    from marigold_toolkit.pipeline.backends import FAST_TIER_ABSREL_TOL
    from marigold_toolkit.pipeline.cost import inference_cost

    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--tasks", "depth", "--ensembles", "1",
                        "--ours", "eager,onnx", "--cache", str(tmp_path / "c")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ours float32 (eager), float32 (onnx)" in r.stdout
    assert (tmp_path / "c" / "tiny-depth-v1-1-onnx" / "manifest.json").is_file()
    rows = _rows(r.stdout)
    assert [row["ours"] for row in rows] == ["eager float32", "onnx float32"]
    assert rows[0]["diffusers s/img"] == rows[1]["diffusers s/img"]  # the same reference run
    tflop = inference_cost(tmp_path / "c" / "tiny-depth-v1-1", (48, 64), 64).total
    for row in rows:
        assert float(row["ours s/img"]) > 0
        assert float(row["TFLOP/img"]) == float(f"{tflop:.3g}")
        assert float(row["ours GFLOP/s"]) == pytest.approx(tflop * 1e3 / float(row["ours s/img"]), rel=0.05, abs=0.1)
    assert float(rows[0]["max abs diff"]) <= 1e-4
    assert float(rows[1]["deviation"].rstrip("%")) / 100 <= FAST_TIER_ABSREL_TOL


def test_bad_variant_is_a_usage_error(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--ours", "onnx:bfloat16"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "float32 only" in r.stderr


def test_large_input_benchmark_quick(tmp_path):
    """``bench_large_input.py --quick``: tiled ours and diffusers (same tiles) and untiled ours, side by side."""
    script = SCRIPT.parent / "bench_large_input.py"
    r = subprocess.run([sys.executable, str(script), "--quick", "--untiled", "--cache", str(tmp_path / "c"),
                        "--cost-model", str(tmp_path / "c" / "tiny-depth-v1-1")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Input 800x600 at native processing resolution" in r.stdout
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("| ") and not ln.startswith("| model")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    assert [(c[1], c[2]) for c in cells] == [("ours", "128 px"), ("diffusers", "128 px"), ("ours", "no"),
                                             ("estimate (not run)", "VAE sample_size")]
    assert float(cells[0][7]) <= 1e-4  # tiled ours = tiled diffusers (same tiles, same seed)
    assert float(cells[0][3]) > 0 and float(cells[0][4]) > 0
