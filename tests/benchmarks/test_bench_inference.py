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
    rows = [line for line in r.stdout.splitlines() if line.startswith("| depth |")]
    assert len(rows) == 2  # ensemble 1 and 3 at 64 px, 1 step
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        ours, ref, diff = float(cells[5]), float(cells[6]), float(cells[11])
        assert ours > 0 and ref > 0 and re.fullmatch(r"\d+\.\d+x", cells[7])
        assert diff <= 1e-4  # batch size 1: same numbers as diffusers
    assert out.read_text() == r.stdout
