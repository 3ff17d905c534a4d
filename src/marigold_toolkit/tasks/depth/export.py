"""The depth task's extra outputs of ``marigold predict``: metric depth from sparse measurements and 3D exports.

For an input ``<stem>`` (``<t>`` = the depth target's name, ``depth``):

* ``--sparse-depth FILE|DIR`` -> ``<stem>_<t>_metric.npy`` (float32 ``H x W`` metres) and ``<stem>_<t>_metric.json``
  (the fit: scale, shift, space, method, point and inlier counts, residual statistics in metres), see
  :mod:`.metric`;
* ``--export ply`` -> ``<stem>_points.ply``: binary little-endian, ``x, y, z`` float32 in the OpenCV camera frame
  + ``red, green, blue`` from the photo (+ ``nx, ny, nz`` when a normals prediction of the same image is at hand),
  one vertex per valid pixel;
* ``--export glb`` -> ``<stem>_mesh.glb``: the pixel grid as a glTF 2.0 mesh (y up), vertex colours, triangles
  across depth jumps larger than ``mesh_max_jump`` (relative) removed;
* ``--export exr`` -> ``<stem>_<t>.exr``: the depth as float32 (channel ``Z``): metres when a metric fit was made,
  else the prediction as it is (affine-invariant, [0, 1]).

Units: with a metric fit, points are in metres. Without one, an affine-invariant prediction has no scale or
shift; points then use :func:`~.geometry.relative_depth` (the nearest point at 1, the farthest at 10 relative
units), which the PLY header's comments state. Invalid pixels and the sky (normalised depth >= ``FAR_CLIP``)
are left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...core.atomic import atomic_write_bytes
from ...io.camera import CameraIntrinsics, resolve_intrinsics
from ...io.files import save_npy
from ...io.geometry_files import write_exr, write_glb, write_ply
from ...visualize import to_uint8_rgb
from ..base import ImageContext
from .geometry import (
    DEPTH_RANGE_RATIO,
    FAR_CLIP,
    MAX_DEPTH_JUMP,
    grid_faces,
    marigold_normals_to_opencv,
    opencv_to_gltf,
    relative_depth,
    unproject,
)
from .metric import MetricFit, fit_metric, read_sparse_depth, sparse_depth_file

EXPORT_FORMATS = ("ply", "glb", "exr")


def export_file_names(stem: str, target: str, formats: Sequence[str]) -> list[str]:
    names = {"ply": f"{stem}_points.ply", "glb": f"{stem}_mesh.glb", "exr": f"{stem}_{target}.exr"}
    unknown = [f for f in formats if f not in names]
    if unknown:
        raise ValueError(f"--export: unknown format(s) {', '.join(unknown)}; use {', '.join(EXPORT_FORMATS)}")
    return [names[f] for f in formats]


def metric_file_names(stem: str, target: str) -> list[str]:
    return [f"{stem}_{target}_metric.npy", f"{stem}_{target}_metric.json"]


def extra_file_names(stem: str, target: str, options: Mapping[str, Any]) -> list[str]:
    """The extra files ``options`` (``export``, ``sparse_depth``) ask for for input ``stem``."""
    names = []
    source = options.get("sparse_depth")
    if source is not None and sparse_depth_file(source, stem) is not None:
        names += metric_file_names(stem, target)
    return names + export_file_names(stem, target, options.get("export") or ())


def _colors(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    rgb = to_uint8_rgb(image)
    if rgb.shape[:2] != tuple(hw):
        rgb = np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.BILINEAR))
    return rgb


def _normals_of(outputs: Sequence[Any], hw: tuple[int, int]) -> np.ndarray | None:
    """A normals prediction of the same image and size among ``outputs`` (Marigold frame), or ``None``."""
    for out in outputs:
        normals = getattr(out, "targets", {}).get("normals")
        if normals is not None and normals.shape == (*hw, 3):
            return normals
    return None


def point_cloud(z: np.ndarray, valid: np.ndarray, camera: CameraIntrinsics, rgb: np.ndarray,
                normals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Points ``[N, 3]`` (OpenCV frame), colours ``[N, 3]`` and normals ``[N, 3]`` (OpenCV frame, from Marigold
    normals) of the ``valid`` pixels of planar depth ``z``, in row-major pixel order."""
    points = unproject(z, camera)[valid]
    n = marigold_normals_to_opencv(normals[valid]) if normals is not None else None
    return points, rgb[valid], n


def write_point_cloud(path: str | Path, z: np.ndarray, valid: np.ndarray, camera: CameraIntrinsics,
                      rgb: np.ndarray, normals: np.ndarray | None = None, units: str = "metres") -> None:
    """``<stem>_points.ply`` of the ``valid`` pixels (see the module docstring); ``units`` goes into the header."""
    points, colors, n = point_cloud(z, valid, camera, rgb, normals)
    comments = ["marigold-toolkit point cloud: OpenCV camera frame (x right, y down, z forward), planar depth",
                f"units: {units}",
                f"intrinsics ({camera.source}): fx {camera.fx:.6g} fy {camera.fy:.6g} cx {camera.cx:.6g} "
                f"cy {camera.cy:.6g} for {camera.width}x{camera.height}, pixel centres at integer coordinates",
                f"left out: invalid pixels and the sky (normalised depth >= {FAR_CLIP:g})"]
    write_ply(path, points, colors, n, comments)


