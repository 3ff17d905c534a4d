"""A new task defined in this one file — a single-channel "luminance" target — runs through predict (API and CLI,
with its file writers), train (one step, from a random SD2-layout base, in both training modes), and evaluate
(folder mode) without any other module knowing it: the proof that everything task-specific lives in the Task."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from marigold_toolkit import Predictor
from marigold_toolkit.checkpoints import read_spec
from marigold_toolkit.cli.main import main
from marigold_toolkit.core.checks import check_shape
from marigold_toolkit.core.image import resize_prediction
from marigold_toolkit.core.metrics import EmptyMaskError
from marigold_toolkit.tasks import Task, registry
from marigold_toolkit.tasks.base import as_target_dict
from marigold_toolkit.testing import build_random_sd2_base, build_random_task_checkpoint

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class LuminanceTask(Task):
    """Grey-level luminance in [0, 1] (Rec. 601 weights of the input), one target, one channel."""

    name = "luminance"
    pipeline_classes = ("MarigoldLuminancePipeline",)
    prediction_types = ("luminance",)
    channels = 1
    metric_keys = ("mae", "rmse")
    validation_metric = "mae"

    def decode(self, image: torch.Tensor) -> torch.Tensor:
        return (image.mean(dim=1, keepdim=True).clip(-1.0, 1.0) + 1.0) / 2.0

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        check_shape(target, "B 1 H W", "luminance target")
        return (target.clip(0.0, 1.0) * 2.0 - 1.0).repeat(1, 3, 1, 1)

    def score(self, preds, gt, mask=None):
        g = np.asarray(as_target_dict(gt, self.target_names)["luminance"], dtype=np.float32)
        p = resize_prediction(preds["luminance"], g.shape[:2])
        m = np.isfinite(g) if mask is None else (mask & np.isfinite(g))
        if not m.any():
            raise EmptyMaskError("no valid pixel")
        err = (p - g)[m].astype(np.float64)
        return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean()))}, None


@pytest.fixture
def luminance(monkeypatch):
    """The toy task registered for one test only (the registry is restored afterwards)."""
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    registry.register_task(LuminanceTask)
    return LuminanceTask


def _image(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.random((4, 4, 3))
    img = Image.fromarray((base * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    return np.asarray(img)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) / 255.0 @ LUMA).astype(np.float32)


def _cli(*args) -> int:
    try:
        return int(main([str(a) for a in args]))
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code)


def test_registry_and_checkpoint_layout_know_the_new_task(luminance, tmp_path):
    ckpt = build_random_task_checkpoint(tmp_path / "ckpt", LuminanceTask(), seed=1)
    index = json.loads((ckpt / "model_index.json").read_text())
    assert index["_class_name"] == "MarigoldLuminancePipeline" and index["prediction_type"] == "luminance"
    spec = read_spec(ckpt)
    assert isinstance(spec.task, LuminanceTask) and spec.target_names == ["luminance"]
    assert registry.task_for_model_index({"_class_name": "MarigoldLuminancePipeline"}) is LuminanceTask
    assert registry.task_for_folders(["luminance"]) == (LuminanceTask, ["luminance"])
    with pytest.raises(registry.TaskError, match="already registered"):
        registry.register_task(type("Other", (LuminanceTask,), {}))


def test_predict_api_cli_and_file_writers(luminance, tmp_path):
    ckpt = build_random_task_checkpoint(tmp_path / "ckpt", LuminanceTask(), seed=1)
    rgb = _image(0)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    predictor = Predictor.from_pretrained(ckpt, device="cpu")
    assert predictor.task.name == "luminance"
    out = predictor.predict(rgb, num_inference_steps=1, ensemble_size=3, processing_resolution=32, seed=0)
    pred, unc = out.targets["luminance"], out.uncertainty["luminance"]
    assert out.task == "luminance" and pred.shape == (24, 32) and pred.dtype == np.float32
    assert unc.shape == (24, 32) and 0.0 <= pred.min() and pred.max() <= 1.0 and (unc >= 0).all()

    out_dir = tmp_path / "out"
    code = _cli("predict", tmp_path / "photo.png", "--model", ckpt, "--output-dir", out_dir, "--task", "luminance",
                "--steps", 1, "--ensemble", 3, "--processing-resolution", 32, "--seed", 0, "--device", "cpu",
                "--preview")
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        ["photo_luminance.npy", "photo_luminance.png", "photo_luminance_uncertainty.npy",
         "photo_luminance_uncertainty.png", "photo_preview.png"])
    np.testing.assert_allclose(np.load(out_dir / "photo_luminance.npy"), pred, atol=1e-6)
    np.testing.assert_allclose(np.load(out_dir / "photo_luminance_uncertainty.npy"), unc, atol=1e-6)
    png = np.asarray(Image.open(out_dir / "photo_luminance.png"))
    expected = (np.clip(np.load(out_dir / "photo_luminance.npy"), 0, 1) * 255).astype(np.uint8)
    assert png.shape == (24, 32, 3) and (png == expected[..., None]).all()  # the default grey visualisation
    assert np.asarray(Image.open(out_dir / "photo_preview.png")).shape == (24, 64, 3)  # photo | luminance
    # rerun: every output exists, nothing is recomputed
    before = {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()}
    assert _cli("predict", tmp_path / "photo.png", "--model", ckpt, "--output-dir", out_dir, "--steps", 1,
                "--ensemble", 3, "--processing-resolution", 32, "--preview") == 0
    assert {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()} == before
    assert _cli("predict", tmp_path / "photo.png", "--model", ckpt, "--output-dir", out_dir, "--task",
                "depth") == 2  # the safety check still names the checkpoint's task


def _dataset(root: Path, n: int, seed: int) -> Path:
    (root / "rgb").mkdir(parents=True)
    (root / "luminance").mkdir()
    for i in range(n):
        rgb = _image(seed * 100 + i, 32, 32)
        Image.fromarray(rgb).save(root / "rgb" / f"s{i}.png")
        np.save(root / "luminance" / f"s{i}.npy", _luminance(rgb))
    return root


@pytest.mark.parametrize("mode", ["diffusion", "e2e"])
def test_train_one_step_saves_a_checkpoint_of_the_new_task(luminance, tmp_path, mode):
    base = build_random_sd2_base(tmp_path / "base", seed=2)
    train, val = _dataset(tmp_path / "train", 4, 0), _dataset(tmp_path / "val", 2, 1)
    run = tmp_path / "run"
    (tmp_path / "c.yaml").write_text(f"""
