"""Temporal consistency of a depth video: TAE (temporal alignment error), next to per-frame accuracy.

TAE as Video Depth Anything defines it: the prediction is aligned to the ground truth with *one* scale and shift
for the whole sequence; each frame's aligned depth is reprojected into the next frame with the ground-truth
intrinsics and poses, and the AbsRel between the reprojected depth and the next frame's aligned depth is taken,
in both directions; ``TAE = sum / (2 (N - 1)) x 100``. Points that land on the same pixel keep the nearest one
(a z-buffer). The alignment runs in the prediction's own space: depth for Marigold depth models, disparity for
models that predict it (RollingDepth) — aligning a [0, 1] affine depth in disparity space is ill-posed. TAE alone
rewards a flat (constant) prediction, so :func:`video_metrics` always reports AbsRel and delta1 over the whole
video with it.

:func:`sequence_metrics` is the video benchmarks' protocol (``marigold evaluate --benchmark <video set>``): the
image protocol's least squares (:func:`~.alignment.align_depth`) fitted once over every valid pixel of every frame,
clipped to the dataset's range, the image metrics per frame averaged over the frames (the Marigold / DepthCrafter
``metric.py`` applied to a ``[T, H, W]`` batch), and TAE when the sequence has cameras. :func:`video_metrics` pools
AbsRel and delta1 over the pixels of the whole video instead (the recipe's numbers).

Cameras: OpenCV convention (x right, y down, z forward); ``poses`` are camera-to-world ``[N, 4, 4]``.
"""

from __future__ import annotations

import math

import numpy as np

from ...core.checks import check_shape
from ...core.metrics import EmptyMaskError
from .alignment import align_depth
from .metrics import DEPTH_METRIC_KEYS, depth_metrics


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


def reproject_depth(depth: np.ndarray, K: np.ndarray, src_to_dst: np.ndarray,
                    K_dst: np.ndarray | None = None) -> np.ndarray:
    """Frame ``depth [H, W]`` (0 = invalid) seen from another camera: ``[H, W]`` depth of the nearest reprojected
    point per pixel (0 where none lands). ``src_to_dst``: the ``4 x 4`` transform from the source camera to the
    target camera; ``K_dst``: the target camera's intrinsics (default ``K``)."""
    check_shape(depth, "H W", "depth")
    K_dst = K if K_dst is None else K_dst
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    valid = depth > 0
    d = depth[valid].astype(np.float64)
    pix = np.stack([u[valid] + 0.0, v[valid] + 0.0, np.ones_like(d)])
    pts = np.linalg.inv(K) @ pix * d  # [3, P] in the source camera
    pts = src_to_dst[:3, :3] @ pts + src_to_dst[:3, 3:4]
    z = pts[2]
    front = z > 1e-9
    proj = K_dst @ (pts[:, front] / z[front])
    uu, vv, zz = np.round(proj[0]).astype(np.int64), np.round(proj[1]).astype(np.int64), z[front]
    inside = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
    out = np.full(h * w, np.inf)
    np.minimum.at(out, vv[inside] * w + uu[inside], zz[inside])  # z-buffer: the nearest point wins
    out[~np.isfinite(out)] = 0.0
    return out.reshape(h, w).astype(np.float32)


def temporal_alignment_error(depth: np.ndarray, K: np.ndarray, poses: np.ndarray,
                             mask: np.ndarray | None = None) -> float:
    """TAE of an (aligned, metric) depth video ``[N, H, W]`` with intrinsics ``K`` (``3 x 3``, or ``[N, 3, 3]``
    per frame) and camera-to-world ``poses [N, 4, 4]``; ``mask`` (``[N, H, W]``) marks the pixels to compare in
    each target frame. In percent."""
    check_shape(depth, "N H W", "depth video")
    n = depth.shape[0]
    if n < 2:
        raise ValueError("TAE needs at least 2 frames")
    K = np.asarray(K, dtype=np.float64)
    if K.shape not in ((3, 3), (n, 3, 3)):
        raise ValueError(f"intrinsics must be 3x3 or [{n}, 3, 3], got {K.shape}")
    Ks = np.broadcast_to(K, (n, 3, 3))
    poses = np.asarray(poses, dtype=np.float64)
    if poses.shape != (n, 4, 4):
        raise ValueError(f"poses must be [{n}, 4, 4], got {poses.shape}")
    total = 0.0
    for i in range(n - 1):
        for a, b in ((i, i + 1), (i + 1, i)):
            moved = reproject_depth(depth[a], Ks[a], np.linalg.inv(poses[b]) @ poses[a], Ks[b])
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


def sequence_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, alignment: str | None = "least_squares",
                     min_depth: float | None = None, max_depth: float | None = None,
                     intrinsics: np.ndarray | None = None,
                     poses: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
    """The video benchmarks' per-sequence protocol for ``pred [T, H, W]`` (at the ground truth's size) against the
    depth ``gt [T, H, W]`` (metres) over ``mask [T, H, W]``:

    1. one alignment for the whole sequence: :func:`~.alignment.align_depth` with ``alignment``
       (``least_squares``: scale and shift in depth space; ``least_squares_disparity``: in disparity space, the
       aligned disparity floored at 1e-3 and inverted; ``none``: as it is) fitted over every valid pixel of every
       frame at once, then clipped to ``[min_depth, max_depth]`` (default ``[1e-6, inf]``) and to ``>= 1e-6``;
    2. :data:`~.metrics.DEPTH_METRIC_KEYS` per frame over that frame's valid pixels, averaged over the frames with
       at least one (frames without are left out, as the authors' batch metrics skip them);
    3. with ``intrinsics`` (``3 x 3`` or ``[T, 3, 3]``) and camera-to-world ``poses [T, 4, 4]``: ``tae``
       (percent, :func:`temporal_alignment_error` of the aligned video; every pixel where both reprojected and
       target depth are positive counts, as Video Depth Anything's TAE on ScanNet).

    Returns ``(metrics, aligned depth [T, H, W])``. Raises
    :class:`~marigold_toolkit.core.metrics.EmptyMaskError` when no pixel of the sequence is valid.
    """
    check_shape(pred, "T H W", "prediction")
    if pred.shape != gt.shape or gt.shape != mask.shape:
        raise ValueError(f"prediction {pred.shape}, ground truth {gt.shape} and mask {mask.shape} differ")
    g = np.nan_to_num(np.asarray(gt, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    m = np.asarray(mask, dtype=bool) & (g > 0)
    if not m.any():
        raise EmptyMaskError("the valid mask selects no pixel of the sequence")
    t, h, w = pred.shape
    lo = 1e-6 if min_depth is None else min_depth
    hi = math.inf if max_depth is None else max_depth
    aligned = align_depth(np.asarray(pred, dtype=np.float32).reshape(t * h, w), g.reshape(t * h, w),
                          m.reshape(t * h, w), alignment, lo, hi)
    aligned = np.asarray(aligned, dtype=np.float32).reshape(t, h, w)
    per_frame = [depth_metrics(aligned[k], g[k], m[k]) for k in range(t) if m[k].any()]
    metrics = {key: float(np.mean([f[key] for f in per_frame])) for key in DEPTH_METRIC_KEYS}
    if intrinsics is not None and poses is not None:
        metrics["tae"] = temporal_alignment_error(aligned, intrinsics, poses)
    return metrics, aligned
