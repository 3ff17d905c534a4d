"""``benchmarks/bench_precision.py``: where a half-precision tier's deviation comes from, on a tiny model."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_precision.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_precision", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_views_and_the_aligned_deviation():
    mod = _module()
    x = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    v = mod.views(x, 4)
    assert [a.shape for a in v] == [(10, 20, 3), (10, 20, 3), (10, 14, 3), (7, 20, 3)]
    assert np.array_equal(v[1], x[:, ::-1]) and np.array_equal(v[3], x[3:])
    ref = np.linspace(0.1, 1.0, 50).reshape(5, 10)
    assert mod.aligned_absrel(0.5 * ref + 0.2, ref) < 1e-6  # an affine change is removed (a float32 fit)
    assert mod.as_batch(ref).shape == (1, 1, 5, 10) and mod.as_batch(np.zeros((5, 10, 3))).shape == (1, 3, 5, 10)


def test_rows_print_per_variant(depth_ckpt, tmp_path):
    Image.fromarray((np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", str(depth_ckpt), "--images", str(tmp_path / "a.png"),
                        "--ensembles", "1,2", "--views", "2", "--steps", "1", "--processing-resolution", "32",
                        "--variants", "autocast,cast,autocast:decoder", "--threads", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 photos x 2 views = 2 samples" in r.stdout and "ensembles merged by least-squares" in r.stdout
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in r.stdout.splitlines()
            if ln.startswith("| ") and not ln.startswith("| ensemble")]
    variants = ("autocast", "cast", "autocast:decoder")
    assert [(c[0], c[1]) for c in rows] == [(e, v) for e in ("1", "2") for v in variants]
    for c in rows:
        mean, worst = float(c[2].rstrip(" %")), float(c[5].rstrip(" %"))
        assert 0 < mean <= worst < 5, c  # a real, small deviation from float32
        assert c[6].endswith("/ 2")
    bad = subprocess.run([sys.executable, str(SCRIPT), "--variants", "autocast,fp8"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown variant 'fp8'" in bad.stderr