task: luminance
targets: [luminance]
output_dir: {run}
model: {{base: {base}}}
pipeline: {{default_denoising_steps: 1, default_processing_resolution: 0}}
diffusion: {{mode: {mode}}}
optim: {{lr: 1.0e-4, micro_batch_size: 2, effective_batch_size: 2, max_iter: 1,
         lr_scheduler: {{total_iter: 1, final_ratio: 1.0, warmup_steps: 0}}}}
data:
  num_workers: 0
  train: [{{name: folder, root: {train}, prob: 1.0}}]
  val: [{{name: folder, root: {val}}}]
validation: {{period: 1, num_inference_steps: 1, processing_resolution: 0, max_samples: 2}}
checkpoint: {{period: 1, keep_last: 1, backup_period: 0}}
logging: {{period: 1, tensorboard: false}}
""")
    assert _cli("-q", "train", tmp_path / "c.yaml") == 0
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r["val/folder/mae"] for r in logged if "val/folder/mae" in r]
    assert len(val) == 1 and 0.0 <= val[0] <= 1.0
    assert any(np.isfinite(r.get("train/loss", np.nan)) for r in logged)
    ckpt = run / "checkpoints" / "step-000001"
    spec = read_spec(ckpt)
    assert isinstance(spec.task, LuminanceTask) and spec.default_processing_resolution == 0
    out = Predictor.from_pretrained(ckpt, device="cpu").predict(_image(7, 32, 32), seed=0)
    assert out.targets["luminance"].shape == (32, 32)


def test_evaluate_folder_mode_scores_with_the_task(luminance, tmp_path):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    rng = np.random.default_rng(0)
    expected = []
    for stem in ("a", "b", "c"):
        gt = rng.random((6, 8)).astype(np.float32)
        pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1).astype(np.float32)
        np.save(gt_dir / f"{stem}.npy", gt)
        np.save(pred_dir / f"{stem}_luminance.npy", pred)
        err = pred.astype(np.float64) - gt
        expected.append((np.abs(err).mean(), np.sqrt((err ** 2).mean())))
    np.save(pred_dir / "orphan_luminance.npy", np.zeros((6, 8), np.float32))
    report = tmp_path / "r.json"
    code = _cli("evaluate", "--task", "luminance", "--predictions", pred_dir, "--ground-truth", gt_dir,
                "--output", report, "--plots")
    assert code == 0
    r = json.loads(report.read_text())
    assert r["num_images"] == 3 and r["missing_ground_truth"] == ["orphan"]
    assert r["mae"] == pytest.approx(np.mean([e[0] for e in expected]), rel=1e-6)
    assert r["rmse"] == pytest.approx(np.mean([e[1] for e in expected]), rel=1e-6)
    assert r["settings"] == {"task": "luminance", "predictions": str(pred_dir), "ground_truth": str(gt_dir)}
    with open(tmp_path / "r_per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["stem"] for row in rows] == ["a", "b", "c"]
    assert (tmp_path / "histogram_mae.png").is_file()
