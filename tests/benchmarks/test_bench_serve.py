"""The serving benchmark runs end to end in --quick mode (correctness of the table, no timing asserts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow  # starts server processes

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_serve.py"


def test_quick_serving_benchmark_prints_both_configurations():
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("Machine: ")
    header = next(line for line in r.stdout.splitlines() if line.startswith("| model |"))
    names = [c.strip() for c in header.strip("|").split("|")]
    rows = [dict(zip(names, (c.strip() for c in line.strip("|").split("|"))))
            for line in r.stdout.splitlines() if line.startswith("| tiny random depth |")]
    assert [row["max batch"] for row in rows] == ["1", "2"]
    for row in rows:
        assert row["ok"] == "8" and row["errors"] == "0"  # 2 clients x 4 requests, all answered
        assert float(row["req/s"]) > 0 and float(row["p50 ms"]) <= float(row["p99 ms"])
    assert float(rows[0]["mean batch"]) == 1.0
    assert 1.0 <= float(rows[1]["mean batch"]) <= 2.0
