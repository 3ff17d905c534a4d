"""TAE on an analytic static scene seen by a moving camera: 0 for the ground truth, large for a flickering
copy; the alignment space; the z-buffer."""

from __future__ import annotations

import numpy as np
import pytest

from marigold_toolkit.tasks.depth.temporal import (align_sequence, reproject_depth, temporal_alignment_error,
                                                   video_metrics)

K = np.array([[40.0, 0, 31.5], [0, 40.0, 23.5], [0, 0, 1]])
H, W = 48, 64


def _pose(x: float, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4)
    pose[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    pose[:3, 3] = [x, 0, 0]
    return pose


def _render(pose: np.ndarray) -> np.ndarray:
    """Camera-z depth of a floor (world y = 1) and a back wall (world z = 6), by ray casting."""
    v, u = np.mgrid[0:H, 0:W]
    rays = np.linalg.inv(K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])  # z = 1 in the camera
    d_world = pose[:3, :3] @ rays
    o = pose[:3, 3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d_world[1] > 1e-6, (1.0 - o[1]) / d_world[1], np.inf)
        t_wall = np.where(d_world[2] > 1e-6, (6.0 - o[2]) / d_world[2], np.inf)
    t = np.minimum(t_floor, t_wall)
    return np.where(np.isfinite(t), t, 0).reshape(H, W).astype(np.float32)  # t is the camera z (rays have z = 1)


@pytest.fixture(scope="module")
def scene():
    poses = np.stack([_pose(0.04 * k, 0.01 * k) for k in range(6)])
    gt = np.stack([_render(p) for p in poses])
    return gt, poses


def test_reprojection_of_the_ground_truth_lands_on_the_next_frame(scene):
    gt, poses = scene
    moved = reproject_depth(gt[0], K, np.linalg.inv(poses[1]) @ poses[0])
    ok = (moved > 0) & (gt[1] > 0)
    assert ok.mean() > 0.8
    assert np.median(np.abs(moved[ok] - gt[1][ok]) / gt[1][ok]) < 0.01


def test_tae_is_zero_for_the_ground_truth_and_large_for_flicker(scene):
    gt, poses = scene
    assert temporal_alignment_error(gt, K, poses) < 1.0  # percent; what is left is pixel rounding at the seam
    flicker = gt * np.array([1.0, 1.15, 0.9, 1.12, 0.88, 1.1], dtype=np.float32)[:, None, None]
    m_gt = video_metrics(gt, gt, K, poses)
    m_fl = video_metrics(flicker, gt, K, poses)
    assert m_gt["tae"] < 1.0 and m_gt["abs_rel"] < 1e-5 and m_gt["delta1"] == 1.0
    assert m_fl["tae"] > 10 * m_gt["tae"] and m_fl["tae"] > 5.0
    # a flat prediction is perfectly 'consistent' but wrong: that is why AbsRel is reported next to TAE
    flat = video_metrics(np.ones_like(gt), gt, K, poses)
    assert flat["abs_rel"] > 0.2


def test_alignment_runs_in_the_predictions_space(scene):
    gt, poses = scene
    disparity = 0.5 / gt + 0.1  # an affine disparity: exact in disparity space, not in depth space
    m = video_metrics(disparity, gt, K, poses, space="disparity")
    assert m["abs_rel"] < 1e-4 and m["tae"] < 1.0
    wrong = video_metrics(disparity, gt, K, poses, space="depth")
    assert wrong["abs_rel"] > 0.05
    a = align_sequence(3 * gt + 2, gt, gt > 0)
    np.testing.assert_allclose(a, gt, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown prediction space"):
        align_sequence(gt, gt, gt > 0, space="log")


def test_the_nearest_point_wins_a_pixel():
    depth = np.array([[2.0, 4.0]], dtype=np.float32)
    k = np.array([[1.0, 0, 0.5], [0, 1.0, 0], [0, 0, 1]])
    # move the camera so both points land on one pixel: x of the far point shifts by half as much
    out = reproject_depth(depth, k, np.eye(4))
    np.testing.assert_array_equal(out, depth)
    squash = np.eye(4)
    squash[0, 0] = 0.0  # every point to x = 0 -> pixel column 0 (u = 0.5 rounds to 0)
    out = reproject_depth(depth, k, squash)
    assert out[0, 0] == 2.0
