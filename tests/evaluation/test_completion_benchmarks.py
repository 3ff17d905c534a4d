"""Depth-completion evaluation: the Marigold-DC sets in the authors' processed layout, the benchmark run with
completion as its inference (cached, resumed), and the folder contract ``--task depth_completion``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit import Predictor
from marigold_toolkit.evaluation.datasets import BENCHMARKS, get_benchmark
from marigold_toolkit.pipeline.completion import complete_depth

from ..cli._helpers import run_cli

H, W = 30, 40


def make_dc_set(root, n=3, points=60, seed=0):
    """``rgb/``, ``sparse/``, ``gt/``, ``intrinsics/`` as the authors' dataset_processing.py writes them."""
    rng = np.random.default_rng(seed)
    for sub in ("rgb", "sparse", "gt", "intrinsics"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"scene{i:02d}_{i * 10}"
        Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(root / "rgb" / f"{name}.png")
        gt = rng.uniform(1.0, 6.0, (H, W)).astype(np.float32)
        gt[: 3] = 0.0  # no ground truth in the top rows
        sparse = np.zeros_like(gt)
        idx = rng.choice(np.flatnonzero(gt > 0), points, replace=False)
        sparse.reshape(-1)[idx] = gt.reshape(-1)[idx]
        np.save(root / "gt" / f"{name}.npy", gt)
        np.save(root / "sparse" / f"{name}.npy", sparse)
        np.savetxt(root / "intrinsics" / f"{name}.txt", np.eye(3))
    return root


def test_loaders_read_the_authors_layout(tmp_path):
    root = make_dc_set(tmp_path / "void")
    names = [n for n, c in BENCHMARKS.items() if c.task == "depth_completion"]
    assert names == ["nyu_v2_dc", "scannet_dc", "ibims_dc", "void150", "void500", "void1500", "kitti_dc", "ddad_dc"]
    bench = get_benchmark("void150", root)
    assert len(bench) == 3 and bench.model_task == "depth" and bench.inference.ensemble_size == 10
    s = bench[0]
    assert s.stem == "scene00_0" and s.rgb.shape == (H, W, 3)
    assert s.gt["depth_metric"].shape == (H, W) and not s.valid_mask[:3].any() and s.valid_mask[3:].all()
    assert (s.meta["sparse"] > 0).sum() == 60
    assert get_benchmark("nyu_v2_dc", root).inference.processing_resolution == 768
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="rgb/, sparse/ and gt/"):
        get_benchmark("kitti_dc", tmp_path / "empty")


def test_benchmark_run_completes_scores_and_resumes(tmp_path, capsys, checkpoints):
    root = make_dc_set(tmp_path / "ibims")
    out = tmp_path / "eval"
    model = checkpoints["depth-v1-0"]
    args = ["evaluate", "--benchmark", "ibims_dc", "--data-dir", root, "--model", model, "--steps", 2,
            "--ensemble", 1, "--processing-resolution", 32, "--output-dir", out, "--plots", "--plot-images", 1]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "depth_completion" and report["num_images"] == 3 and report["num_predicted_this_run"] == 3
    bench = get_benchmark("ibims_dc", root)
    predictor = Predictor.from_pretrained(model)
    maes, rmses = [], []
    for s in bench:
        ref = complete_depth(predictor, s.rgb, s.meta["sparse"], 2, 1, 32, seed=2024).depth
        err_px = ref[s.valid_mask].astype(np.float64) - s.gt["depth_metric"][s.valid_mask]
        maes.append(np.abs(err_px).mean())
        rmses.append(np.sqrt((err_px ** 2).mean()))
    assert report["mae"] == pytest.approx(np.mean(maes), rel=1e-5)
    assert report["rmse"] == pytest.approx(np.mean(rmses), rel=1e-5)
    cache = next((out / "predictions").iterdir())
    assert sorted(p.name for p in cache.glob("*.npy"))[0] == "scene00_0_depth_metric.npy"
    assert (out / "histogram_mae.png").is_file() and len(list((out / "plots").glob("error_*.png"))) == 1
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and json.loads((out / "report.json").read_text())["num_predicted_this_run"] == 0
    code, _, err = run_cli(capsys, "evaluate", "--benchmark", "ibims_dc", "--data-dir", root, "--model",
                           checkpoints["normals-v1-1"], "--output-dir", tmp_path / "x")
    assert code == 2 and "needs a depth model" in err


def test_folder_mode_depth_completion(tmp_path, capsys):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    rng = np.random.default_rng(0)
    expected = []
    for stem in ("a", "b"):
        gt = rng.uniform(1, 5, (H, W)).astype(np.float32)
        gt[0] = 0.0  # invalid
        pred = (gt + rng.normal(0, 0.2, gt.shape)).astype(np.float32)
        np.save(gt_dir / f"{stem}.npy", gt)
        np.save(pred_dir / f"{stem}_depth_metric.npy", pred)
        e = pred[1:].astype(np.float64) - gt[1:]
        expected.append((np.abs(e).mean(), np.sqrt((e ** 2).mean())))
    report = tmp_path / "r.json"
    code, _, err = run_cli(capsys, "evaluate", "--task", "depth_completion", "--predictions", pred_dir,
                           "--ground-truth", gt_dir, "--output", report)
    assert code == 0, err
    r = json.loads(report.read_text())
    assert r["num_images"] == 2 and r["settings"]["task"] == "depth_completion"
    assert r["mae"] == pytest.approx(np.mean([e[0] for e in expected]), rel=1e-6)
    assert r["rmse"] == pytest.approx(np.mean([e[1] for e in expected]), rel=1e-6)
    with open(tmp_path / "r_per_image.csv") as f:
        assert [row["stem"] for row in csv.DictReader(f)] == ["a", "b"]
