"""3D and metric depth: intrinsics, unprojection on analytic planes, PLY / GLB / EXR round trips through real
readers (numpy's parse of the PLY bytes, trimesh and pygltflib for GLB, OpenEXR), the robust metric fit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from marigold_toolkit.io.camera import (
    CameraError,
    CameraIntrinsics,
    intrinsics_from_exif,
    intrinsics_from_fov,
    read_intrinsics,
    resolve_intrinsics,
)
from marigold_toolkit.io.dataset_files import DataSource, read_exr_rgb
from marigold_toolkit.io.geometry_files import write_exr, write_glb, write_ply
from marigold_toolkit.synth.render import intrinsics as synth_intrinsics
from marigold_toolkit.tasks.depth.export import write_mesh, write_point_cloud
from marigold_toolkit.tasks.depth.geometry import grid_faces, opencv_to_gltf, relative_depth, unproject
from marigold_toolkit.tasks.depth.metric import SparseDepthError, fit_metric, read_sparse_depth

K = CameraIntrinsics(fx=50.0, fy=55.0, cx=19.5, cy=14.5, width=40, height=30)


def plane_depth(camera: CameraIntrinsics, normal, offset) -> np.ndarray:
    """Planar depth of the plane ``n . X = offset`` (OpenCV frame) seen by ``camera``: z = offset / (n . r)."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], axis=-1)
    return offset / (rays @ np.asarray(normal, dtype=np.float64))


def parse_ply(data: bytes):
    header, body = data.split(b"end_header\n", 1)
    lines = header.decode("ascii").splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    n = int(next(line for line in lines if line.startswith("element vertex")).split()[-1])
    props = [line.split() for line in lines if line.startswith("property")]
    types = {"float": "<f4", "uchar": "u1"}
    table = np.frombuffer(body, dtype=[(name, types[t]) for _, t, name in props], count=n)
    comments = [line[8:] for line in lines if line.startswith("comment ")]
    return table, comments


# ------------------------------------------------------------------------------------------------------ intrinsics
def test_fov_intrinsics_and_pixel_centre_convention():
    k = intrinsics_from_fov(90.0, 31, 41)
    assert k.fx == pytest.approx(20.5) and (k.cx, k.cy) == (20.0, 15.0)  # the centre pixel of an odd image
    points = unproject(np.full((31, 41), 2.0), k)
    assert points[15, 20].tolist() == [0.0, 0.0, 2.0]
    # the image's left edge (u = -0.5) is at 45 degrees: tan(45) = (u - cx) / fx
    assert (-0.5 - k.cx) / k.fx == pytest.approx(-1.0)
    with pytest.raises(CameraError, match="between 0 and 180"):
        intrinsics_from_fov(180.0, 10, 10)


def test_synth_camera_json_is_read_as_it_is_and_scales_with_the_image(tmp_path):
    cam = synth_intrinsics(70.0, 60, 80)
    path = tmp_path / "cam.json"
    path.write_text(json.dumps({**cam, "pixel_convention": "opencv (pixel centres at integer coordinates)"}))
    k = read_intrinsics(path, 60, 80)
    assert (k.fx, k.fy, k.cx, k.cy) == (cam["fx"], cam["fy"], cam["cx"], cam["cy"])
    half = read_intrinsics(path, 30, 40)  # the same camera, image resized by 1/2
    assert half.fx == pytest.approx(cam["fx"] / 2) and half.cx == pytest.approx((cam["cx"] + 0.5) / 2 - 0.5)
    continuous = tmp_path / "c.json"
    continuous.write_text(json.dumps({"fx": 10, "fy": 10, "cx": 40.0, "cy": 30.0, "pixel_convention": "continuous"}))
    assert (read_intrinsics(continuous, 60, 80).cx, read_intrinsics(continuous, 60, 80).cy) == (39.5, 29.5)
    with pytest.raises(CameraError, match="aspect ratio"):
        read_intrinsics(path, 60, 60)
    (tmp_path / "bad.json").write_text('{"fx": 1}')
    with pytest.raises(CameraError, match="fx, fy, cx, cy"):
        read_intrinsics(tmp_path / "bad.json", 60, 80)


def test_exif_35mm_focal_length(tmp_path):
    img = Image.new("RGB", (120, 80), (10, 20, 30))
    exif = Image.Exif()
    exif[0x8769] = {41989: 26}  # ExifIFD.FocalLengthIn35mmFilm
    img.save(tmp_path / "p.jpg", exif=exif)
    k = intrinsics_from_exif(tmp_path / "p.jpg", 80, 120)
    assert k is not None and k.source == "exif" and k.fx == pytest.approx(26 * 120 / 36)
    img.save(tmp_path / "plain.jpg")
    assert intrinsics_from_exif(tmp_path / "plain.jpg", 80, 120) is None
    assert resolve_intrinsics(80, 120, image_path=tmp_path / "plain.jpg").source == "default"
    assert resolve_intrinsics(80, 120, image_path=tmp_path / "p.jpg").source == "exif"


