"""``marigold predict --export ply,glb,exr --sparse-depth``: the file contract, metric fits against the written
depth, normals from a second model in the point cloud, resume, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marigold_toolkit.tasks.depth.geometry import FAR_CLIP, relative_depth, unproject
from marigold_toolkit.tasks.depth.metric import fit_metric
from marigold_toolkit.io.camera import read_intrinsics

from ..tasks.test_depth_geometry import parse_ply
from ._helpers import predict_args, run_cli, save_image

H, W = 30, 40


def _sparse_from(depth: np.ndarray, scale: float, shift: float, every: int = 3) -> np.ndarray:
    sparse = np.zeros_like(depth)
    sparse[::every, ::every] = scale * depth[::every, ::every] + shift
    return sparse


@pytest.fixture
def photo(tmp_path):
    return save_image(tmp_path / "in" / "room.png", H, W, seed=3)


def test_exports_and_metric_depth(photo, tmp_path, capsys, checkpoints):
    pytest.importorskip("trimesh")
    pytest.importorskip("OpenEXR")
    out = tmp_path / "out"
    # a first plain run gives the depth the metric fit will see (same seed -> same prediction)
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints["depth-v1-1"], tmp_path / "plain", res=32))
    assert code == 0, err
    depth = np.load(tmp_path / "plain" / "room_depth.npy")
    np.save(tmp_path / "sparse.npy", _sparse_from(depth, 4.0, 0.5))
    cam = tmp_path / "cam.json"
    cam.write_text(json.dumps({"fx": 30.0, "fy": 30.0, "cx": 19.5, "cy": 14.5, "width": W, "height": H}))
    args = predict_args(photo, f"{checkpoints['depth-v1-1']},{checkpoints['normals-v1-1']}", out, res=32,
                        extra=["--export", "ply,glb,exr", "--intrinsics", cam, "--sparse-depth", tmp_path / "sparse.npy"])
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert {"room_points.ply", "room_mesh.glb", "room_depth.exr", "room_depth_metric.npy",
            "room_depth_metric.json"} <= set(names)
    np.testing.assert_array_equal(np.load(out / "room_depth.npy"), depth)

    metric = np.load(out / "room_depth_metric.npy")
    expected, fit = fit_metric(depth, _sparse_from(depth, 4.0, 0.5))
    np.testing.assert_allclose(metric, expected, rtol=1e-6)
    np.testing.assert_allclose(metric, 4.0 * depth + 0.5, rtol=1e-4)
    record = json.loads((out / "room_depth_metric.json").read_text())
    assert record["fit"]["scale"] == pytest.approx(4.0, rel=1e-4) and record["fit"]["points"] == 10 * 14
    assert record["units"] == "metres"

    table, comments = parse_ply((out / "room_points.ply").read_bytes())
    valid = depth < FAR_CLIP
    assert len(table) == int(valid.sum()) and any(c.startswith("units: metres") for c in comments)
    pts = np.stack([table["x"], table["y"], table["z"]], axis=1)
    np.testing.assert_allclose(pts, unproject(metric, read_intrinsics(cam, H, W))[valid], rtol=1e-5)
    normals = np.load(out / "room_normals.npy")[valid]
    np.testing.assert_allclose(np.stack([table["nx"], table["ny"], table["nz"]], axis=1),
                               normals * [1, -1, -1], atol=1e-6)  # Marigold frame -> OpenCV frame

    # rerun: everything exists, nothing is rewritten
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, err = run_cli(capsys, *args)
    assert code == 0 and {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_export_without_metric_scale_is_relative_and_says_so(photo, tmp_path, capsys, checkpoints):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints["depth-v1-1"], out, res=32,
                                                 extra=["--export", "ply", "--fov-x", "60"]))
    assert code == 0, err
    assert "room_depth_metric.npy" not in {p.name for p in out.iterdir()}
    table, comments = parse_ply((out / "room_points.ply").read_bytes())
    assert any("NOT metric" in c for c in comments)
    depth = np.load(out / "room_depth.npy")
    z = relative_depth(depth)[depth < FAR_CLIP]
    np.testing.assert_allclose(table["z"], z, rtol=1e-6)
    assert table.dtype.names == ("x", "y", "z", "red", "green", "blue")  # no normals model in this run


def test_sparse_depth_folder_pairs_by_stem_and_bad_inputs_fail_alone(tmp_path, capsys, checkpoints):
    a = save_image(tmp_path / "in" / "a.png", H, W, seed=1)
    b = save_image(tmp_path / "in" / "b.png", H, W, seed=2)
    c = save_image(tmp_path / "in" / "c.png", H, W, seed=4)
    sparse = tmp_path / "sparse"
    sparse.mkdir()
    grid = np.zeros((H, W), np.float32)
    grid[::4, ::4] = np.linspace(1, 5, grid[::4, ::4].size).reshape(grid[::4, ::4].shape)
    np.save(sparse / "a.npy", grid)
    np.save(sparse / "b.npy", np.ones((H + 1, W), np.float32))  # wrong size: this input fails, the rest goes on
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *predict_args([a, b, c], checkpoints["depth-v1-1"], out, res=32,
                                                 extra=["--sparse-depth", sparse]))
    assert code == 1
    assert f"error: {b}:" in err and "31x40 but the image is 30x40" in err
    names = {p.name for p in out.iterdir()}
    assert {"a_depth_metric.npy", "a_depth_metric.json", "c_depth.npy"} <= names
    assert "c_depth_metric.npy" not in names  # no measurements for c: its plain outputs only


@pytest.mark.parametrize("extra, message", [
    (["--export", "obj"], "unknown format"),
    (["--export", "ply", "--intrinsics", "missing.json"], "no such file"),
    (["--export", "ply", "--fov-x", "200"], "between 0 and 180"),
    (["--export", "ply", "--intrinsics", "{cam}", "--fov-x", "50"], "either --intrinsics or --fov-x"),
])
def test_usage_errors(photo, tmp_path, capsys, checkpoints, extra, message):
    cam = tmp_path / "cam.json"
    cam.write_text('{"fx": 1, "fy": 1, "cx": 0, "cy": 0}')
    extra = [str(e).replace("{cam}", str(cam)) for e in extra]
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints["depth-v1-1"], tmp_path / "o", extra=extra))
    assert code == 2 and message in err


def test_export_needs_a_depth_model(photo, tmp_path, capsys, checkpoints):
    code, _, err = run_cli(capsys, *predict_args(photo, checkpoints["normals-v1-1"], tmp_path / "o",
                                                 extra=["--export", "ply"]))
    assert code == 2 and "--export" in err and "depth model" in err
