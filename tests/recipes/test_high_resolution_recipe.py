"""The high-resolution recipe (recipes/high_resolution.py) end to end on one small render; a rerun resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # renders with Mitsuba and runs the demo model in a subprocess

pytest.importorskip("mitsuba")

REPO = Path(__file__).resolve().parents[2]


def test_high_resolution_recipe_scores_every_method_and_resumes(tmp_path):
    cmd = [sys.executable, str(REPO / "recipes" / "high_resolution.py"), "--work-dir", str(tmp_path), "--num", "1",
           "--resolution", "192", "256", "--spp", "2", "--steps", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rows] == ["global", "native", "hr (overlap 0.5)", "hr (overlap 0.25)"]
    for r in rows:
        assert 0 < r["abs_rel"] < 1 and 0 <= r["boundary_f1"] <= 1
    assert rows[0]["tiles"] == 0 and rows[2]["tiles"] > rows[3]["tiles"] > 1
    assert "| hr (overlap 0.5) |" in proc.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and len((tmp_path / "results.jsonl").read_text().splitlines()) == 4