def write_mesh(path: str | Path, z: np.ndarray, valid: np.ndarray, camera: CameraIntrinsics, rgb: np.ndarray,
               max_jump: float = MAX_DEPTH_JUMP) -> int:
    """``<stem>_mesh.glb``: the valid pixel grid in the glTF frame (y up), triangles across relative depth jumps
    above ``max_jump`` removed, only vertices used by a triangle kept; returns the number of triangles."""
    faces = grid_faces(z, valid, max_jump)
    vertices = opencv_to_gltf(unproject(z, camera).reshape(-1, 3))
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    write_glb(path, vertices[used], remap[faces], rgb.reshape(-1, 3)[used])
    return int(len(faces))


def fit_sparse(depth: np.ndarray, stem: str, options: Mapping[str, Any]) -> tuple[np.ndarray, MetricFit, Path] | None:
    """The metric fit of ``depth`` (``H x W``) to the sparse measurements ``options`` name for ``stem``, or
    ``None`` when a folder of measurements has none for this input."""
    path = sparse_depth_file(options["sparse_depth"], stem)
    if path is None:
        return None
    sparse = read_sparse_depth(path, *depth.shape)
    metric, fit = fit_metric(depth, sparse, space=options.get("fit_space") or "depth",
                             method=options.get("fit_method") or "irls")
    return metric, fit, path


def write_metric(out_dir: str | Path, stem: str, target: str, metric: np.ndarray, record: Mapping[str, Any]) -> list[Path]:
    """``<stem>_<t>_metric.npy`` (float32 metres) and ``<stem>_<t>_metric.json`` (``record``), atomically."""
    npy, js = (Path(out_dir) / n for n in metric_file_names(stem, target))
    save_npy(npy, metric)
    atomic_write_bytes(js, (json.dumps(record, indent=2) + "\n").encode())
    return [npy, js]


RELATIVE_UNITS = (f"relative, NOT metric: affine-invariant depth d in [0, 1] mapped to z = 1 + "
                  f"{DEPTH_RANGE_RATIO - 1:g} d (nearest point 1, farthest {DEPTH_RANGE_RATIO:g})")


def write_exports(out_dir: str | Path, stem: str, target: str, z: np.ndarray, valid: np.ndarray, units: str,
                  exr: np.ndarray, options: Mapping[str, Any], context: ImageContext) -> list[Path]:
    """The ``options["export"]`` files of planar depth ``z`` (``H x W``, positive where ``valid``) in ``units``;
    ``exr`` is what ``<stem>_<t>.exr`` holds. Intrinsics come from ``options`` (``intrinsics``, ``fov_x``) or the
    photo's EXIF (:func:`~marigold_toolkit.io.camera.resolve_intrinsics`), scaled to the depth's size."""
    formats = list(options.get("export") or ())
    out_dir, hw = Path(out_dir), z.shape
    camera = rgb = None
    if "ply" in formats or "glb" in formats:
        camera = resolve_intrinsics(context.image.shape[0], context.image.shape[1], options.get("intrinsics"),
                                    options.get("fov_x"), context.path).scaled_to(*hw)
        rgb = _colors(context.image, hw)
    written = []
    for name, fmt in zip(export_file_names(stem, target, formats), formats):
        path = out_dir / name
        if fmt == "ply":
            write_point_cloud(path, z, valid, camera, rgb, _normals_of(context.outputs, hw), units)
        elif fmt == "glb":
            write_mesh(path, z, valid, camera, rgb, float(options.get("mesh_max_jump") or MAX_DEPTH_JUMP))
        else:
            write_exr(path, exr)
        written.append(path)
    return written


def write_depth_extras(out_dir: str | Path, stem: str, target: str, depth: np.ndarray,
                       options: Mapping[str, Any], context: ImageContext) -> list[Path]:
    """Write the files of :func:`extra_file_names` for one depth prediction ``depth`` (``H x W``, [0, 1]);
    returns their paths."""
    written: list[Path] = []
    metric = None
    if options.get("sparse_depth") is not None:
        result = fit_sparse(depth, stem, options)
        if result is not None:
            metric, fit, source = result
            record = {"sparse_depth": str(source), "units": "metres", "fit": fit.as_dict()}
            written += write_metric(out_dir, stem, target, metric, record)
    if not options.get("export"):
        return written
    if metric is not None:
        z, units = metric, "metres (scale and shift fitted to sparse measurements)"
    else:
        z, units = relative_depth(depth, DEPTH_RANGE_RATIO), RELATIVE_UNITS
    valid = np.isfinite(z) & (z > 0) & (depth < FAR_CLIP)
    return written + write_exports(out_dir, stem, target, z, valid, units, metric if metric is not None else depth,
                                   options, context)
