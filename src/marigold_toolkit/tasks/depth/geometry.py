"""Depth maps as 3D geometry: unprojection to points in the OpenCV camera frame, the mesh of the pixel grid with
depth discontinuities cut, and the normalisation that turns an affine-invariant depth into positive depths.

Frames: the **OpenCV camera frame** is x right, y down, z forward (the viewing direction); a pixel ``(u, v)`` at
depth ``z`` (planar depth, not ray length) is the point ``((u - cx) z / fx, (v - cy) z / fy, z)`` with the pixel
convention of :mod:`marigold_toolkit.io.camera`. glTF is y up, -z forward: the OpenCV frame rotated about x by
180 degrees, ``(x, -y, -z)``. Marigold's normals frame (x right, y up, z towards the viewer) is the glTF frame, so
normals go to the OpenCV frame as ``(nx, -ny, -nz)``.
"""

from __future__ import annotations

import numpy as np

from ...core.checks import check_shape
from ...io.camera import CameraIntrinsics

#: the normalised depth of an affine-invariant prediction at or above which a pixel counts as sky / far
#: background and is left out of point clouds and meshes (Marigold predicts the sky at the far end, 1.0)
FAR_CLIP = 0.99
#: :func:`relative_depth`'s far-to-near ratio: the nearest predicted point lies at 1 unit, the farthest at 10
DEPTH_RANGE_RATIO = 10.0
#: :func:`grid_faces` drops a triangle whose largest depth exceeds its smallest by more than this fraction
MAX_DEPTH_JUMP = 0.05


def relative_depth(depth: np.ndarray, ratio: float = DEPTH_RANGE_RATIO) -> np.ndarray:
    """Affine-invariant depth ``d`` in [0, 1] -> positive relative depth ``z = 1 + (ratio - 1) d`` (1 at the
    nearest point, ``ratio`` at the farthest). An affine-invariant prediction has no metric scale or shift, so
    this is one choice of the unknown shift, not a measurement: shapes are right up to that choice.

    >>> relative_depth(np.array([0.0, 0.5, 1.0])).tolist()
    [1.0, 5.5, 10.0]
    """
    if ratio <= 1.0:
        raise ValueError(f"depth range ratio must be > 1, got {ratio}")
    return (1.0 + (ratio - 1.0) * np.asarray(depth, dtype=np.float64)).astype(np.float32)


def unproject(depth: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """Planar depth ``[H, W]`` -> points ``[H, W, 3]`` (float32) in the OpenCV camera frame (module docstring).

    >>> k = CameraIntrinsics(fx=2.0, fy=2.0, cx=1.0, cy=0.5, width=3, height=2)
    >>> unproject(np.full((2, 3), 4.0), k)[1, 2].tolist()  # pixel (u=2, v=1): ((2-1)*4/2, (1-0.5)*4/2, 4)
    [2.0, 1.0, 4.0]
    """
    depth = np.asarray(depth, dtype=np.float64)
    check_shape(depth, "H W", "depth")
    if depth.shape != (camera.height, camera.width):
        raise ValueError(f"depth is {depth.shape[0]}x{depth.shape[1]} but the intrinsics are for "
                         f"{camera.height}x{camera.width}")
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float64)
    x = (u - camera.cx) / camera.fx * depth
    y = (v - camera.cy) / camera.fy * depth
    return np.stack([x, y, depth], axis=-1).astype(np.float32)


def opencv_to_gltf(points: np.ndarray) -> np.ndarray:
    """OpenCV camera frame -> glTF (y up, -z forward): a rotation about x by 180 degrees, ``(x, -y, -z)``."""
    return (np.asarray(points, dtype=np.float32) * np.array([1.0, -1.0, -1.0], dtype=np.float32)).astype(np.float32)


def marigold_normals_to_opencv(normals: np.ndarray) -> np.ndarray:
    """Marigold normals (x right, y up, z towards the viewer) -> the OpenCV camera frame, ``(nx, -ny, -nz)``."""
    return opencv_to_gltf(normals)


def grid_faces(depth: np.ndarray, valid: np.ndarray, max_jump: float = MAX_DEPTH_JUMP) -> np.ndarray:
    """Triangles of the pixel grid, two per 2x2 block of pixels (vertex ``i = v * W + u``), counter-clockwise
    seen from the camera in the glTF frame; a triangle is dropped when one of its pixels is not ``valid`` or its
    depths jump: ``max(z) > (1 + max_jump) * min(z)`` (a relative-depth discontinuity, e.g. an object edge).

    Returns ``[F, 3]`` int64 vertex indices.

    >>> grid_faces(np.ones((2, 2)), np.ones((2, 2), bool)).tolist()
    [[0, 2, 1], [1, 2, 3]]
    """
    depth = np.asarray(depth, dtype=np.float64)
    check_shape(depth, "H W", "depth")
    h, w = depth.shape
    idx = np.arange(h * w).reshape(h, w)
    tl, tr, bl, br = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    tris = np.concatenate([np.stack([tl, bl, tr], -1).reshape(-1, 3), np.stack([tr, bl, br], -1).reshape(-1, 3)])
    # interleave the two triangles of each block, so faces follow the pixel order
    n = (h - 1) * (w - 1)
    tris = np.stack([tris[:n], tris[n:]], axis=1).reshape(-1, 3)
    z, ok = depth.reshape(-1)[tris], np.asarray(valid, dtype=bool).reshape(-1)[tris].all(axis=1)
    zmin, zmax = z.min(axis=1), z.max(axis=1)
    ok &= np.isfinite(zmin) & np.isfinite(zmax) & (zmin > 0) & (zmax <= (1.0 + max_jump) * zmin)
    return tris[ok].astype(np.int64)
