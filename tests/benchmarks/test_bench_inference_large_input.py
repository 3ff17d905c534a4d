"""bench_large_input.py runs end to end in --quick mode (moved here from test_bench_inference.py unchanged; it
builds bench_inference.py's tiny random checkpoint)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end-to-end: subprocesses

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_large_input.py"


def test_large_input_benchmark_quick(tmp_path):
    """``bench_large_input.py --quick``: tiled ours and diffusers (same tiles) and untiled ours, side by side."""
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--untiled", "--cache", str(tmp_path / "c"),
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