# ---------------------------------------------------------------------------------------------------- unprojection
@pytest.mark.parametrize("normal, offset", [((0, 0, 1), 3.0), ((0.3, -0.2, 1.0), 2.5), ((0, 0.8, 0.6), 1.2)])
def test_unprojected_plane_lies_on_the_plane(normal, offset):
    depth = plane_depth(K, normal, offset)
    points = unproject(depth, K).astype(np.float64)
    np.testing.assert_allclose(points @ np.asarray(normal, dtype=np.float64), offset, rtol=1e-5)
    np.testing.assert_allclose(points[..., 2], depth, rtol=1e-6)
    assert points[0, 0, 0] < 0 and points[0, 0, 1] < 0  # top-left pixel: left of and above the axis (y down)


def test_relative_depth_and_frames():
    assert relative_depth(np.array([0.0, 1.0])).tolist() == [1.0, 10.0]
    assert opencv_to_gltf(np.array([[1.0, 2.0, 3.0]])).tolist() == [[1.0, -2.0, -3.0]]


def test_grid_faces_cut_depth_jumps():
    depth = np.ones((4, 5))
    depth[:, 3:] = 1.5  # a step between columns 2 and 3
    valid = np.ones_like(depth, dtype=bool)
    faces = grid_faces(depth, valid, max_jump=0.05)
    assert len(faces) == 2 * 3 * 4 - 2 * 3  # the 3 blocks straddling the step lose both triangles
    assert len(grid_faces(depth, valid, max_jump=0.6)) == 2 * 3 * 4
    valid[0, 0] = False
    assert len(grid_faces(depth, valid, max_jump=0.6)) == 2 * 3 * 4 - 1  # only one triangle touches the corner


# ---------------------------------------------------------------------------------------------------------- files
def test_point_cloud_round_trip(tmp_path):
    depth = plane_depth(K, (0.2, 0.1, 1.0), 2.0).astype(np.float32)
    valid = np.ones(depth.shape, dtype=bool)
    valid[:5] = False  # e.g. sky
    rgb = np.random.default_rng(0).integers(0, 256, (*depth.shape, 3)).astype(np.uint8)
    normals = np.zeros((*depth.shape, 3), np.float32)
    normals[..., 2] = 1.0  # Marigold frame: towards the viewer
    write_point_cloud(tmp_path / "p.ply", depth, valid, K, rgb, normals, units="metres")
    table, comments = parse_ply((tmp_path / "p.ply").read_bytes())
    assert len(table) == int(valid.sum())
    pts = np.stack([table["x"], table["y"], table["z"]], axis=1)
    np.testing.assert_allclose(pts, unproject(depth, K)[valid], rtol=1e-6)
    np.testing.assert_array_equal(np.stack([table["red"], table["green"], table["blue"]], axis=1), rgb[valid])
    np.testing.assert_allclose(np.stack([table["nx"], table["ny"], table["nz"]], axis=1), [[0, 0, -1]] * len(table))
    assert "units: metres" in comments and any("OpenCV camera frame" in c for c in comments)
    write_ply(tmp_path / "q.ply", pts[:3], np.zeros((3, 3), np.uint8))
    table, _ = parse_ply((tmp_path / "q.ply").read_bytes())
    assert table.dtype.names == ("x", "y", "z", "red", "green", "blue")


