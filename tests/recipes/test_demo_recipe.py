"""The demo-model recipe (recipes/demo.py) end to end on a smoke budget: every stage runs the real commands."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # end-to-end: subprocesses / whole recipes (`-m "not slow"` leaves it out)

pytest.importorskip("mitsuba")

REPO = Path(__file__).resolve().parents[2]


def test_recipe_smoke_end_to_end(tmp_path):
    work = tmp_path / "demo"
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "demo.py"), "all", "--smoke", "--skip-ablation",
                           "--work-dir", str(work), "--workers", "1"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rendered train/test sets in the folder layout
    assert len(list((work / "data" / "train" / "camera").glob("*.json"))) == 8
    assert len(list((work / "data" / "test" / "depth").glob("*.npy"))) == 3
    # the base is an SD2-layout text-to-image checkpoint; fine-tuning produced Marigold checkpoints
    assert json.loads((work / "base" / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    for task, cls in (("depth", "MarigoldDepthPipeline"), ("normals", "MarigoldNormalsPipeline")):
        bundled = work / "bundle" / task
        index = json.loads((bundled / "model_index.json").read_text())
        assert index["_class_name"] == cls and index["default_processing_resolution"] == 160
        from safetensors.torch import load_file

        weights = load_file(bundled / "unet" / "diffusion_pytorch_model.safetensors")
        assert all(v.dtype.itemsize == 2 for v in weights.values() if v.is_floating_point())
        assert next(iter(weights.values())).dtype.is_floating_point
        assert weights["conv_in.weight"].shape[1] == 8  # conv_in expanded to image + target latents
    # CHECKSUMS.json covers every bundled file and matches it
    sums = json.loads((work / "bundle" / "CHECKSUMS.json").read_text())
    files = sorted(p for p in (work / "bundle").rglob("*") if p.is_file() and p.name != "CHECKSUMS.json")
    assert sorted(sums) == sorted(p.relative_to(work / "bundle").as_posix() for p in files)
    for rel, digest in sums.items():
        assert hashlib.sha256((work / "bundle" / rel).read_bytes()).hexdigest() == digest
    # the model card table: the models and every trivial baseline, with finite numbers
    card = (work / "model_card.md").read_text()
    for row in ("demo-depth", "demo-normals", "baseline: constant depth", "baseline: vertical gradient",
                "baseline: facing camera"):
        line = next(ln for ln in card.splitlines() if ln.startswith(f"| {row} |"))
        assert all(np.isfinite(float(v)) for v in line.strip(" |").split("|")[1:])
    report = json.loads((work / "eval" / "baselines" / "constant_depth.json").read_text())
    assert report["num_images"] == 3
