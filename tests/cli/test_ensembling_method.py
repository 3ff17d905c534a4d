"""``--ensembling-method`` (depth: ``bfgs`` | ``least-squares``) on predict and evaluate, and the fast tier's default
of least squares for depth ensembles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marigold_toolkit.evaluation.runner import InferenceSettings
from marigold_toolkit.pipeline.fast import FastPlan
from marigold_toolkit.pipeline.predictor import Predictor
from marigold_toolkit.tasks import TaskError, get_task

from ..evaluation.test_benchmarks import make_nyu
from ._helpers import predict_args, run_cli, save_image


def test_task_ensembling_options_check_the_task():
    depth, normals = get_task("depth")(), get_task("normals")()
    assert depth.ensembling_options() is None
    assert depth.ensembling_options("mean", "least-squares") == {"reduction": "mean", "method": "least-squares"}
    assert depth.ensembling_methods[0] == "bfgs"  # the authors' and diffusers' algorithm stays the default
    with pytest.raises(TaskError, match=r"depth: ensembling method must be one of \('bfgs', 'least-squares'\)"):
        depth.ensembling_options(method="lsq")
    with pytest.raises(TaskError, match="normals: ensembling has no method to choose"):
        normals.ensembling_options(method="least-squares")
    with pytest.raises(TaskError, match="normals: reduction must be one of"):
        normals.ensembling_options(reduction="median")


def test_predict_flag_equals_the_api_and_changes_the_ensemble(checkpoints, tmp_path, capsys):
    ckpt = checkpoints["depth-v1-1"]
    img = save_image(tmp_path / "in" / "a.png", 40, 52, seed=3)
    runs = {"default": (), "bfgs": ("--ensembling-method", "bfgs"), "lsq": ("--ensembling-method", "least-squares")}
    for name, extra in runs.items():
        rc, _, err = run_cli(capsys, *predict_args(img, ckpt, tmp_path / name, ensemble=3, res=0, extra=extra))
        assert rc == 0, err
    default, bfgs, lsq = (np.load(tmp_path / n / "a_depth.npy") for n in runs)
    np.testing.assert_array_equal(bfgs, default)
    api = Predictor.from_pretrained(ckpt, device="cpu").predict(
        img, ensemble_size=3, num_inference_steps=1, processing_resolution=0, seed=0,
        ensembling_kwargs={"method": "least-squares"})
    np.testing.assert_array_equal(lsq, api.targets["depth"])
    assert np.abs(lsq - bfgs).max() > 1e-4  # another alignment of the same members


@pytest.mark.parametrize("layout, extra, message", [
    ("depth-v1-1", ("--ensembling-method", "lsq"), "--ensembling-method: depth: ensembling method must be one of"),
    ("normals-v1-1", ("--ensembling-method", "least-squares"), "--ensembling-method: normals: ensembling has no"),
    ("normals-v1-1", ("--reduction", "median"), "--reduction: normals: reduction must be one of"),
])
def test_predict_bad_ensembling_is_one_line(checkpoints, tmp_path, capsys, layout, extra, message):
    img = save_image(tmp_path / "a.png", 16, 16, seed=0)
    rc, _, err = run_cli(capsys, *predict_args(img, checkpoints[layout], tmp_path / "out", ensemble=2, extra=extra))
    assert rc == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "out" / "a_depth.npy").exists()


def test_fast_tier_ensembles_depth_by_least_squares_unless_told(checkpoints, tmp_path):
    ckpt = checkpoints["depth-v1-1"]
    plain = Predictor.from_pretrained(ckpt, device="cpu")
    fast = Predictor.from_pretrained(ckpt, device="cpu", fast=True)
    assert isinstance(fast.fast_plan, FastPlan) and plain.fast_plan is None
    assert fast.resolve_ensembling(None, 3) == {"method": "least-squares"}
    assert fast.resolve_ensembling(None, 1) == {}  # one member: nothing to align
    assert fast.resolve_ensembling({"method": "bfgs"}, 3) == {"method": "bfgs"}  # an explicit choice wins
    assert plain.resolve_ensembling(None, 3) == {}
    normals = Predictor.from_pretrained(checkpoints["normals-v1-1"], device="cpu", fast=True)
    assert normals.resolve_ensembling(None, 3) == {}  # normals has one way to ensemble
    img = save_image(tmp_path / "a.png", 24, 32, seed=5)
    kw = dict(ensemble_size=3, num_inference_steps=1, processing_resolution=0, seed=0)
    ours = fast.predict(img, **kw).targets["depth"]
    np.testing.assert_array_equal(ours, fast.predict(img, ensembling_kwargs={"method": "least-squares"},
                                                     **kw).targets["depth"])
    assert np.abs(ours - fast.predict(img, ensembling_kwargs={"method": "bfgs"}, **kw).targets["depth"]).max() > 1e-4


def test_evaluation_settings_keep_old_cache_keys():
    base = dict(num_inference_steps=1, ensemble_size=3, processing_resolution=64, seed=1)
    assert set(InferenceSettings(**base).as_dict()) == {"num_inference_steps", "ensemble_size",
                                                        "processing_resolution", "seed", "batch_size",
                                                        "resample_method"}
    lsq = InferenceSettings(**base, ensembling_method="least-squares", reduction="mean")
    assert lsq.as_dict()["ensembling_method"] == "least-squares" and lsq.as_dict()["reduction"] == "mean"
    assert lsq.ensembling_kwargs == {"reduction": "mean", "method": "least-squares"}
    assert InferenceSettings(**base).ensembling_kwargs is None


def test_evaluate_flag_reaches_the_predictions_and_the_report(tmp_path, checkpoints, capsys):
    data = tmp_path / "nyu"
    make_nyu(data)
    args = ["evaluate", "--benchmark", "nyu_v2", "--data-dir", str(data), "--model", str(checkpoints["depth-v1-1"]),
            "--processing-resolution", "32", "--ensemble", "2", "--steps", "1"]
    reports = {}
    for name, extra in (("bfgs", ()), ("lsq", ("--ensembling-method", "least-squares"))):
        rc, _, err = run_cli(capsys, *args, "--output-dir", tmp_path / name, *extra)
        assert rc == 0, err
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
    assert "ensembling_method" not in reports["bfgs"]["settings"]
    assert reports["lsq"]["settings"]["ensembling_method"] == "least-squares"
    assert reports["lsq"]["prediction_cache"].split("/")[-1] != reports["bfgs"]["prediction_cache"].split("/")[-1]
    preds = {name: np.load(next((tmp_path / name / "predictions").rglob("*_depth.npy"))) for name in reports}
    assert np.abs(preds["lsq"] - preds["bfgs"]).max() > 1e-4
    rc, _, err = run_cli(capsys, *args, "--output-dir", tmp_path / "bad", "--ensembling-method", "lsq")
    assert rc == 2 and "--ensembling-method: depth: ensembling method must be one of" in err
    assert err.count("\n") == 1


def test_predict_ensembles_without_autograd(checkpoints, tmp_path, monkeypatch):
    """``predict`` (not the helper beside it) runs under ``torch.no_grad``: no graph is kept for the members."""
    import torch

    predictor = Predictor.from_pretrained(checkpoints["depth-v1-1"], device="cpu")
    seen, ensemble = [], predictor.task.ensemble
    monkeypatch.setattr(predictor.task, "ensemble",
                        lambda *a, **k: (seen.append(torch.is_grad_enabled()), ensemble(*a, **k))[1])
    predictor.predict(save_image(tmp_path / "a.png", 40, 52, seed=0), ensemble_size=2, num_inference_steps=1,
                      processing_resolution=0, seed=0)
    assert seen == [False]
