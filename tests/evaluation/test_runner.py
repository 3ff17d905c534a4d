"""The benchmark runner end to end: a fixture benchmark in the published layout, a tiny model, caching/resume."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest

from marigold_toolkit.evaluation.datasets import get_benchmark
from marigold_toolkit.tasks.depth import align_depth, depth_metrics

from ..cli._helpers import run_cli
from .test_benchmarks import make_hypersim, make_nyu


def _run(args, capsys):
    code, out, err = run_cli(capsys, *args)
    return code, SimpleNamespace(out=out, err=err)


def test_disparity_model_is_aligned_in_disparity_space_by_default(tmp_path, checkpoints, capsys):
    data = tmp_path / "nyu"
    make_nyu(data)
    out = tmp_path / "eval"
    args = ["evaluate", "--benchmark", "nyu_v2", "--data-dir", str(data), "--model",
            str(checkpoints["depth-disparity-v1-1"]), "--processing-resolution", "32", "--ensemble", "1",
            "--output-dir", str(out)]
    code, cap = _run(args, capsys)
    assert code == 0, cap.err
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["alignment"] == "least_squares_disparity"
    cache = out / "predictions" / report["prediction_cache"].split("/")[-1]
    bench = get_benchmark("nyu_v2", data)
    per = []
    for sample in bench:
        pred = np.load(cache / f"{sample.stem}_disparity.npy")
        aligned = align_depth(pred, sample.gt, sample.valid_mask, "least_squares_disparity", 1e-3, 10.0)
        per.append(depth_metrics(aligned, sample.gt, sample.valid_mask)["abs_rel"])
    assert report["abs_rel"] == pytest.approx(np.mean(per), rel=1e-6)
    code, cap = _run(args + ["--alignment", "least_squares"], capsys)  # an explicit choice is kept
    assert code == 0 and json.loads((out / "report.json").read_text())["settings"]["alignment"] == "least_squares"


def test_nyu_benchmark_run_cache_and_resume(tmp_path, checkpoints, capsys):
    data = tmp_path / "nyu"
    make_nyu(data)
    out = tmp_path / "eval"
    args = ["evaluate", "--benchmark", "nyu_v2", "--data-dir", str(data), "--model", str(checkpoints["depth-v1-1"]),
            "--processing-resolution", "64", "--ensemble", "1", "--output-dir", str(out), "--plots",
            "--plot-images", "1"]
    code, cap = _run(args, capsys)
    assert code == 0, cap.err
    report = json.loads((out / "report.json").read_text())
    assert report["benchmark"] == "nyu_v2" and report["num_images"] == 2
    assert report["num_predicted_this_run"] == 2
    s = report["settings"]
    assert (s["processing_resolution"], s["ensemble_size"], s["seed"], s["alignment"]) == (64, 1, 1234,
                                                                                             "least_squares")
    assert (s["min_depth"], s["max_depth"]) == (1e-3, 10.0)
    for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "i_rmse",
              "silog_rmse"):
        assert isinstance(report[k], float) and np.isfinite(report[k])

    # the report is the per-image protocol applied to the cached predictions
    cache = out / "predictions" / report["prediction_cache"].split("/")[-1]
    bench = get_benchmark("nyu_v2", data)
    per = []
    for sample in bench:
        pred = np.load(cache / f"{sample.stem}_depth.npy")
        assert pred.shape == (480, 640) and pred.dtype == np.float32
        aligned = align_depth(pred, sample.gt, sample.valid_mask, "least_squares", 1e-3, 10.0)
        per.append(depth_metrics(aligned, sample.gt, sample.valid_mask))
    for k in ("abs_rel", "delta1", "rmse"):
        assert report[k] == pytest.approx(np.mean([p[k] for p in per]), rel=1e-6)
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [r["stem"] for r in rows] == [smp.stem for smp in bench]
    md = (out / "report.md").read_text()
    assert "| **ours** |" in md and "5.5" in md and "96.4" in md and "CVPR 2024" in md
    assert (out / "histogram_abs_rel.png").is_file() and len(list((out / "plots").glob("error_*.png"))) == 1
    chosen = [smp.stem for smp in bench][1]
    code, cap = _run(args + ["--plot-stems", chosen], capsys)
    assert code == 0 and (out / "plots" / f"error_{chosen}.png").is_file()

    # re-scoring is free: nothing is predicted again, identical numbers
    code, cap = _run(args, capsys)
    again = json.loads((out / "report.json").read_text())
    assert code == 0 and again["num_predicted_this_run"] == 0 and again["abs_rel"] == report["abs_rel"]
    # an interrupted run resumes: only the missing prediction is computed
    next(cache.glob("*_depth.npy")).unlink()
    code, cap = _run(args, capsys)
    again = json.loads((out / "report.json").read_text())
    assert again["num_predicted_this_run"] == 1 and again["abs_rel"] == pytest.approx(report["abs_rel"], abs=1e-6)
    # other settings -> another cache entry
    code, cap = _run(args[:-3] + ["--steps", "2"], capsys)
    assert code == 0, cap.err
    other = json.loads((out / "report.json").read_text())
    assert other["num_predicted_this_run"] == 2 and other["prediction_cache"] != report["prediction_cache"]
    assert len(list((out / "predictions").iterdir())) == 2


def test_intrinsics_benchmark_run(tmp_path, checkpoints, capsys):
    data = tmp_path / "hypersim"
    make_hypersim(data)
    out = tmp_path / "eval"
    code, cap = _run(["evaluate", "--benchmark", "hypersim_iid", "--data-dir", str(data), "--model",
                      str(checkpoints["iid-lighting-v1-1"]), "--steps", "1", "--output-dir", str(out)], capsys)
    assert code == 0, cap.err
    report = json.loads((out / "report.json").read_text())
    assert report["num_images"] >= 1
    for t in ("albedo", "shading", "residual"):
        assert set(report[t]) >= {"psnr", "ssim"} and np.isfinite(report[t]["psnr"])


def test_benchmark_usage_errors(tmp_path, checkpoints, capsys):
    make_nyu(tmp_path / "nyu")
    code, cap = _run(["evaluate", "--benchmark", "nope", "--data-dir", str(tmp_path), "--model", "x"], capsys)
    assert code == 2 and "nyu_v2" in cap.err
    code, cap = _run(["evaluate", "--benchmark", "nyu_v2", "--data-dir", str(tmp_path / "missing"),
                      "--model", str(checkpoints["depth-v1-1"])], capsys)
    assert code == 2
    code, cap = _run(["evaluate", "--benchmark", "nyu_v2", "--data-dir", str(tmp_path / "nyu"),
                      "--model", str(checkpoints["normals-v1-1"])], capsys)
    assert code == 2 and "depth" in cap.err
    code, cap = _run(["benchmarks"], capsys)
    assert code == 0 and "kitti_eigen" in cap.out and "652" in cap.out
