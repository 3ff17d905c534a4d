"""``marigold predict`` with a disparity model and ``--output-space``: the file names, the refusal to convert an
affine-invariant prediction without measurements, and exact conversions after the metric fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marigold_toolkit import Predictor
from marigold_toolkit.io.images import load_image

from ._helpers import predict_args, run_cli, save_image

H, W = 30, 40
DISP = "depth-disparity-v1-1"


@pytest.fixture
def photo(tmp_path):
    return save_image(tmp_path / "in" / "room.png", H, W, seed=3)


def _sparse(values: np.ndarray, every: int = 3) -> np.ndarray:
    sparse = np.zeros_like(values)
    sparse[::every, ::every] = values[::every, ::every]
    return sparse


def test_disparity_model_writes_disparity_files(photo, tmp_path, capsys, checkpoints):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints[DISP], out, res=32, ensemble=2))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "room_disparity.npy", "room_disparity.png", "room_disparity_colored.png", "room_disparity_uncertainty.npy",
        "room_disparity_uncertainty.png"]
    ref = Predictor.from_pretrained(checkpoints[DISP]).predict(load_image(photo), num_inference_steps=1,
                                                               ensemble_size=2, processing_resolution=32, seed=0)
    np.testing.assert_array_equal(np.load(out / "room_disparity.npy"), ref.targets["disparity"])
    # --output-space disparity is the model's own: nothing else is written, a rerun resumes (skips)
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints[DISP], out, res=32, ensemble=2,
                                                 extra=["--output-space", "disparity"]))
    assert code == 0 and len(list(out.iterdir())) == 5


@pytest.mark.parametrize("layout,space", [(DISP, "depth"), ("depth-v1-1", "disparity")])
def test_affine_prediction_is_not_converted_without_measurements(photo, tmp_path, capsys, checkpoints, layout,
                                                                 space):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints[layout], out, res=32,
                                                 extra=["--output-space", space]))
    own = "disparity" if space == "depth" else "depth"
    assert code == 2
    assert err.strip().splitlines() == [(
        f"error: model '{checkpoints[layout]}': --output-space {space}: the model predicts affine-invariant {own} "
        f"(unknown shift), so 1/{own} is not a {space}; add --sparse-depth to fit metric depth first, or use "
        f"--output-space {own}")]
    assert not out.exists() or not list(out.iterdir())


def test_output_space_needs_a_depth_model(photo, tmp_path, capsys, checkpoints):
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints["normals-v1-1"], tmp_path / "o", res=32,
                                                 extra=["--output-space", "disparity"]))
    assert code == 2 and "--output-space: none of the models" in err


def test_disparity_model_to_metric_depth_and_depth(photo, tmp_path, capsys, checkpoints):
    """The sparse points are an exact affine map of the model's own disparity: the default fit (disparity space)
    recovers them, <stem>_depth_metric.npy is the metric depth and <stem>_depth.npy its normalisation."""
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints[DISP], tmp_path / "plain", res=32))
    assert code == 0, err
    q = np.load(tmp_path / "plain" / "room_disparity.npy").astype(np.float64)
    true_depth = 1.0 / (0.8 * q + 0.2)  # metres
    np.save(tmp_path / "sparse.npy", _sparse(true_depth).astype(np.float32))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints[DISP], out, res=32, extra=[
        "--sparse-depth", tmp_path / "sparse.npy", "--output-space", "depth"]))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "room_depth.npy", "room_depth.png", "room_depth_colored.png", "room_depth_metric.json",
        "room_depth_metric.npy", "room_disparity.npy", "room_disparity.png", "room_disparity_colored.png"]
    np.testing.assert_array_equal(np.load(out / "room_disparity.npy"), q.astype(np.float32))
    fit = json.loads((out / "room_depth_metric.json").read_text())["fit"]
    assert fit["space"] == "disparity" and fit["scale"] == pytest.approx(0.8, rel=1e-4)
    np.testing.assert_allclose(np.load(out / "room_depth_metric.npy"), true_depth, rtol=1e-4)
    expected = (true_depth - true_depth.min()) / (true_depth.max() - true_depth.min())
    np.testing.assert_allclose(np.load(out / "room_depth.npy"), expected, atol=1e-4)


def test_depth_model_to_disparity_after_the_metric_fit(photo, tmp_path, capsys, checkpoints):
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints["depth-v1-1"], tmp_path / "plain", res=32))
    assert code == 0, err
    d = np.load(tmp_path / "plain" / "room_depth.npy").astype(np.float64)
    true_depth = 4.0 * d + 0.5
    np.save(tmp_path / "sparse.npy", _sparse(true_depth).astype(np.float32))
    out = tmp_path / "out"
    args = predict_args(photo, checkpoints["depth-v1-1"], out, res=32, extra=[
        "--sparse-depth", tmp_path / "sparse.npy", "--output-space", "disparity"])
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"room_depth.npy", "room_depth.png", "room_depth_colored.png", "room_depth_metric.npy",
            "room_disparity.npy", "room_disparity.png", "room_disparity_colored.png"} <= names
    inv = 1.0 / true_depth
    np.testing.assert_allclose(np.load(out / "room_disparity.npy"), (inv - inv.min()) / (inv.max() - inv.min()),
                               atol=1e-4)
    # written next to the inputs: a rerun does not read the converted images back as inputs
    for _ in range(2):
        code, _, err = run_cli(capsys, *predict_args(photo.parent, checkpoints["depth-v1-1"], photo.parent, res=32,
                                                     extra=["--sparse-depth", tmp_path / "sparse.npy",
                                                            "--output-space", "disparity", "--overwrite"]))
        assert code == 0, err
    assert not [p.name for p in photo.parent.iterdir() if p.name.startswith("room_disparity_")
                and p.name != "room_disparity_colored.png"]
    # a folder of measurements without this stem: that input fails alone, with a one-line reason
    (tmp_path / "points").mkdir()
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints["depth-v1-1"], tmp_path / "o2", res=32, extra=[
        "--sparse-depth", tmp_path / "points", "--output-space", "disparity"]))
    assert code == 1 and "no sparse depth for 'room'" in err and "Traceback" not in err
