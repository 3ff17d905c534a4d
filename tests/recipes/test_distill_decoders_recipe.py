"""recipes/distill_decoders.py on a smoke budget: render, distil one decoder per demo model, table, bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end-to-end: subprocesses / whole recipes

pytest.importorskip("mitsuba")

REPO = Path(__file__).resolve().parents[2]


def test_recipe_smoke(tmp_path):
    work = tmp_path / "decoders"
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "distill_decoders.py"), "all", "--smoke",
                           "--work-dir", str(work)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for task, key in (("depth", "absrel"), ("normals", "angular_deg")):
        report = json.loads((work / task / "w4" / "distill_report.json").read_text())
        assert report["teacher"] == f"demo-{task}" and report["deviation_key"] == key
        assert report["data"]["sources"] == ["prediction", "target"] and report["training"]["steps"] == 4
        bundled = work / "bundle" / task / "tiny_decoder"
        assert json.loads((bundled / "distill_report.json").read_text()) == report
    table = (work / "table.md").read_text()
    assert table.startswith("Machine: ") and table.count("| demo-") == 2
    # one model only (after rebundling one demo model, only its decoder needs distilling again)
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "distill_decoders.py"), "table", "--smoke",
                           "--tasks", "normals", "--work-dir", str(work)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [ln for ln in (work / "table.md").read_text().splitlines() if ln.startswith("| demo-")]
    assert len(rows) == 1 and rows[0].startswith("| demo-normals |")
    bad = subprocess.run([sys.executable, str(REPO / "recipes" / "distill_decoders.py"), "table", "--tasks", "iid",
                          "--work-dir", str(work)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--tasks: give some of depth, normals" in bad.stderr
