"""Temporal consistency of a depth video: TAE (temporal alignment error), next to per-frame accuracy.

TAE as Video Depth Anything defines it: the prediction is aligned to the ground truth with *one* scale and shift
for the whole sequence; each frame's aligned depth is reprojected into the next frame with the ground-truth
intrinsics and poses, and the AbsRel between the reprojected depth and the next frame's aligned depth is taken,
in both directions; ``TAE = sum / (2 (N - 1)) x 100``. Points that land on the same pixel keep the nearest one
(a z-buffer). The alignment runs in the prediction's own space: depth for Marigold depth models, disparity for
models that predict it (RollingDepth) — aligning a [0, 1] affine depth in disparity space is ill-posed. TAE alone
rewards a flat (constant) prediction, so :func:`video_metrics` always reports AbsRel and delta1 over the whole
video with it.

Cameras: OpenCV convention (x right, y down, z forward); ``poses`` are camera-to-world ``[N, 4, 4]``.
"""

from __future__ import annotations

import numpy as np

from ...core.checks import check_shape


def align_sequence(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, space: str = "depth") -> np.ndarray:
    """``pred [N, H, W]`` mapped by one least-squares scale and shift (over every valid pixel of every frame) to
    the ground-truth depth ``gt``; in ``space="disparity"`` the fit is to ``1 / gt`` and the result inverted.
    Returns metric depth ``[N, H, W]`` (0 where the fit leaves it non-positive)."""
    check_shape(pred, "N H W", "prediction")
    if pred.shape != gt.shape or gt.shape != mask.shape:
        raise ValueError(f"prediction {pred.shape}, ground truth {gt.shape} and mask {mask.shape} differ")
    if space not in ("depth", "disparity"):
        raise ValueError(f"unknown prediction space {space!r}; use depth or disparity")
    m = mask & (gt > 0)
    if m.sum() < 2:
        raise ValueError("fewer than 2 valid ground-truth pixels")
    target = gt if space == "depth" else 1.0 / np.where(m, gt, 1.0)
    x = pred[m].astype(np.float64)
    A = np.stack([x, np.ones_like(x)], axis=1)
    (s, t), *_ = np.linalg.lstsq(A, target[m].astype(np.float64), rcond=None)
    aligned = s * pred.astype(np.float64) + t
    if space == "disparity":
        aligned = np.where(aligned > 0, 1.0 / np.maximum(aligned, 1e-12), 0.0)
    return np.where(aligned > 0, aligned, 0.0).astype(np.float32)


def reproject_depth(depth: np.ndarray, K: np.ndarray, src_to_dst: np.ndarray) -> np.ndarray:
    """Frame ``depth [H, W]`` (0 = invalid) seen from another camera: ``[H, W]`` depth of the nearest reprojected
    point per pixel (0 where none lands). ``src_to_dst``: the ``4 x 4`` transform from the source camera to the
    target camera."""
    check_shape(depth, "H W", "depth")
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    valid = depth > 0
    d = depth[valid].astype(np.float64)
    pix = np.stack([u[valid] + 0.0, v[valid] + 0.0, np.ones_like(d)])
    pts = np.linalg.inv(K) @ pix * d  # [3, P] in the source camera
    pts = src_to_dst[:3, :3] @ pts + src_to_dst[:3, 3:4]
    z = pts[2]
    front = z > 1e-9
    proj = K @ (pts[:, front] / z[front])
    uu, vv, zz = np.round(proj[0]).astype(np.int64), np.round(proj[1]).astype(np.int64), z[front]
    inside = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
    out = np.full(h * w, np.inf)
    np.minimum.at(out, vv[inside] * w + uu[inside], zz[inside])  # z-buffer: the nearest point wins
    out[~np.isfinite(out)] = 0.0
    return out.reshape(h, w).astype(np.float32)


def temporal_alignment_error(depth: np.ndarray, K: np.ndarray, poses: np.ndarray,
                             mask: np.ndarray | None = None) -> float:
    """TAE of an (aligned, metric) depth video ``[N, H, W]`` with intrinsics ``K`` (``3 x 3``, or ``[N, 3, 3]``)
    and camera-to-world ``poses [N, 4, 4]``; ``mask`` (``[N, H, W]``) marks the pixels to compare in each target
    frame. In percent."""
    check_shape(depth, "N H W", "depth video")
    n = depth.shape[0]
    if n < 2:
        raise ValueError("TAE needs at least 2 frames")
    Ks = np.broadcast_to(np.asarray(K, dtype=np.float64), (n, 3, 3))
    poses = np.asarray(poses, dtype=np.float64)
    if poses.shape != (n, 4, 4):
        raise ValueError(f"poses must be [{n}, 4, 4], got {poses.shape}")
    if not np.allclose(Ks, Ks[0]):
        raise ValueError("frames with different intrinsics are not supported")
    total = 0.0
    for i in range(n - 1):
        for a, b in ((i, i + 1), (i + 1, i)):
            moved = reproject_depth(depth[a], Ks[0], np.linalg.inv(poses[b]) @ poses[a])
            target = depth[b]
            ok = (moved > 0) & (target > 0)
            if mask is not None:
                ok &= mask[b]
            if ok.any():
                total += float(np.mean(np.abs(moved[ok] - target[ok]) / target[ok]))
    return total / (2 * (n - 1)) * 100.0


def video_metrics(pred: np.ndarray, gt: np.ndarray, K: np.ndarray, poses: np.ndarray, mask: np.ndarray | None = None,
                  space: str = "depth") -> dict[str, float]:
    """TAE (percent) with AbsRel and delta1 over every valid pixel of the whole video, after one scale and shift
    for the sequence in the prediction's ``space``."""
    mask = (gt > 0) if mask is None else (mask & (gt > 0))
    aligned = align_sequence(pred, gt, mask, space)
    m = mask & (aligned > 0)
    ratio = np.maximum(aligned[m] / gt[m], gt[m] / aligned[m])
    return {"tae": temporal_alignment_error(aligned, K, poses, mask),
            "abs_rel": float(np.mean(np.abs(aligned[m] - gt[m]) / gt[m])),
            "delta1": float(np.mean(ratio < 1.25))}
