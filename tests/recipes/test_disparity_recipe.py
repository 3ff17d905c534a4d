"""The depth-vs-disparity recipe (recipes/disparity.py) on one small render, without the fine-tuning: the
references score exactly in their own space, and a rerun reuses every stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # renders with Mitsuba and runs the demo model in subprocesses

pytest.importorskip("mitsuba")

REPO = Path(__file__).resolve().parents[2]


def test_disparity_recipe_scores_both_spaces_and_resumes(tmp_path):
    cmd = [sys.executable, str(REPO / "recipes" / "disparity.py"), "--work-dir", str(tmp_path), "--num", "1",
           "--resolution", "48", "64", "--spp", "2", "--steps", "1", "--no-finetune"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(r["space"], r["alignment"]) for r in rows] == [("depth", "depth"), ("depth", "disparity"),
                                                           ("disparity", "depth"), ("disparity", "disparity"),
                                                           ("depth", "depth"), ("depth", "disparity")]
    assert rows[0]["abs_rel"] == pytest.approx(0, abs=1e-5) and rows[3]["abs_rel"] == pytest.approx(0, abs=1e-5)
    assert rows[1]["abs_rel"] > 0 and rows[2]["abs_rel"] > 0 and 0 < rows[4]["abs_rel"] < 5
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "marigold predict" not in again.stdout
