"""Depth and disparity prediction spaces: the task carries the space (model_index.json round trip, targets, files),
conversions computed by hand, training targets, scoring in the model's own space, and the metric fit / 3D export
reading a disparity as disparity on analytic geometry."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from marigold_toolkit.tasks import DepthTask, TaskError, task_for_model_index
from marigold_toolkit.tasks.base import ImageContext
from marigold_toolkit.tasks.depth import colorize_depth, normalize_depth
from marigold_toolkit.tasks.depth.geometry import unproject
from marigold_toolkit.tasks.depth.spaces import (
    convert_prediction,
    invert,
    normalize_unit,
    other_space,
    relative_depth_from,
    to_depth_order,
)
from marigold_toolkit.tasks.depth.task import depth_to_disparity

from .test_depth_geometry import K, parse_ply, plane_depth

DISP = DepthTask(prediction_space="disparity")


# -------------------------------------------------------------------------------------------------- the task
def test_the_space_is_read_written_and_names_the_target():
    task = DepthTask.from_model_index({"prediction_type": "disparity", "scale_invariant": True,
                                       "shift_invariant": True})
    assert task.prediction_space == "disparity" and task.target_names == ["disparity"] and task.predicts_disparity
    assert task.model_index_fields() == {"prediction_type": "disparity", "scale_invariant": True,
                                         "shift_invariant": True}
    assert DepthTask.from_model_index({}).prediction_space == "depth"  # legacy / E2E-FT layouts
    assert task_for_model_index({"prediction_type": "disparity"}) is DepthTask
    with pytest.raises(TaskError, match="prediction_type 'normals' is not a depth prediction space"):
        DepthTask.from_model_index({"prediction_type": "normals"})
    with pytest.raises(TaskError, match=r"a disparity model's target is \[disparity\]"):
        DepthTask(["depth"], prediction_space="disparity")
    assert task.output_files("a", True) == ["a_disparity.npy", "a_disparity.png", "a_disparity_colored.png",
                                            "a_disparity_uncertainty.npy", "a_disparity_uncertainty.png"]
    assert DepthTask().output_files("a", False) == ["a_depth.npy", "a_depth.png", "a_depth_colored.png"]


def test_training_config_chooses_the_space():
    assert DepthTask.from_config(["depth"], {"prediction_type": "disparity"}).prediction_space == "disparity"
    assert DepthTask.from_config(["disparity"], {}).prediction_space == "disparity"
    assert DepthTask.from_config(["depth"], {"prediction_type": None}).prediction_space == "depth"
    with pytest.raises(TaskError, match="targets \\[disparity\\] but pipeline.prediction_type 'depth'"):
        DepthTask.from_config(["disparity"], {"prediction_type": "depth"})
    with pytest.raises(TaskError, match="'inverse' is not one of depth, disparity"):
        DepthTask.from_config(["depth"], {"prediction_type": "inverse"})
    with pytest.raises(TaskError, match="targets must be"):
        DepthTask.from_config(["normals"], {})


def test_disparity_training_targets_are_the_normalised_inverse_depth():
    depth = torch.tensor([[[[1.0, 2.0, 4.0, 0.0]]]])  # last pixel invalid
    valid = depth > 0
    got = DISP.training_targets({"depth": depth}, valid, torch.device("cpu"))
    assert list(got) == ["disparity"]
    # by hand: disparity 1, 0.5, 0.25 -> with quantile 0.02 over 3 values, lo/hi near 0.255 / 0.99
    inv = depth_to_disparity(depth)
    np.testing.assert_array_equal(got["disparity"], normalize_depth(inv, valid))
    d = got["disparity"][0, 0, 0].tolist()
    assert d[0] == pytest.approx(1.0) and d[2] == pytest.approx(-1.0) and d[0] > d[1] > d[2]  # near = +1
    assert depth_to_disparity(torch.tensor([2.0, 0.0, float("inf")])).tolist() == [0.5, 0.0, 0.0]
    plain = DepthTask().training_targets({"depth": depth}, valid, torch.device("cpu"))
    np.testing.assert_array_equal(plain["depth"], normalize_depth(depth, valid))


def test_e2e_loss_of_a_disparity_model_is_zero_on_an_affine_disparity():
    depth = torch.linspace(1.0, 5.0, 24).reshape(1, 1, 4, 6)
    disparity = 0.3 / depth + 0.2
    batch = {"depth": depth, "valid_mask": torch.ones_like(depth, dtype=torch.bool)}
    decoded = disparity[:, None]  # [B, T, C, H, W]
    assert DISP.e2e_loss(decoded, batch, torch.device("cpu")).item() == pytest.approx(0.0, abs=1e-6)
    assert DepthTask().e2e_loss(decoded, batch, torch.device("cpu")).item() > 0.01


def test_scoring_defaults_to_the_models_own_space():
    gt = np.linspace(1.0, 6.0, 48, dtype=np.float32).reshape(6, 8)
    disparity = (0.5 / gt + 0.1).astype(np.float32)
    mask = np.ones(gt.shape, bool)
    own, _ = DISP.score({"disparity": disparity}, gt, mask, alignment=DISP.own_alignment)
    assert own["abs_rel"] == pytest.approx(0.0, abs=1e-5)
    as_depth, _ = DISP.score({"disparity": disparity}, {"disparity": gt}, mask, alignment="least_squares")
    assert as_depth["abs_rel"] > 0.05  # an affine fit in depth space cannot undo 1/x
    assert DISP.evaluation_alignment("least_squares") == "least_squares_disparity"
    assert DISP.evaluation_alignment("none") == "none"
    assert DepthTask().evaluation_alignment("least_squares") == "least_squares"
    assert DISP.folder_protocol(["disparity"], {})["alignment"] == "least_squares_disparity"
    assert DepthTask().folder_protocol(["depth"], {})["alignment"] == "least_squares"
    assert DISP.folder_protocol(["disparity"], {"alignment": "none"})["alignment"] == "none"


def test_disparity_images_keep_near_red():
    q = np.array([[0.0, 0.25, 1.0]], np.float32)
    images = DISP.target_images("disparity", q)
    np.testing.assert_array_equal(images[".png"], [[0, 16383, 65535]])
    np.testing.assert_array_equal(images["_colored.png"], colorize_depth(1.0 - q))
    np.testing.assert_array_equal(DepthTask().target_images("depth", q)["_colored.png"], colorize_depth(q))


# ----------------------------------------------------------------------------------------------- conversions
def test_conversions_by_hand():
    assert other_space("depth") == "disparity" and other_space("disparity") == "depth"
    assert invert(np.array([0.5, 4.0, 0.0, -2.0])).tolist() == [2.0, 0.25, np.inf, np.inf]
    assert normalize_unit(np.array([2.0, 4.0, np.inf, 3.0, np.nan])).tolist() == [0.0, 1.0, 1.0, 0.5, 0.0]
    assert to_depth_order(np.array([0.0, 1.0]), "disparity").tolist() == [1.0, 0.0]
    # metric depth 1, 2, 4 m fitted as 3 p + 1 -> disparity 1, 0.5, 0.25 -> [1, 1/3, 0]
    pred = np.array([[0.0, 1 / 3, 1.0]])
    np.testing.assert_allclose(convert_prediction(pred, "disparity", "depth", 3.0, 1.0), [[1.0, 1 / 3, 0.0]],
                               atol=1e-6)
    # a disparity fit 1/D = 0.5 q + 0.25 (D = 4, 2, 4/3 m for q = 0, 1/2, 1) -> depth [1, 0.25, 0]
    q = np.array([[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(convert_prediction(q, "depth", "disparity", 0.5, 0.25), [[1.0, 0.25, 0.0]],
                               atol=1e-6)
    # fitted depth <= 0 (in front of the camera) -> the nearest disparity; fitted disparity <= 0 -> the farthest depth
    assert convert_prediction(np.array([[-1.0, 0.0, 1.0]]), "disparity", "depth", 1.0, 0.5)[0, 0] == 1.0
    assert convert_prediction(np.array([[0.0, 0.5, 1.0]]), "depth", "disparity", 1.0, -0.2)[0, 0] == 1.0
    # same space: an affine re-normalisation of the prediction itself
    np.testing.assert_allclose(convert_prediction(pred, "depth", "depth", 3.0, 1.0), pred, atol=1e-6)
    # relative depth of a disparity: nearest (q = 1) at 1, farthest (q = 0) at 10, 1/z affine in q
    z = relative_depth_from(np.array([1.0, 0.5, 0.0]), "disparity", 10.0)
    np.testing.assert_allclose(z, [1.0, 1 / 0.55, 10.0], rtol=1e-6)
    np.testing.assert_allclose(relative_depth_from(np.array([0.0, 1.0]), "depth", 10.0), [1.0, 10.0])


def _sparse(depth: np.ndarray, every: int = 3) -> np.ndarray:
    sparse = np.zeros_like(depth)
    sparse[::every, ::every] = depth[::every, ::every]
    return sparse


def test_disparity_prediction_is_fitted_in_disparity_space_and_exported_exactly(tmp_path):
    """A disparity model's prediction of a tilted plane (an affine map of 1 / D): the default metric fit runs in
    disparity space and recovers the plane in metres; the point cloud is the plane's unprojection; the
    prediction converted to depth is the normalised true depth."""
    depth = plane_depth(K, (0.3, -0.2, 1.0), 2.5)  # 1.5 .. 5.5 m
    inv = 1.0 / depth
    q = ((inv - inv.min()) / (inv.max() - inv.min()) * 0.9 + 0.05).astype(np.float32)  # affine disparity
    np.save(tmp_path / "plane.npy", _sparse(depth).astype(np.float32))
    options = {"sparse_depth": tmp_path / "plane.npy", "export": ("ply", "exr"), "intrinsics": None,
               "fov_x": None, "fit_space": None, "fit_method": "irls", "output_space": "depth"}
    pytest.importorskip("OpenEXR")
    image = np.full((*depth.shape, 3), 128, np.uint8)
    cam = tmp_path / "cam.json"
    cam.write_text(f'{{"fx": {K.fx}, "fy": {K.fy}, "cx": {K.cx}, "cy": {K.cy}, "width": {K.width}, '
                   f'"height": {K.height}}}')
    options["intrinsics"] = cam
    assert DISP.extra_files("plane", options) == [
        "plane_depth_metric.npy", "plane_depth_metric.json", "plane_depth.npy", "plane_depth.png",
        "plane_depth_colored.png", "plane_points.ply", "plane_depth.exr"]
    written = DISP.write_extras(tmp_path, "plane", SimpleNamespace(targets={"disparity": q}), options,
                                ImageContext(image))
    assert sorted(p.name for p in written) == sorted(DISP.extra_files("plane", options))
    metric = np.load(tmp_path / "plane_depth_metric.npy")
    np.testing.assert_allclose(metric, depth, rtol=1e-4)
    table, comments = parse_ply((tmp_path / "plane_points.ply").read_bytes())
    pts = np.stack([table["x"], table["y"], table["z"]], axis=1)
    np.testing.assert_allclose(pts, unproject(depth, K).reshape(-1, 3), rtol=1e-4)
    assert "units: metres (scale and shift fitted to sparse measurements)" in comments
    converted = np.load(tmp_path / "plane_depth.npy")
    np.testing.assert_allclose(converted, (depth - depth.min()) / (depth.max() - depth.min()), atol=1e-4)
    import json

    record = json.loads((tmp_path / "plane_depth_metric.json").read_text())
    assert record["fit"]["space"] == "disparity" and record["prediction_space"] == "disparity"


def test_disparity_export_without_measurements_is_relative_and_reads_disparity(tmp_path):
    depth = plane_depth(K, (0.0, 0.0, 1.0), 3.0)
    q = np.linspace(0.0, 1.0, depth.size, dtype=np.float32).reshape(depth.shape)  # far (0) .. near (1)
    options = {"export": ("ply",), "intrinsics": None, "fov_x": 60.0, "sparse_depth": None}
    DISP.write_extras(tmp_path, "s", SimpleNamespace(targets={"disparity": q}), options,
                      ImageContext(np.zeros((*q.shape, 3), np.uint8)))
    table, comments = parse_ply((tmp_path / "s_points.ply").read_bytes())
    z = table["z"]
    assert len(z) == int((q > 0.01).sum())  # the sky is the far end: disparity <= 1 - FAR_CLIP left out
    np.testing.assert_allclose(z, relative_depth_from(q[q > 0.01], "disparity", 10.0), rtol=1e-6)
    assert z.min() == pytest.approx(1.0) and any("affine-invariant disparity" in c for c in comments)


def test_output_space_of_an_affine_prediction_needs_measurements():
    assert "add --sparse-depth" in DepthTask().extra_options_problem({"output_space": "disparity"})
    assert DISP.extra_options_problem({"output_space": "depth"}).startswith(
        "--output-space depth: the model predicts affine-invariant disparity (unknown shift), so 1/disparity is not")
    assert DepthTask().extra_options_problem({"output_space": "depth"}) is None
    assert DepthTask().extra_options_problem({"output_space": "disparity", "sparse_depth": "x.npy"}) is None
    # a model without an unknown shift converts exactly: 1 / p, normalised
    scale_only = DepthTask(shift_invariant=False)
    assert scale_only.extra_options_problem({"output_space": "disparity"}) is None


def test_scale_only_depth_converts_without_measurements(tmp_path):
    task = DepthTask(shift_invariant=False)
    d = np.array([[0.25, 0.5, 1.0]], np.float32)  # depth up to scale
    written = task.write_extras(tmp_path, "a", SimpleNamespace(targets={"depth": d}), {"output_space": "disparity"},
                                ImageContext(np.zeros((1, 3, 3), np.uint8)))
    assert [p.name for p in written] == ["a_disparity.npy", "a_disparity.png", "a_disparity_colored.png"]
    np.testing.assert_allclose(np.load(tmp_path / "a_disparity.npy"), [[1.0, 1 / 3, 0.0]], atol=1e-6)  # 4, 2, 1