def test_mesh_round_trip_in_trimesh_and_pygltflib(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    pygltflib = pytest.importorskip("pygltflib")
    depth = np.full((K.height, K.width), 2.0, np.float32)
    rgb = np.zeros((*depth.shape, 3), np.uint8)
    rgb[..., 0] = 200
    n_faces = write_mesh(tmp_path / "m.glb", depth, np.ones(depth.shape, bool), K, rgb)
    assert n_faces == 2 * (K.height - 1) * (K.width - 1)
    mesh = trimesh.load(tmp_path / "m.glb", force="mesh", process=False)
    assert len(mesh.vertices) == K.height * K.width and len(mesh.faces) == n_faces
    v = np.asarray(mesh.vertices)
    np.testing.assert_allclose(v[:, 2], -2.0, atol=1e-6)  # y up, -z forward: the wall is in front of the camera
    assert v[0, 1] > 0 and v[0, 0] < 0  # the top-left pixel is up and to the left
    assert (mesh.face_normals[:, 2] > 0.99).all()  # triangles face the camera
    assert (np.asarray(mesh.visual.vertex_colors)[:, :3] == [200, 0, 0]).all()
    gltf = pygltflib.GLTF2().load(str(tmp_path / "m.glb"))
    prim = gltf.meshes[0].primitives[0]
    assert gltf.accessors[prim.attributes.POSITION].count == K.height * K.width
    assert prim.attributes.COLOR_0 is not None


def test_exr_round_trip(tmp_path):
    pytest.importorskip("OpenEXR")
    depth = np.random.default_rng(0).random((7, 9)).astype(np.float32)
    write_exr(tmp_path / "d.exr", depth)
    back = read_exr_rgb(DataSource(tmp_path), "d.exr")
    np.testing.assert_array_equal(back[..., 0], depth)


def test_write_glb_checks_shapes(tmp_path):
    pytest.importorskip("trimesh")
    with pytest.raises(ValueError, match="faces"):
        write_glb(tmp_path / "x.glb", np.zeros((3, 3)), np.zeros((2, 4), np.int64), np.zeros((3, 3), np.uint8))


# ----------------------------------------------------------------------------------------------------- metric fit
def _sparse(pred, rng, n, fn, outliers=0.0):
    sparse = np.zeros_like(pred)
    idx = rng.choice(pred.size, n, replace=False)
    values = fn(pred.reshape(-1)[idx]) * (1 + rng.normal(0, 0.005, n))
    bad = rng.random(n) < outliers
    values[bad] = rng.uniform(0.5, 50.0, bad.sum())
    sparse.reshape(-1)[idx] = values
    return sparse


@pytest.mark.parametrize("method", ["irls", "ransac"])
def test_metric_fit_recovers_scale_and_shift_despite_outliers(method):
    rng = np.random.default_rng(1)
    pred = rng.random((48, 64)).astype(np.float32)
    sparse = _sparse(pred, rng, 300, lambda d: 7.0 * d + 1.2, outliers=0.2)
    metric, fit = fit_metric(pred, sparse, method=method)
    assert fit.scale == pytest.approx(7.0, rel=0.01) and fit.shift == pytest.approx(1.2, rel=0.02)
    assert fit.points == 300 and 0.7 * 300 < fit.inliers < 0.9 * 300
    np.testing.assert_allclose(metric, 7.0 * pred + 1.2, rtol=0.02)
    assert fit.inlier_residuals["mae"] < 0.05 < fit.residuals["mae"]
    plain = fit_metric(pred, np.where(sparse > 0, 7.0 * pred + 1.2, 0))[1]
    assert plain.scale == pytest.approx(7.0, abs=1e-6) and plain.residuals["max"] < 1e-5  # float32 inputs


def test_metric_fit_in_disparity_space():
    rng = np.random.default_rng(2)
    pred = rng.random((20, 30))
    sparse = _sparse(pred, rng, 80, lambda d: 1.0 / (0.5 * d + 0.1))
    metric, fit = fit_metric(pred, sparse, space="disparity")
    assert fit.scale == pytest.approx(0.5, rel=0.02) and fit.shift == pytest.approx(0.1, rel=0.05)
    np.testing.assert_allclose(metric, 1.0 / (0.5 * pred + 0.1), rtol=0.03)


def test_metric_fit_errors():
    pred = np.random.default_rng(0).random((4, 4))
    one = np.zeros((4, 4))
    one[1, 1] = 2.0
    with pytest.raises(SparseDepthError, match="at least 2"):
        fit_metric(pred, one)
    with pytest.raises(SparseDepthError, match="prediction"):
        fit_metric(pred, np.zeros((3, 3)))
    with pytest.raises(SparseDepthError, match="fit space"):
        fit_metric(pred, one, space="log")


def test_sparse_depth_formats(tmp_path):
    expected = np.zeros((6, 8), np.float32)
    expected[1, 2], expected[4, 7] = 1.5, 12.25
    np.save(tmp_path / "s.npy", expected)
    Image.fromarray((expected * 1000).astype(np.uint16)).save(tmp_path / "s.png")
    (tmp_path / "s.csv").write_text("u,v,depth\n2,1,1.5\n7,4,12.25\n")
    for name in ("s.npy", "s.png", "s.csv"):
        np.testing.assert_allclose(read_sparse_depth(tmp_path / name, 6, 8), expected, rtol=1e-6, err_msg=name)
    with pytest.raises(SparseDepthError, match="outside"):
        (tmp_path / "bad.csv").write_text("9,1,1.0\n")
        read_sparse_depth(tmp_path / "bad.csv", 6, 8)
    with pytest.raises(SparseDepthError, match="but the image is 6x9"):
        read_sparse_depth(tmp_path / "s.npy", 6, 9)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(SparseDepthError, match="16-bit"):
        read_sparse_depth(tmp_path / "rgb.png", 6, 8)
    assert math.isfinite(fit_metric(np.random.default_rng(0).random((6, 8)), expected)[1].abs_rel)
