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
    # rendered sets in the folder layout: geometry maps (no albedo pass) for training, image-only renders, the
    # in-distribution test split and the held-out generator's split
    data = work / "data"
    assert len(list((data / "train" / "camera").glob("*.json"))) == 8
    assert not (data / "train" / "albedo").exists() and (data / "train" / "normals").is_dir()
    assert sorted(p.name for p in (data / "images").iterdir()) == ["camera", "rgb"]
    assert len(list((data / "test" / "depth").glob("*.npy"))) == 3
    held = [json.loads(f.read_text()) for f in sorted((data / "heldout" / "camera").glob("*.json"))]
    assert len(held) == 3 and {h["family"] for h in held} <= {"corridor", "street", "desk"}
    assert np.load(data / "heldout" / "depth" / "000000.npy").shape == (96, 128)
    assert np.load(data / "train-portrait" / "depth" / "000000.npy").shape == (80, 48)
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
    # the model card: both sets, the models and every trivial baseline, per family, and the verdict
    card = (work / "model_card.md").read_text()
    assert "### Second held-out set" in card and "### In-distribution test set" in card and "### Verdict" in card
    for row in ("demo-depth", "demo-depth, 1 member", "demo-normals", "demo-normals, 1 member",
                "baseline: constant depth", "baseline: vertical gradient", "baseline: inverse gradient",
                "baseline: facing camera", "ceiling: autoencoder round trip"):
        lines = [ln for ln in card.splitlines() if ln.startswith(f"| {row} |")]
        assert len(lines) == (4 if row.startswith("ceiling") else 2)  # held-out and in-distribution tables
        assert all(np.isfinite(float(v)) for ln in lines for v in ln.strip(" |").split("|")[1:])
    families = {h["family"] for h in held}
    assert all(f"abs_rel ({f})" in card for f in families)
    report = json.loads((work / "eval" / "heldout" / "baselines" / "constant_depth.json").read_text())
    assert report["num_images"] == 3
    # the models are scored at ensemble 10 (the paper's protocol) and with one member
    for n in (10, 1):
        run = work / "eval" / "heldout" / f"demo-depth-ens{n}"
        assert (run / "MODEL").read_text().endswith(f" ensemble={n}")
        assert (run / "pred" / "000000_depth_uncertainty.npy").is_file() == (n > 1)
    # the autoencoder ceiling: ground truth -> codec -> the model's own VAE -> back, here redone with diffusers
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(work / "bundle" / "normals" / "vae").eval()
    gt = torch.from_numpy(np.load(data / "heldout" / "normals" / "000000.npy")).permute(2, 0, 1)[None].float()
    x = F.normalize(F.interpolate(gt, size=(120, 160), mode="bilinear", align_corners=False), dim=1)
    with torch.no_grad():
        rt = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    rt = F.normalize(F.interpolate(F.normalize(rt, dim=1), size=(96, 128), mode="bilinear", align_corners=False),
                     dim=1)[0].permute(1, 2, 0).numpy()
    ceiling = np.load(work / "eval" / "heldout" / "roundtrip-normals" / "pred" / "000000_normals.npy")
    np.testing.assert_allclose(ceiling, rt, atol=1e-3)  # float32 roundoff of the latent scaling, per machine

    # the preview: the example photos through both bundled models, one row each (photo | depth | normals)
    from PIL import Image

    photos = sorted((REPO / "examples").glob("*.jpg"))
    assert sorted(p.name for p in (work / "preview").glob("*_preview.png")) == [
        f"{p.stem}_preview.png" for p in photos]
    sheet = np.asarray(Image.open(work / "demo-preview.jpg"))
    assert sheet.shape[0] == 160 * len(photos) and sheet.shape[1] >= 3 * 160
    first = np.asarray(Image.open(work / "preview" / f"{photos[0].stem}_preview.png"))
    assert sheet.shape[1] >= round(first.shape[1] * 160 / first.shape[0]) - 1

    # a verdict before bundling: the depth run's float32 checkpoint, depth rows only, a card of its own
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "demo.py"), "evaluate", "--smoke", "--from-runs",
                           "--tasks", "depth", "--skip-ablation", "--work-dir", str(work)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_card = (work / "model_card_depth.md").read_text()
    assert "demo-normals" not in run_card and "facing camera" not in run_card
    assert "* demo-depth vs baseline: vertical gradient:" in run_card
    ckpt = work / "depth" / "checkpoints" / (work / "depth" / "checkpoints" / "latest").read_text().strip()
    assert (work / "eval" / "heldout" / "run-depth-ens10" / "MODEL").read_text() == hashlib.sha256(
        (ckpt / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest() + " ensemble=10"
    bundled_row = next(ln for ln in card.splitlines() if ln.startswith("| demo-depth |"))
    run_row = next(ln for ln in run_card.splitlines() if ln.startswith("| demo-depth |"))
    np.testing.assert_allclose([float(v) for v in run_row.strip(" |").split("|")[1:]],
                               [float(v) for v in bundled_row.strip(" |").split("|")[1:]], atol=0.02)
    # bundling one task replaces that model folder whole and leaves the other one byte for byte (and untouched)
    bundle = work / "bundle"
    normals_before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (bundle / "normals").rglob("*") if p.is_file()}
    stray = bundle / "depth" / "unet" / "stray.txt"
    stray.write_text("left over from an older bundle")
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "demo.py"), "bundle", "--smoke", "--tasks", "depth",
                           "--work-dir", str(work)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not stray.exists() and (bundle / "depth" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (bundle / "normals").rglob("*")
            if p.is_file()} == normals_before
    sums = json.loads((bundle / "CHECKSUMS.json").read_text())
    assert any(k.startswith("normals/") for k in sums) and "depth/unet/stray.txt" not in sums
    for rel, digest in sums.items():
        assert hashlib.sha256((bundle / rel).read_bytes()).hexdigest() == digest
    bad = subprocess.run([sys.executable, str(REPO / "recipes" / "demo.py"), "bundle", "--smoke", "--tasks", "iid",
                          "--work-dir", str(work)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--tasks: give some of depth, normals" in bad.stderr


def _recipe():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_recipe", REPO / "recipes" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(abs_rel, delta1, by_family):
    return {"abs_rel": abs_rel, "delta1": delta1,
            "by_family": {f: {"abs_rel": a, "delta1": d} for f, (a, d) in by_family.items()}}


def test_ablation_table_mean_and_sample_spread():
    recipe = _recipe()
    runs = [("depth", "pretrained", 0, _report(0.10, 0.90, {"desk": (0.1, 0.9)})),
            ("depth", "pretrained", 1, _report(0.20, 0.80, {"desk": (0.3, 0.7)})),
            ("depth", "random", 0, _report(0.30, 0.70, {"desk": (0.3, 0.7)})),
            ("depth", "random", 1, _report(0.30, 0.60, {"desk": (0.3, 0.6)}))]
    table = recipe.ablation_table(runs)
    pre = next(ln for ln in table.splitlines() if ln.startswith("| pretrained base |"))
    # mean 0.15, sample std |0.1 - 0.2| / sqrt(2) = 0.0707; desk mean 0.2, std 0.1414
    assert pre == "| pretrained base | 2 | 0.150 ± 0.071 | 0.850 ± 0.071 | 0.200 ± 0.141 | 0.100, 0.200 |"
    rnd = next(ln for ln in table.splitlines() if ln.startswith("| random UNet |"))
    assert rnd == "| random UNet | 2 | 0.300 ± 0.000 | 0.650 ± 0.071 | 0.300 ± 0.000 | 0.300, 0.300 |"


def test_transfer_verdict_names_every_lost_family_and_metric():
    recipe = _recipe()
    model = _report(0.2, 0.7, {"desk": (0.1, 0.9), "street": (0.3, 0.5)})
    worse = _report(0.5, 0.4, {"desk": (0.2, 0.8), "street": (0.6, 0.3)})
    mixed = _report(0.3, 0.6, {"desk": (0.05, 0.95), "street": (0.6, 0.5)})   # wins desk; ties delta1 on street
    normals = {"mean_angular_error": 20.0, "within_11.25": 0.3, "by_family": {"desk": {"mean_angular_error": 20.0,
                                                                                      "within_11.25": 0.3}}}
    facing = {"mean_angular_error": 40.0, "within_11.25": 0.1, "by_family": {"desk": {"mean_angular_error": 40.0,
                                                                                     "within_11.25": 0.1}}}
    rows = [("depth", "demo-depth", model), ("depth", "baseline: worse", worse), ("depth", "baseline: mixed", mixed),
            ("normals", "demo-normals", normals), ("normals", "baseline: facing camera", facing)]
    verdict = recipe.transfer_verdict(rows)
    assert verdict == [
        "demo-depth vs baseline: worse: better on every family (both metrics)",
        "demo-depth vs baseline: mixed: NOT better: abs_rel on desk, delta1 on desk, delta1 on street",
        "demo-normals vs baseline: facing camera: better on every family (both metrics)",
    ]


def test_transfer_verdict_of_one_task():
    recipe = _recipe()
    rows = [("depth", "demo-depth", _report(0.2, 0.7, {"desk": (0.1, 0.9)})),
            ("depth", "baseline: worse", _report(0.5, 0.4, {"desk": (0.2, 0.8)}))]
    assert recipe.transfer_verdict(rows) == ["demo-depth vs baseline: worse: better on every family (both metrics)"]


def test_baselines_have_the_documented_shapes():
    recipe = _recipe()
    v = recipe.BASELINES["vertical gradient"][1](5, 3)
    np.testing.assert_allclose(v[:, 0], [1.0, 0.75, 0.5, 0.25, 0.0])      # far at the top
    inv = recipe.BASELINES["inverse gradient"][1](3, 2)
    np.testing.assert_allclose(1.0 / inv[:, 1], [0.05, 0.525, 1.0])       # disparity linear, 1 at the bottom
    assert recipe.BASELINES["facing camera"][1](2, 2).tolist() == [[[0, 0, 1]] * 2] * 2
