"""The custom-folder scoring contract, end to end through the CLI, against independently computed values."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ..cli._helpers import run_cli

DEPTH_KEYS = ["abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3"]
NORMALS_KEYS = ["mean_angular_error", "median_angular_error", "within_5", "within_7.5", "within_11.25",
                "within_22.5", "within_30"]


def _reference_depth(pred, gt, mask, lo, hi):
    """Independent implementation: LS fit in depth space, clip, metrics over valid pixels."""
    a = np.stack([pred[mask], np.ones(mask.sum())], axis=1).astype(np.float64)
    s, t = np.linalg.lstsq(a, gt[mask].astype(np.float64), rcond=None)[0]
    p = np.clip(pred * s + t, lo, hi)
    p = np.clip(p, 1e-6, None)[mask].astype(np.float64)
    g = gt[mask].astype(np.float64)
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": np.mean(np.abs(p - g) / g), "sq_rel": np.mean((p - g) ** 2 / g),
        "rmse": np.sqrt(np.mean((p - g) ** 2)), "rmse_log": np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2)),
        "log10": np.mean(np.abs(np.log10(p) - np.log10(g))),
        "delta1": np.mean(ratio < 1.25), "delta2": np.mean(ratio < 1.25 ** 2), "delta3": np.mean(ratio < 1.25 ** 3),
    }


def _run(args, capsys):
    code, out, err = run_cli(capsys, *args)
    return code, SimpleNamespace(out=out, err=err)


@pytest.fixture
def depth_folders(tmp_path):
    rng = np.random.default_rng(0)
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    refs = {}
    for i in range(3):
        gt = rng.uniform(0.5, 8.0, (12, 16)).astype(np.float32)
        gt[0, :3] = 0.0  # invalid: zero
        gt[1, 0] = np.nan  # invalid: NaN
        pred = ((gt - 0.3) / 9.0 + rng.normal(0, 0.02, gt.shape)).astype(np.float32)
        pred = np.nan_to_num(pred, nan=0.5)
        np.save(gt_dir / f"img{i}.npy", gt)
        np.save(pred_dir / f"img{i}_depth.npy", pred)
        refs[f"img{i}"] = (pred, gt)
    return pred_dir, gt_dir, refs


def test_depth_folder_contract(depth_folders, tmp_path, capsys):
    pred_dir, gt_dir, refs = depth_folders
    # extra stems on both sides are reported by name
    np.save(gt_dir / "only_gt.npy", np.ones((4, 4), np.float32))
    np.save(pred_dir / "only_pred_depth.npy", np.ones((4, 4), np.float32))
    # an image with no valid pixel is excluded and counted, never a NaN
    np.save(gt_dir / "empty.npy", np.zeros((4, 4), np.float32))
    np.save(pred_dir / "empty_depth.npy", np.ones((4, 4), np.float32))
    out = tmp_path / "report.json"
    code, cap = _run(["evaluate", "--task", "depth", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                      "--alignment", "least_squares", "--min-depth", "0.001", "--max-depth", "10",
                      "--output", str(out)], capsys)
    assert code == 0, cap.err
    report = json.loads(out.read_text())
    assert report["num_images"] == 3
    assert report["missing_predictions"] == ["only_gt"] and report["missing_ground_truth"] == ["only_pred"]
    assert report["num_excluded_no_valid_pixels"] == 1 and report["excluded_no_valid_pixels"] == ["empty"]
    assert "only_gt" in cap.err and "only_pred" in cap.err
    per_image = []
    for pred, gt in refs.values():
        mask = np.isfinite(gt) & (gt > 0.001) & (gt < 10)
        per_image.append(_reference_depth(pred, np.nan_to_num(gt), mask, 0.001, 10.0))
    for k in DEPTH_KEYS:
        assert report[k] == pytest.approx(np.mean([r[k] for r in per_image]), rel=1e-4, abs=1e-6), k
    assert report["settings"]["alignment"] == "least_squares"
    assert not any(isinstance(v, float) and np.isnan(v) for v in report.values())
    assert out.with_name("report_per_image.csv").is_file()


def test_depth_exact_affine_prediction_scores_perfectly(tmp_path, capsys):
    pred_dir, gt_dir = tmp_path / "p", tmp_path / "g"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gt = np.linspace(1, 5, 48, dtype=np.float32).reshape(6, 8)
    np.save(gt_dir / "a.npy", gt)
    np.save(pred_dir / "a_depth.npy", (gt - 1) / 4)
    out = tmp_path / "r.json"
    code, cap = _run(["evaluate", "--task", "depth", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                      "--output", str(out)], capsys)
    assert code == 0, cap.err
    r = json.loads(out.read_text())
    assert r["abs_rel"] == pytest.approx(0, abs=1e-5) and r["delta1"] == 1.0 and r["rmse"] == pytest.approx(0, abs=1e-4)


def test_depth_prediction_at_other_resolution_is_resized(tmp_path, capsys):
    pred_dir, gt_dir = tmp_path / "p", tmp_path / "g"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gt = np.full((8, 12), 2.0, np.float32)
    gt[:, 6:] = 4.0
    np.save(gt_dir / "a.npy", gt)
    np.save(pred_dir / "a_depth.npy", np.where(np.arange(6) < 3, 0.0, 1.0)[None].repeat(4, 0).astype(np.float32))
    out = tmp_path / "r.json"
    code, cap = _run(["evaluate", "--task", "depth", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                      "--alignment", "none", "--output", str(out)], capsys)
    assert code == 0, cap.err
    assert json.loads(out.read_text())["num_images"] == 1


def test_disparity_alignment_on_folder(tmp_path, capsys):
    pred_dir, gt_dir = tmp_path / "p", tmp_path / "g"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gt = np.linspace(1, 5, 48, dtype=np.float32).reshape(6, 8)
    np.save(gt_dir / "a.npy", gt)
    np.save(pred_dir / "a_depth.npy", (0.5 / gt + 0.1).astype(np.float32))  # affine in disparity
    out = tmp_path / "r.json"
    code, cap = _run(["evaluate", "--task", "depth", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                      "--alignment", "least_squares_disparity", "--output", str(out)], capsys)
    assert code == 0, cap.err
    assert json.loads(out.read_text())["abs_rel"] == pytest.approx(0, abs=1e-5)


def test_disparity_files_are_scored_as_disparity_by_default(tmp_path, capsys):
    """``<stem>_disparity.npy`` predictions (a disparity model's files) are read as disparity and aligned in
    disparity space unless --alignment says otherwise."""
    pred_dir, gt_dir = tmp_path / "p", tmp_path / "g"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gt = np.linspace(1, 5, 48, dtype=np.float32).reshape(6, 8)
    np.save(gt_dir / "a.npy", gt)
    np.save(pred_dir / "a_disparity.npy", (0.5 / gt + 0.1).astype(np.float32))
    out = tmp_path / "r.json"
    base = ["evaluate", "--task", "depth", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir)]
    code, cap = _run(base + ["--output", str(out)], capsys)
    assert code == 0, cap.err
    report = json.loads(out.read_text())
    assert report["num_images"] == 1 and report["abs_rel"] == pytest.approx(0, abs=1e-5)
    assert report["settings"]["alignment"] == "least_squares_disparity"
    code, cap = _run(base + ["--alignment", "least_squares", "--output", str(out)], capsys)
    assert code == 0 and json.loads(out.read_text())["abs_rel"] > 0.05


def _angles_deg(p, g):
    pn = p / np.linalg.norm(p, axis=-1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip((pn * gn).sum(-1), -1, 1)))


def test_normals_folder_contract(tmp_path, capsys):
    pred_dir, gt_dir = tmp_path / "p", tmp_path / "g"
    pred_dir.mkdir()
    gt_dir.mkdir()
    rng = np.random.default_rng(1)
    per = []
    for i in range(2):
        gt = rng.normal(size=(6, 7, 3)).astype(np.float32)
        gt /= np.linalg.norm(gt, axis=-1, keepdims=True)
        gt[0, 0] = 0  # invalid zero vector
        pred = gt + rng.normal(0, 0.3, gt.shape).astype(np.float32)
        pred /= np.linalg.norm(pred, axis=-1, keepdims=True)
        np.save(gt_dir / f"n{i}.npy", gt)
        np.save(pred_dir / f"n{i}_normals.npy", pred)
        valid = np.linalg.norm(gt, axis=-1) > 0
        err = _angles_deg(pred[valid], gt[valid])
        per.append({"mean_angular_error": err.mean(), "median_angular_error": np.median(err),
                    **{f"within_{t}": float(np.mean(err < float(t))) for t in ("5", "7.5", "11.25", "22.5", "30")}})
    out = tmp_path / "n.json"
    code, cap = _run(["evaluate", "--task", "normals", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                      "--output", str(out)], capsys)
    assert code == 0, cap.err
    r = json.loads(out.read_text())
    assert r["num_images"] == 2
    for k in NORMALS_KEYS:
        assert r[k] == pytest.approx(np.mean([p[k] for p in per]), rel=1e-3, abs=1e-3), k


def test_intrinsics_folder_contract(tmp_path, capsys):
    pred_dir, gt_dir = tmp_path / "p", tmp_path / "g"
    pred_dir.mkdir()
    rng = np.random.default_rng(2)
    psnrs = []
    for t in ("albedo", "material"):
        (gt_dir / t).mkdir(parents=True)
        gt = rng.uniform(0, 1, (16, 16, 3)).astype(np.float32)
        pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1).astype(np.float32)
        np.save(gt_dir / t / "x.npy", gt)
        np.save(pred_dir / f"x_{t}.npy", pred)
        psnrs.append(10 * np.log10(1.0 / np.mean((pred.astype(np.float64) - gt) ** 2)))
    out = tmp_path / "i.json"
    from marigold_toolkit.core import metrics

    metrics._LPIPS_NOTICE.clear()
    code, cap = _run(["evaluate", "--task", "intrinsics", "--predictions", str(pred_dir), "--ground-truth",
                      str(gt_dir), "--output", str(out)], capsys)
    assert code == 0, cap.err
    r = json.loads(out.read_text())
    assert r["num_images"] == 1
    assert r["albedo"]["psnr"] == pytest.approx(psnrs[0], rel=1e-4)
    assert r["material"]["psnr"] == pytest.approx(psnrs[1], rel=1e-4)
    assert 0 < r["albedo"]["ssim"] < 1
    if not metrics.lpips_available():  # no weights on this machine: skipped with one clear line, not an error
        assert cap.err.count("LPIPS skipped") == 1 and "lpips" not in r["albedo"]


def test_folder_usage_errors(tmp_path, capsys):
    code, cap = _run(["evaluate", "--task", "depth", "--predictions", str(tmp_path / "nope"), "--ground-truth",
                      str(tmp_path), "--output", str(tmp_path / "r.json")], capsys)
    assert code == 2 and "not a folder" in cap.err
    code, cap = _run(["evaluate", "--task", "depth", "--predictions", str(tmp_path)], capsys)
    assert code == 2 and "--ground-truth" in cap.err
    code, cap = _run(["evaluate", "--task", "depth", "--predictions", str(tmp_path), "--ground-truth", str(tmp_path),
                      "--alignment", "median", "--output", str(tmp_path / "r.json")], capsys)
    assert code == 2


def test_corrupt_file_is_reported_and_others_scored(depth_folders, tmp_path, capsys):
    pred_dir, gt_dir, _ = depth_folders
    (pred_dir / "img1_depth.npy").write_bytes(b"not numpy")
    out = tmp_path / "r.json"
    code, cap = _run(["evaluate", "--task", "depth", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                      "--output", str(out)], capsys)
    assert code == 1
    r = json.loads(out.read_text())
    assert r["num_images"] == 2 and list(r["failed"]) == ["img1"]
    assert "img1" in cap.err and "Traceback" not in cap.err


def test_plots_written(depth_folders, tmp_path, capsys):
    pred_dir, gt_dir, _ = depth_folders
    out = tmp_path / "rep" / "r.json"
    code, cap = _run(["evaluate", "--task", "depth", "--predictions", str(pred_dir), "--ground-truth", str(gt_dir),
                      "--output", str(out), "--plots"], capsys)
    assert code == 0, cap.err
    hist = Path(json.loads(out.read_text())["plots"][0])
    assert hist.is_file() and hist.name == "histogram_abs_rel.png"
    from PIL import Image

    assert Image.open(hist).size[0] > 100
