"""``benchmarks/bench_ensemble_decode.py``: cheaper ways to finish an ensemble, side by side, on a tiny model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.testing import build_random_tiny_decoder

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_ensemble_decode.py"


@pytest.mark.slow
def test_rows_and_the_continuous_method(depth_ckpt, tmp_path):
    Image.fromarray((np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    decoder = build_random_tiny_decoder(tmp_path / "dec")
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", str(depth_ckpt), "--images", str(tmp_path / "a.png"),
                        "--ensemble", "3", "--steps", "1", "--processing-resolution", "32", "--decoder", str(decoder),
                        "--fast", "--method", "least-squares", "--threads", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ensembling least-squares; 1 images" in r.stdout
    rows = {c[0]: c for c in ([x.strip() for x in ln.strip("|").split("|")] for ln in r.stdout.splitlines()
                              if ln.startswith("| ") and not ln.startswith("| finish"))}
    assert list(rows) == ["members", "members+1e-6", "tiny", "latent-mean", "half-res", "fast"]
    assert rows["members"][3] == "0 / 0"
    floor = float(rows["members+1e-6"][3].split(" / ")[0])
    assert floor < 1e-4  # least squares is continuous: a 1e-6 change stays a ~1e-6 change
    assert float(rows["latent-mean"][3].split(" / ")[0]) > 100 * floor  # another computation, visibly
    assert all(float(c[1]) > 0 for c in rows.values())
